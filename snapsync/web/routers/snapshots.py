"""Recurring Data Snapshots: the settings dialog of the product document, step by step."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from snapsync.connectors.crypto import signing_fingerprint
from snapsync.control import accounts, destinations, moves, recipients, snapshot_settings
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


def delivery_view(s, a: int) -> dict:
    """What the Snapshots page shows of whom the packages are encrypted to and where they are
    shipped: fingerprints and addresses, never a key."""
    key = recipients.get(s, a)
    dest = destinations.get(s, a)
    return {"encryption": key.public() if key else None, "destination": dest.public() if dest else None,
            "signing_key": signing_fingerprint(s.home)}


async def _page(request: Request, scope: Scope, form: dict | None = None, errors: dict | None = None,
                status: int = 200, saved: bool | str = False, sealing: dict | None = None):
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
    message = _SAVED.get(str(saved), "Your recurring snapshot settings were saved.") if saved else ""
    return await render(request, "snapshots.html", scope, status=status, form=form, errors=errors or {},
                        saved=message, current=current, customers=customers, formats=formats(),
                        packagings=PACKAGING, incremental=[d.name for d in DATASETS if d.incremental],
                        pricing=pricing_url(a), delivery=await run_in_threadpool(delivery_view, s, a),
                        sealing=sealing or {})


@router.get("/accounts/{account_id}/snapshots")
async def snapshots_page(request: Request, saved: str = "", scope: Scope = Depends(reader)):
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


_SAVED = {"key": "Your packages are now encrypted to this key.", "key-removed": "Your packages are no longer encrypted.",
          "sftp": "Each nightly snapshot is now also uploaded to this SFTP drop.",
          "sftp-removed": "Snapshots are no longer uploaded by SFTP."}


@router.post("/accounts/{account_id}/snapshots/encryption")
async def snapshots_encryption(request: Request, scope: Scope = Depends(rep)):
    """Set (a pasted OpenPGP public key or age recipient) or remove the account's encryption key."""
    data = await request.form()
    if data.get("action") == "remove":
        await run_in_threadpool(recipients.clear, scope.settings, scope.account_id, who=scope.who)
        return RedirectResponse(f"/accounts/{scope.account_id}/snapshots?saved=key-removed", status_code=303)
    text = str(data.get("public_key") or "")
    try:
        await run_in_threadpool(lambda: recipients.set_key(scope.settings, scope.account_id, text, who=scope.who))
    except ConfigError as exc:  # never echoes the key: the field is left empty
        return await _page(request, scope, errors={"public_key": str(exc)}, status=422)
    return RedirectResponse(f"/accounts/{scope.account_id}/snapshots?saved=key", status_code=303)


@router.post("/accounts/{account_id}/snapshots/destination")
async def snapshots_destination(request: Request, scope: Scope = Depends(rep)):
    """Set (address and pinned host key; snapsync makes the login key) or remove the SFTP drop."""
    data = await request.form()
    if data.get("action") == "remove":
        await run_in_threadpool(destinations.clear, scope.settings, scope.account_id, who=scope.who)
        return RedirectResponse(f"/accounts/{scope.account_id}/snapshots?saved=sftp-removed", status_code=303)
    url, host_key = str(data.get("sftp_url") or ""), str(data.get("host_key") or "")
    try:
        await run_in_threadpool(lambda: destinations.set_sftp(scope.settings, scope.account_id, url, host_key,
                                                              who=scope.who))
    except ConfigError as exc:
        field = "host_key" if "host key" in str(exc) else "sftp_url"
        return await _page(request, scope, errors={field: str(exc)}, status=422,
                           sealing={"sftp_url": url if "password" not in str(exc) else "", "host_key": host_key})
    return RedirectResponse(f"/accounts/{scope.account_id}/snapshots?saved=sftp", status_code=303)
