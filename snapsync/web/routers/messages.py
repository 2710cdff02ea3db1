"""Messaging: the account's notifications with unread counts, mark as read, and the
server-sent events that show the pop-up on every open page."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import notifications
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import int_list, render

router = APIRouter(include_in_schema=False)

KEEPALIVE_SECONDS = 15.0


@router.get("/accounts/{account_id}/messages")
async def messages_page(request: Request, unread: bool = False, scope: Scope = Depends(reader)):
    rows = await run_in_threadpool(lambda: notifications.for_user(scope.settings, scope.account_id,
                                                                  scope.user.user_id, unread_only=unread))
    return await render(request, "messages.html", scope, messages=rows, only_unread=unread)


@router.post("/accounts/{account_id}/messages/read")
async def messages_read(request: Request, scope: Scope = Depends(reader)):
    data = await request.form()
    ids, _whole = int_list(data.getlist("ids"))
    everything = data.get("all") == "on"
    await run_in_threadpool(lambda: notifications.mark_read(scope.settings, scope.account_id, scope.user.user_id,
                                                            None if everything else list(ids)))
    return RedirectResponse(f"/accounts/{scope.account_id}/messages", status_code=303)


@router.get("/accounts/{account_id}/events")
async def events(request: Request, scope: Scope = Depends(reader)):
    """Server-sent events: ``ready`` once live notices flow, then one event per notice."""
    hub = request.app.state.hub

    async def stream():
        yield "retry: 3000\n\n"
        if hub is None:
            return
        queue = hub.subscribe(scope.account_id)
        try:
            while not hub.ready.is_set():
                await asyncio.sleep(0.1)
            yield "event: ready\ndata: {}\n\n"
            while True:
                try:
                    notice = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if notice is None:
                    return
                yield f"event: {notice.get('event', 'notice')}\ndata: {json.dumps(notice)}\n\n"
        finally:
            hub.unsubscribe(scope.account_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
