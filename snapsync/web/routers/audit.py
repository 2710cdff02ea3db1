"""View Audit History: the account's audit records, filtered by entity, user and date."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from snapsync.control import audit
from snapsync.schemas.errors import ConfigError
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import render
from snapsync.web.timefmt import day_start_utc

router = APIRouter(include_in_schema=False)


def _days(**texts: str) -> dict[str, dt.date | None]:
    """Filter dates (YYYY-MM-DD).

    Raises:
        ConfigError: naming each field that is not a date.
    """
    days, bad = {}, {}
    for name, text in texts.items():
        try:
            days[name] = dt.date.fromisoformat(text) if text else None
        except ValueError:
            bad[name] = "give a date as YYYY-MM-DD"
    if bad:
        raise ConfigError("invalid audit filter: " + "; ".join(f"{k}: {v}" for k, v in bad.items()), fields=bad)
    return days


def query(scope: Scope, entity: str, user: str, since: str, until: str, limit: int = 200) -> list[dict]:
    """The account's history with the page's filters (dates are New York days, inclusive)."""
    days = _days(since=since, until=until)
    start, end = days["since"], days["until"]
    return audit.account_history(scope.settings, scope.account_id, entity=entity or None, who=user or None,
                                 since=day_start_utc(start) if start else None,
                                 until=day_start_utc(end + dt.timedelta(days=1)) if end else None, limit=limit)


@router.get("/accounts/{account_id}/audit")
async def audit_page(request: Request, entity: str = "", user: str = "", since: str = "", until: str = "",
                     scope: Scope = Depends(reader)):
    try:
        rows, errors = await run_in_threadpool(query, scope, entity, user, since, until), {}
    except ConfigError as exc:
        rows, errors = [], exc.fields
    facets = await run_in_threadpool(audit.account_facets, scope.settings, scope.account_id)
    return await render(request, "audit.html", scope, status=422 if errors else 200, rows=rows, facets=facets,
                        errors=errors,
                        filters={"entity": entity, "user": user, "since": since, "until": until})
