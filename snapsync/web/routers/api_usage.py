"""The JSON API of Usage: the invoice's counts of a month, for scripts (the same numbers as the
Usage page and ``snapsync usage``)."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse

from snapsync.control import usage
from snapsync.web.auth import Principal, Scope, principal, reader

router = APIRouter(tags=["usage"])

MonthQuery = Query(None, description="A New York month, YYYY-MM (default: this month).")


@router.get("/api/accounts/{account_id}/usage", response_model=dict[str, Any])
def get_usage(month: Optional[str] = MonthQuery, scope: Scope = Depends(reader)):
    """The month's usage: ``billable`` totals (deliveries, rows, bytes, data_sets, sync_items),
    ``free`` (the Download Samples) and ``by_kind`` (nightly, manual, sample, sync, data_copy)."""
    return usage.account_usage(scope.settings, scope.account_id, usage.parse_month(month) if month else None)


@router.get("/api/accounts/{account_id}/usage/history", response_model=list[dict[str, Any]])
def get_usage_history(months: int = Query(13, ge=1, le=36, description="How many months, ending with this one."),
                      scope: Scope = Depends(reader)):
    """This month and the ones before it, oldest first, each as ``GET .../usage`` gives it."""
    return usage.usage_history(scope.settings, scope.account_id, months)


@router.get("/api/usage", status_code=307, response_class=RedirectResponse,
            summary="The caller's own account's usage (redirects to /api/accounts/{id}/usage)")
def my_usage(month: Optional[str] = MonthQuery, who: Principal = Depends(principal)):
    """``GET /api/usage?month=YYYY-MM`` for a token's own account: answered by the account's
    route (which authorizes as every account route does)."""
    query = f"?{urlencode({'month': f'{usage.parse_month(month):%Y-%m}'})}" if month else ""
    return RedirectResponse(f"/api/accounts/{who.user.account_id}/usage{query}", status_code=307)
