"""View Audit History: the account's audit records, filtered by entity, user and date.

The page and the API show the same thing (:func:`public`): a sync application's row images
are summarised, never sent, and server paths stay on the server. People are named as the
account knows them: its own users by e-mail, snapsync's own work as ``snapsync...``, and
whatever an operator did from the command line as ``operator`` (``control/audit.py``)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from snapsync.control import audit
from snapsync.schemas.errors import ConfigError
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import describe, render
from snapsync.web.timefmt import day_start_utc

#: The days a filter may name: the calendar's last ones cannot be turned into an end instant.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9998, 12, 31)
#: Detail keys that name places on the server, not shown to an account.
SERVER_ONLY = ("path", "delivered_path")

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
            continue
        if days[name] is not None and not FIRST_DAY <= days[name] <= LAST_DAY:
            bad[name] = f"give a date between {FIRST_DAY} and {LAST_DAY}"
    if bad:
        raise ConfigError("invalid audit filter: " + "; ".join(f"{k}: {v}" for k, v in bad.items()), fields=bad)
    return days


def public(record: dict) -> dict:
    """A record as the account sees it: row images of sync applications left out (the page
    shows a summary, so does the API), server paths left out of the detail, and the summary."""
    out = dict(record, summary=describe(record))
    if out["entity"] == "sync_apply":
        out["before"] = out["after"] = None
    if isinstance(out.get("detail"), dict):
        out["detail"] = {k: v for k, v in out["detail"].items() if k not in SERVER_ONLY}
    return out


def query(scope: Scope, entity: str, user: str, since: str, until: str, limit: int = 200) -> list[dict]:
    """The account's history with the page's filters (dates are New York days, inclusive)."""
    days = _days(since=since, until=until)
    start, end = days["since"], days["until"]
    rows = audit.account_history(scope.settings, scope.account_id, entity=entity or None, who=user or None,
                                 since=day_start_utc(start) if start else None,
                                 until=day_start_utc(end + dt.timedelta(days=1)) if end else None, limit=limit,
                                 tenant_view=True)
    return [public(r) for r in rows]


@router.get("/accounts/{account_id}/audit")
async def audit_page(request: Request, entity: str = "", user: str = "", since: str = "", until: str = "",
                     scope: Scope = Depends(reader)):
    try:
        rows, errors = await run_in_threadpool(query, scope, entity, user, since, until), {}
    except ConfigError as exc:
        rows, errors = [], exc.fields
    facets = await run_in_threadpool(lambda: audit.account_facets(scope.settings, scope.account_id,
                                                                   tenant_view=True))
    return await render(request, "audit.html", scope, status=422 if errors else 200, rows=rows, facets=facets,
                        errors=errors,
                        filters={"entity": entity, "user": user, "since": since, "until": until})
