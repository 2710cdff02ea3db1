"""Usage: what the account was delivered and applied this month and the past 12 (the
invoice's counts), a chart, and the pricing notice of the product's snapshot dialog."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from snapsync.control import usage
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import render

router = APIRouter(include_in_schema=False)

#: The measures, as the page names them.
MEASURES = {"deliveries": "Deliveries", "rows": "Rows", "bytes": "Bytes", "data_sets": "Data sets",
            "sync_items": "Sync items applied"}
KIND_LABELS = {"nightly": "Nightly deliveries", "manual": "Manual deliveries", "sample": "Download Sample (free)",
               "sync": "Data Sync", "data_copy": "Data Copy"}
#: The chart's size (SVG user units).
WIDTH, HEIGHT, BOTTOM = 720, 220, 24


def pricing_url(account_id: int) -> str:
    """Where "Click here for complete pricing information" goes: the operator's price list
    (``SNAPSYNC_PRICING_URL``), else the app's page of what is counted."""
    return os.environ.get("SNAPSYNC_PRICING_URL") or f"/accounts/{account_id}/usage/pricing"


def chart(months: list[dict], measure: str) -> list[dict]:
    """One bar per month (oldest first) of the billable ``measure``: its box and labels."""
    values = [m["billable"][measure] for m in months]
    top = max(values) or 1
    slot = WIDTH / len(months)
    bars = []
    for i, (m, v) in enumerate(zip(months, values)):
        h = round((HEIGHT - BOTTOM - 16) * v / top, 1)
        bars.append({"x": round(i * slot + slot * 0.15, 1), "w": round(slot * 0.7, 1), "y": HEIGHT - BOTTOM - h,
                     "h": h, "label": m["month"], "short": m["month"][2:], "value": v,
                     "current": i == len(months) - 1, "tx": round(i * slot + slot / 2, 1)})
    return bars


@router.get("/accounts/{account_id}/usage")
async def usage_page(request: Request, measure: str = "deliveries", scope: Scope = Depends(reader)):
    if measure not in MEASURES:
        measure = "deliveries"
    months = await run_in_threadpool(usage.usage_history, scope.settings, scope.account_id, 13)
    return await render(request, "usage.html", scope, months=months, now=months[-1], measure=measure,
                        measures=MEASURES, kinds=KIND_LABELS, bars=chart(months, measure), width=WIDTH,
                        height=HEIGHT, baseline=HEIGHT - BOTTOM, pricing=pricing_url(scope.account_id))


@router.get("/accounts/{account_id}/usage/pricing")
async def pricing_page(request: Request, scope: Scope = Depends(reader)):
    return await render(request, "pricing.html", scope, measures=MEASURES, kinds=KIND_LABELS,
                        external=os.environ.get("SNAPSYNC_PRICING_URL"))
