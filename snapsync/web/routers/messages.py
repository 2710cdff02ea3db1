"""Messaging: the account's notifications with unread counts, mark as read, and the
server-sent events that show the pop-up on every open page. An open stream checks its
caller again every :data:`RECHECK_SECONDS` (and before a notice when the last check is older
than a second): it ends, with a ``signed-out`` event, once the session is signed out or the
token revoked, or the user disabled."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import notifications
from snapsync.web.auth import Scope, reader, still_signed_in
from snapsync.web.pages import int_list, render

router = APIRouter(include_in_schema=False)

KEEPALIVE_SECONDS = 15.0
#: How often an open stream checks that its session or token is still good.
RECHECK_SECONDS = 5.0
_TICK = object()


class _Guard:
    """Checks a stream's caller again at most every :data:`RECHECK_SECONDS`, or every second
    before a notice goes out (``soon``)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.at = time.monotonic()

    async def ok(self, *, soon: bool = False) -> bool:
        if time.monotonic() - self.at < (1.0 if soon else RECHECK_SECONDS):
            return True
        self.at = time.monotonic()
        who = self.scope.principal
        return who is None or await run_in_threadpool(still_signed_in, self.scope.settings, who)


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

    guard = _Guard(scope)

    async def stream():
        yield "retry: 3000\n\n"
        if hub is None:
            return
        queue = hub.subscribe(scope.account_id)
        ended = "event: signed-out\ndata: {}\n\n"
        try:
            while not hub.ready.is_set():
                await asyncio.sleep(0.1)
                if not await guard.ok():
                    yield ended
                    return
            yield "event: ready\ndata: {}\n\n"
            quiet_since = time.monotonic()
            while True:
                try:
                    notice = await asyncio.wait_for(queue.get(), RECHECK_SECONDS)
                except asyncio.TimeoutError:
                    notice = _TICK
                if notice is None:
                    return
                if not await guard.ok(soon=notice is not _TICK):
                    yield ended
                    return
                if notice is _TICK:
                    if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ": keepalive\n\n"
                    continue
                quiet_since = time.monotonic()
                yield f"event: {notice.get('event', 'notice')}\ndata: {json.dumps(notice)}\n\n"
        finally:
            hub.unsubscribe(scope.account_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
