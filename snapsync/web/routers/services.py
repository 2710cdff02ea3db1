"""The Services page: the account's two services and their state."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from snapsync.control import deliveries, snapshot_settings, sync_groups
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/accounts/{account_id}/services")
async def services(request: Request, scope: Scope = Depends(reader)):
    s, a = scope.settings, scope.account_id
    snap = await run_in_threadpool(snapshot_settings.get, s, a)
    latest = await run_in_threadpool(deliveries.latest, s, a)
    sync_on = await run_in_threadpool(sync_groups.is_enabled, s, a)
    groups = await run_in_threadpool(sync_groups.load_groups_for, s, a)
    return await render(request, "services.html", scope, snap=snap, latest=latest, sync_on=sync_on,
                        groups=groups)
