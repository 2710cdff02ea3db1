"""Data Sync: enable the service; the account's groups with Edit and delete; Add; each group's
recent overrides with what they replaced, and their undo (with the conflict check)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import accounts, data_sync, moves, sync_groups, sync_history, sync_tasks, sync_undo
from snapsync.schemas.catalog import CATEGORY_INFO
from snapsync.schemas.control import SyncGroup
from snapsync.schemas.errors import ConfigError
from snapsync.web.auth import AccountAccess, Scope, reader, rep
from snapsync.web.pages import int_list, render

router = APIRouter(include_in_schema=False)

#: The product document's Data Options, in its words (schemas/catalog.py CATEGORY_INFO).
CATEGORIES = tuple((c.name, c.label, c.description) for c in CATEGORY_INFO)


def group_of(access: AccountAccess):
    """A dependency: the sync group in the path, of the account in the path (else 404)."""

    async def dependency(group_id: int, scope: Scope = Depends(access)) -> SyncGroup:
        return await run_in_threadpool(sync_groups.find_group, scope.settings, scope.account_id, group_id)

    return dependency


def _done(account_id: int, group_id: int, queued: dict) -> RedirectResponse:
    """Back to the Data Sync page, saying that the initial copy is queued (nothing when the
    service is off or no target was new); the worker makes it and says so in Messages."""
    extra = f"&targets={len(queued)}" if queued else ""
    return RedirectResponse(f"/accounts/{account_id}/sync?saved={group_id}{extra}", status_code=303)


#: Seconds the undo page waits for the worker before saying the undo is queued.
UNDO_WAIT_SECONDS = 10.0


def application_of(access: AccountAccess):
    """A dependency: the sync application (audit id) in the path, of the account in the path
    (else 404, as for one that does not exist)."""

    async def dependency(audit_id: int, scope: Scope = Depends(access)) -> dict:
        return await run_in_threadpool(sync_history.application, scope.settings, scope.account_id, audit_id)

    return dependency


@router.get("/accounts/{account_id}/sync")
async def sync_page(request: Request, saved: str = "", targets: int = 0, scope: Scope = Depends(reader)):
    s, a = scope.settings, scope.account_id
    on = await run_in_threadpool(sync_groups.is_enabled, s, a)
    await run_in_threadpool(moves.recheck_groups_of, s, a)  # moved customers leave the groups first
    groups = await run_in_threadpool(sync_groups.load_groups_for, s, a)
    names = dict(await run_in_threadpool(accounts.list_customers, s, a))
    overrides = await run_in_threadpool(sync_history.recent_overrides, s, a, [g.group_id for g in groups])
    return await render(request, "sync.html", scope, enabled=on, groups=groups, names=names, saved=saved,
                        copied_targets=targets, categories={c: label for c, label, _d in CATEGORIES},
                        overrides=overrides)


@router.get("/accounts/{account_id}/sync/undo/{audit_id}")
async def undo_page(request: Request, saved: str = "", scope: Scope = Depends(reader),
                    item: dict = Depends(application_of(reader))):
    return await render(request, "sync_undo.html", scope, item=item, saved=saved)


@router.post("/accounts/{account_id}/sync/undo/{audit_id}")
async def undo_application(request: Request, scope: Scope = Depends(rep), item: dict = Depends(application_of(rep))):
    """Queue the undo for the worker (the same conflict check as ``snapsync sync undo``) and
    wait a little for it; the page then shows the outcome, or the later edits to confirm."""
    force = (await request.form()).get("force") == "on"
    task_id = await run_in_threadpool(lambda: sync_undo.request_undo(
        scope.settings, item["audit_id"], force=force, account_id=scope.account_id, who=scope.who))
    await run_in_threadpool(sync_tasks.wait_for, scope.settings, [task_id], UNDO_WAIT_SECONDS)
    return RedirectResponse(f"/accounts/{scope.account_id}/sync/undo/{item['audit_id']}?saved=undo", status_code=303)


@router.post("/accounts/{account_id}/sync/service")
async def sync_service(request: Request, scope: Scope = Depends(rep)):
    enabled = (await request.form()).get("enabled") == "on"
    if enabled:
        await run_in_threadpool(lambda: data_sync.enable_service(scope.settings, scope.account_id, who=scope.who))
    else:
        await run_in_threadpool(lambda: sync_groups.set_service(scope.settings, scope.account_id, False,
                                                                who=scope.who))
    return RedirectResponse(f"/accounts/{scope.account_id}/sync?saved=service", status_code=303)


async def _form(request: Request, scope: Scope, form: dict, group: SyncGroup | None = None,
                errors: dict | None = None, status: int = 200):
    customers = await run_in_threadpool(accounts.list_customers, scope.settings, scope.account_id)
    return await render(request, "sync_group.html", scope, status=status, form=form, group=group,
                        errors=errors or {}, customers=customers, categories=CATEGORIES)


def _read(data) -> tuple[dict, dict]:
    """The group form as values for the control plane, and the problems of reading it."""
    errors = {}
    try:
        source = int(data.get("source_customer", ""))
    except ValueError:
        source = None
        errors["source_customer"] = "choose the Sync From customer"
    targets, whole = int_list(data.getlist("targets"))
    if not whole:
        errors["targets"] = "choose Sync To customers from the list"
    form = {"source_customer": source, "targets": set(targets), "categories": set(data.getlist("categories")),
            "mode": data.get("mode", "create-only")}
    return form, errors


@router.get("/accounts/{account_id}/sync/groups/new")
async def group_new(request: Request, scope: Scope = Depends(rep)):
    form = {"source_customer": None, "targets": set(), "categories": set(), "mode": "create-only"}
    return await _form(request, scope, form)


@router.post("/accounts/{account_id}/sync/groups")
async def group_create(request: Request, scope: Scope = Depends(rep)):
    form, errors = _read(await request.form())
    if errors:
        return await _form(request, scope, form, errors=errors, status=422)
    try:
        group, copied = await run_in_threadpool(lambda: data_sync.create_group(
            scope.settings, form["source_customer"], tuple(form["targets"]), tuple(form["categories"]),
            form["mode"], account_id=scope.account_id, who=scope.who))
    except ConfigError as exc:
        return await _form(request, scope, form, errors=exc.fields or {"form": str(exc)}, status=422)
    return _done(scope.account_id, group.group_id, copied)


@router.get("/accounts/{account_id}/sync/groups/{group_id}/edit")
async def group_edit(request: Request, scope: Scope = Depends(rep), group: SyncGroup = Depends(group_of(rep))):
    form = {"source_customer": group.source_customer, "targets": set(group.targets),
            "categories": set(group.categories), "mode": group.mode}
    return await _form(request, scope, form, group)


@router.post("/accounts/{account_id}/sync/groups/{group_id}")
async def group_update(request: Request, scope: Scope = Depends(rep), group: SyncGroup = Depends(group_of(rep))):
    form, errors = _read(await request.form())
    if errors:
        return await _form(request, scope, form, group, errors, 422)
    try:
        _before, _after, copied = await run_in_threadpool(lambda: data_sync.change_group(
            scope.settings, group.group_id, source=form["source_customer"], targets=tuple(form["targets"]),
            categories=tuple(form["categories"]), mode=form["mode"], account_id=scope.account_id, who=scope.who))
    except ConfigError as exc:
        return await _form(request, scope, form, group, exc.fields or {"form": str(exc)}, 422)
    return _done(scope.account_id, group.group_id, copied)


@router.post("/accounts/{account_id}/sync/groups/{group_id}/delete")
async def group_delete(scope: Scope = Depends(rep), group: SyncGroup = Depends(group_of(rep))):
    await run_in_threadpool(lambda: sync_groups.delete_group(scope.settings, group.group_id,
                                                             account_id=scope.account_id, who=scope.who))
    return RedirectResponse(f"/accounts/{scope.account_id}/sync?saved=deleted", status_code=303)
