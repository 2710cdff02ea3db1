"""Request a Data Copy: the account's copies sent and received, the request form, one copy's
page (approve or decline it when it is asked of this account; undo it once made)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from snapsync.control import accounts, data_copy, sync_tasks
from snapsync.control.data_copy import DataCopy
from snapsync.schemas.control import DataCopyRequest
from snapsync.schemas.errors import ConfigError, NotFoundError, config_error
from snapsync.web.auth import AccountAccess, Scope, reader, rep
from snapsync.web.pages import render
from snapsync.web.routers.sync import CATEGORIES

router = APIRouter(include_in_schema=False)

#: Seconds a page waits for the worker to make a copy or an undo before saying it is queued.
WAIT_SECONDS = 10.0


def copy_of(access: AccountAccess):
    """A dependency: the Data Copy in the path, when the account in the path sent or receives
    it (else 404, as for a copy that does not exist)."""

    async def dependency(copy_id: int, scope: Scope = Depends(access)) -> DataCopy:
        copy, _side = await run_in_threadpool(data_copy.find, scope.settings, scope.account_id, copy_id)
        return copy

    return dependency


def _wait(scope: Scope, task_id: int) -> None:
    sync_tasks.wait_for(scope.settings, [task_id], WAIT_SECONDS)


@router.get("/accounts/{account_id}/copies")
async def copies_page(request: Request, scope: Scope = Depends(reader)):
    found = await run_in_threadpool(data_copy.account_copies, scope.settings, scope.account_id)
    return await render(request, "copies.html", scope, sent=found["sent"], received=found["received"],
                        labels=data_copy.CATEGORY_LABELS)


async def _form(request: Request, scope: Scope, form: dict, errors: dict | None = None, status: int = 200):
    customers = await run_in_threadpool(accounts.list_customers, scope.settings, scope.account_id)
    return await render(request, "copy_new.html", scope, status=status, form=form, errors=errors or {},
                        customers=customers, categories=CATEGORIES)


@router.get("/accounts/{account_id}/copies/new")
async def copy_new(request: Request, scope: Scope = Depends(rep)):
    return await _form(request, scope, {"categories": set(), "mode": "create-only"})


def _read(data) -> tuple[dict, dict]:
    """The request form's values, and the problems of reading them."""
    form: dict = {"categories": set(data.getlist("categories")), "mode": data.get("mode", "create-only")}
    errors = {}
    for name, what in (("source_customer", "choose the customer to copy from"),
                       ("to_account", "give the account number of the receiving account"),
                       ("to_customer", "give the customer number the receiving account gave you")):
        text = (data.get(name) or "").strip()
        form[name] = text
        try:
            form[name] = int(text)
        except ValueError:
            errors[name] = what
    return form, errors


@router.post("/accounts/{account_id}/copies")
async def copy_create(request: Request, scope: Scope = Depends(rep)):
    form, errors = _read(await request.form())
    if errors:
        return await _form(request, scope, form, errors, 422)
    try:
        req = DataCopyRequest(source_customer=form["source_customer"], to_account=form["to_account"],
                              to_customer=form["to_customer"], categories=tuple(form["categories"]), mode=form["mode"])
        copy = await run_in_threadpool(lambda: data_copy.request(scope.settings, scope.account_id, req, who=scope.who))
    except ValidationError as exc:
        err = config_error(exc, "invalid Data Copy request:")
        return await _form(request, scope, form, err.fields, 422)
    except ConfigError as exc:
        return await _form(request, scope, form, exc.fields or {"form": str(exc)}, 422)
    return RedirectResponse(f"/accounts/{scope.account_id}/copies/{copy.copy_id}?saved=requested", status_code=303)


async def _page(request: Request, scope: Scope, copy: DataCopy, saved: str = "", errors: dict | None = None,
                status: int = 200):
    s, a = scope.settings, scope.account_id
    shown = await run_in_threadpool(data_copy.copy_view, s, a, copy.copy_id)
    customers = await run_in_threadpool(accounts.list_customers, s, a) if shown["side"] == "to" else []
    undo = await run_in_threadpool(data_copy.latest_undo, s, copy) if shown["side"] == "to" else None
    return await render(request, "copy.html", scope, status=status, copy=shown, customers=customers, undo=undo,
                        saved=saved, errors=errors or {})


@router.get("/accounts/{account_id}/copies/{copy_id}")
async def copy_page(request: Request, saved: str = "", scope: Scope = Depends(reader),
                    copy: DataCopy = Depends(copy_of(reader))):
    return await _page(request, scope, copy, saved)


@router.post("/accounts/{account_id}/copies/{copy_id}/approve")
async def copy_approve(request: Request, scope: Scope = Depends(rep), copy: DataCopy = Depends(copy_of(rep))):
    text = ((await request.form()).get("target_customer") or "").strip()
    if not text.isdigit():
        return await _page(request, scope, copy, errors={"target_customer": "choose one of your customers"},
                           status=422)
    try:
        _copy, task_id = await run_in_threadpool(lambda: data_copy.approve(
            scope.settings, scope.account_id, copy.copy_id, int(text), who=scope.who))
    except ConfigError as exc:
        if isinstance(exc, NotFoundError):
            raise
        return await _page(request, scope, copy, errors=exc.fields or {"form": str(exc)}, status=422)
    await run_in_threadpool(_wait, scope, task_id)
    return RedirectResponse(f"/accounts/{scope.account_id}/copies/{copy.copy_id}?saved=approved", status_code=303)


@router.post("/accounts/{account_id}/copies/{copy_id}/decline")
async def copy_decline(request: Request, scope: Scope = Depends(rep), copy: DataCopy = Depends(copy_of(rep))):
    try:
        await run_in_threadpool(lambda: data_copy.decline(scope.settings, scope.account_id, copy.copy_id,
                                                          who=scope.who))
    except ConfigError as exc:
        if isinstance(exc, NotFoundError):
            raise
        return await _page(request, scope, copy, errors=exc.fields or {"form": str(exc)}, status=422)
    return RedirectResponse(f"/accounts/{scope.account_id}/copies/{copy.copy_id}?saved=declined", status_code=303)


@router.post("/accounts/{account_id}/copies/{copy_id}/undo")
async def copy_undo(request: Request, scope: Scope = Depends(rep), copy: DataCopy = Depends(copy_of(rep))):
    force = (await request.form()).get("force") == "on"
    try:
        task_id = await run_in_threadpool(lambda: data_copy.request_undo(scope.settings, scope.account_id,
                                                                         copy.copy_id, force=force, who=scope.who))
    except ConfigError as exc:
        if isinstance(exc, NotFoundError):
            raise
        return await _page(request, scope, copy, errors=exc.fields or {"form": str(exc)}, status=422)
    await run_in_threadpool(_wait, scope, task_id)
    return RedirectResponse(f"/accounts/{scope.account_id}/copies/{copy.copy_id}?saved=undo", status_code=303)
