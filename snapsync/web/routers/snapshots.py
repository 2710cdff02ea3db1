"""Recurring Data Snapshots: the settings dialog of the product document, step by step."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import accounts, moves, snapshot_settings
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.errors import ConfigError
from snapsync.sinks.formats import registry
from snapsync.web.auth import Scope, reader, rep
from snapsync.web.pages import int_list, render
from snapsync.web.routers.usage import pricing_url

router = APIRouter(include_in_schema=False)

PACKAGING = (("combined", "One Combined File"), ("per-customer", "One File per Customer"))


def formats() -> list[tuple[str, str]]:
    """(name, label) of every package format: a format module added later appears here."""
    return sorted(((name, cls.label) for name, cls in registry().items()), key=lambda f: f[0] != "dat")


async def _page(request: Request, scope: Scope, form: dict | None = None, errors: dict | None = None,
                status: int = 200, saved: bool = False):
    s, a = scope.settings, scope.account_id
    # as they are now: a selected customer that moved to another account is dropped (and said so)
    current, _moved = await run_in_threadpool(moves.recheck_snapshots, s, a)
    customers = await run_in_threadpool(accounts.list_customers, s, a)
    if form is None:
        form = {"enabled": current.enabled if current else False,
                "format": current.format if current else "dat",
                "kind": current.kind if current else "full",
                "packaging": current.packaging if current else "per-customer",
                "customers": set(current.customers) if current else set()}
    return await render(request, "snapshots.html", scope, status=status, form=form, errors=errors or {},
                        saved=saved, current=current, customers=customers, formats=formats(),
                        packagings=PACKAGING, incremental=[d.name for d in DATASETS if d.incremental],
                        pricing=pricing_url(a))


@router.get("/accounts/{account_id}/snapshots")
async def snapshots_page(request: Request, saved: bool = False, scope: Scope = Depends(reader)):
    return await _page(request, scope, saved=saved)


@router.post("/accounts/{account_id}/snapshots")
async def snapshots_save(request: Request, scope: Scope = Depends(rep)):
    data = await request.form()
    customers, whole = int_list(data.getlist("customers"))
    form = {"enabled": data.get("enabled") == "on", "format": data.get("format", ""), "kind": data.get("kind", ""),
            "packaging": data.get("packaging", ""), "customers": set(customers)}
    if not whole:
        return await _page(request, scope, form, {"customers": "choose customers from the list"}, 422)
    try:
        await run_in_threadpool(lambda: snapshot_settings.configure(
            scope.settings, scope.account_id, who=scope.who, tenant_view=True, enabled=form["enabled"],
            format=form["format"], kind=form["kind"], packaging=form["packaging"], customers=customers))
    except ConfigError as exc:
        return await _page(request, scope, form, exc.fields or {"form": str(exc)}, 422)
    return RedirectResponse(f"/accounts/{scope.account_id}/snapshots?saved=true", status_code=303)
