"""The Services page: the account's services (snapshots, Data Sync, Data Copy) and their state."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from snapsync.control import data_copy, deliveries, snapshot_settings, sync_groups
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
    copies = await run_in_threadpool(data_copy.account_copies, s, a)
    waiting = sum(1 for c in copies["received"] if c["status"] == "requested")
    return await render(request, "services.html", scope, snap=snap, latest=latest, sync_on=sync_on,
                        groups=groups, copies_waiting=waiting)
