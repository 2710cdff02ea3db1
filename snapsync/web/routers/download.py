"""Downloads: the account's current delivery (each package or all, as a zip with its
manifest) and the Download Sample. Every download is audited with who made it.

A package is served only while every customer it holds still belongs to the account (checked
at each download: a customer moved to another account since the delivery takes its packages
with it, ``control/moves.py``)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from snapsync.connectors.files import private_dir
from snapsync.control import accounts, audit, moves, snapshot_settings
from snapsync.schemas.control import SnapshotSettings
from snapsync.schemas.errors import config_error
from snapsync.sinks.archive import CurrentDelivery, Package, file_stream, open_no_link, package_files, read_current, \
    zip_stream
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.scheduler import delivery_root
from snapsync.web.auth import Scope, reader, rep
from snapsync.web.pages import render

router = APIRouter(tags=["downloads"])

SAMPLE_ROWS = 5
ZIP = {"description": "A zip archive.", "content": {"application/zip": {}}}


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


GONE = "This package is no longer available: a customer it holds no longer belongs to this account."


def withheld(scope: Scope, delivery: CurrentDelivery | None) -> set[str]:
    """Names of the delivery's packages not to serve: one of their customers is no longer the
    account's (or the manifest does not say whose rows they hold)."""
    if delivery is None:
        return set()
    customers = {c for p in delivery.packages for c in p.customers}
    moved = moves.not_owned_of(scope.settings, scope.account_id, customers) if customers else {}
    return {p.name for p in delivery.packages if not p.customers or set(p.customers) & set(moved)}


def _served(scope: Scope) -> tuple[CurrentDelivery | None, list[Package], set[str]]:
    delivery = read_current(delivery_root(scope.settings, scope.account_id))
    gone = withheld(scope, delivery)
    return delivery, [p for p in (delivery.packages if delivery else []) if p.name not in gone], gone


@router.get("/accounts/{account_id}/downloads", include_in_schema=False)
async def downloads_page(request: Request, scope: Scope = Depends(reader)):
    current, _ok, gone = await run_in_threadpool(_served, scope)
    return await render(request, "downloads.html", scope, delivery=current, withheld=gone)


@router.get("/api/accounts/{account_id}/deliveries/current.zip", response_class=StreamingResponse,
            responses={200: ZIP}, summary="The current delivery (all packages, or one), as a zip")
def current_zip(package: Optional[str] = Query(None, max_length=120, description="One package (e.g. customer-1)."),
                scope: Scope = Depends(rep)):
    """Streams the account's current delivery with each package's manifest.json. The
    previous delivery is gone once a new one replaces it (the product overwrites daily)."""
    delivery, chosen, gone = _served(scope)
    if delivery is None:
        raise HTTPException(404, "There is no delivery yet: the first one comes after the next scheduled snapshot.")
    if package is not None:
        if package in gone:
            raise HTTPException(404, GONE)
        pkg = delivery.package(package)
        if pkg is None:
            raise HTTPException(404, "The current delivery has no such package.")
        chosen = [pkg]
    if not chosen and delivery.packages:
        raise HTTPException(404, GONE)
    audit.record(scope.settings, account_id=scope.account_id, entity="download", entity_id=delivery.id,
                 action="download", who=scope.who,
                 detail={"what": "delivery", "packages": [p.name for p in chosen]})
    if package is not None and chosen[0].is_zip:
        return StreamingResponse(file_stream(open_no_link(chosen[0].path)), media_type="application/zip",
                                 headers=_attachment(chosen[0].path.name))
    name = f"{package}.zip" if package else f"snapshot-account-{scope.account_id}-{delivery.id}.zip"
    return StreamingResponse(zip_stream(package_files(chosen)), media_type="application/zip",
                             headers=_attachment(name))


@router.get("/api/accounts/{account_id}/sample.zip", response_class=StreamingResponse, responses={200: ZIP},
            summary="Download Sample: the first five rows of each data set of the account's customers")
def sample_zip(format: Optional[str] = Query(None, description="A package format (default: the saved one)."),  # noqa: A002
               packaging: str = Query("per-customer", description="per-customer or combined."),
               scope: Scope = Depends(rep)):
    """What a snapshot will look like: every data set of every customer of the account, the
    first five rows of each, in the chosen format."""
    s, a = scope.settings, scope.account_id
    customers = tuple(c for c, _n in accounts.list_customers(s, a))
    if format is None:
        saved = snapshot_settings.get(s, a)
        format = saved.format if saved else "dat"  # noqa: A001
    try:  # the settings model checks the format and packaging names, as for the settings
        SnapshotSettings(account_id=a, format=format, packaging=packaging, customers=customers)
    except ValidationError as exc:
        raise config_error(exc, "invalid sample request:") from None
    folder = private_dir(Path(s.home).resolve() / "web" / "samples" / uuid.uuid4().hex)
    try:
        export_snapshot(s, ExportRequest(list(customers), format=format, packaging=packaging,
                                         sample_rows=SAMPLE_ROWS, account_id=a), folder)
        delivery = read_current(folder)
        files = package_files(delivery.packages if delivery else [])
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the files stay readable until sent
    audit.record(s, account_id=a, entity="download", entity_id="sample", action="download", who=scope.who,
                 detail={"what": "sample", "format": format, "packaging": packaging, "customers": list(customers)})
    return StreamingResponse(zip_stream(files), media_type="application/zip",
                             headers=_attachment(f"snapshot-sample-account-{a}-{format}.zip"))
