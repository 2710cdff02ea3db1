"""Usage metering: what each account was delivered and applied, per New York month, for the
invoice ("Usage of this feature will result in additional charges to your invoice").

Every counted thing is one row of ``snapsync_usage_event``, unique by ``(kind, ref)`` and
written with ``INSERT IGNORE`` in the same state-store transaction as the record of the thing
itself, so a count is exact across crashes and retries:

========== ============================================== ===================================
kind       what                                           counted where, keyed by
========== ============================================== ===================================
nightly    a scheduled delivery (scheduler, export        the transaction that records the
           workers)                                       delivery at the atomic switch
                                                          (``sinks/scheduler.deliver``), the
                                                          delivery id
manual     ``snapsync snapshot export`` (any export not   right after its atomic switch, the
           made by the scheduler)                         export's own id
sample     the Download Sample (web or CLI): free,        the same, the export's own id
           shown as such, never billed
sync       Data Sync items applied (the stream applier's  the transaction that moves its audit
           commands, initial copies)                      record into the state store
                                                          (``control/audit.flush_outbox``), the
                                                          journal id
data_copy  items a Data Copy wrote into the target        the same
           account (``control/data_copy.py``)
========== ============================================== ===================================

Measures: deliveries, rows, bytes, data sets (one per data set file of a package) and sync
items (created or overridden). Months are New York months: a nightly delivery counts in the
month of its New York day, anything else in the month it happened.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from snapsync.control.metrics import USAGE
from snapsync.schemas.errors import ConfigError
from snapsync.schemas.schedule import NY

KINDS = ("nightly", "manual", "sample", "sync", "data_copy")
MEASURES = ("deliveries", "rows", "bytes", "data_sets", "sync_items")
#: Kinds never billed (shown on the invoice page as free).
FREE = frozenset({"sample"})
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True)
class UsageEvent:
    kind: str
    ref: str
    account_id: int
    month: dt.date
    deliveries: int = 0
    rows: int = 0
    bytes: int = 0
    data_sets: int = 0
    sync_items: int = 0
    detail: dict = field(default_factory=dict)

    @property
    def billable(self) -> bool:
        return self.kind not in FREE


# --- months ---------------------------------------------------------------------------------
def month_of(when: dt.date | dt.datetime) -> dt.date:
    """The first day of the New York month of a New York day, or of an instant (naive: UTC)."""
    if isinstance(when, dt.datetime):
        when = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).astimezone(NY).date()
    return when.replace(day=1)


def this_month() -> dt.date:
    return month_of(dt.datetime.now(dt.timezone.utc))


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` as the first day of that month.

    Raises:
        ConfigError: not a month (the value is not quoted back).
    """
    m = _MONTH.fullmatch(text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise ConfigError("month: give a month as YYYY-MM (e.g. 2026-03)", fields={"month": "give YYYY-MM"})
    return dt.date(int(m.group(1)), int(m.group(2)), 1)


def previous_months(last: dt.date, count: int) -> list[dt.date]:
    """``count`` months ending with ``last``, oldest first."""
    out, y, m = [], last.year, last.month
    for _ in range(count):
        out.append(dt.date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


# --- recording ------------------------------------------------------------------------------
def delivery_event(kind: str, ref: str, account_id: int, month: dt.date, packages: list[dict], rows: int,
                   size: int, detail: dict | None = None) -> UsageEvent:
    """The usage of one delivery (``packages``: their manifests)."""
    return UsageEvent(kind, ref, account_id, month, deliveries=1, rows=int(rows), bytes=int(size),
                      data_sets=sum(len(p.get("datasets", ())) for p in packages), detail=dict(detail or {}))


def record(cur, event: UsageEvent) -> bool:
    """Record ``event`` in the caller's state-store transaction; False when it was already
    recorded (the same kind and ref: a replay)."""
    cur.execute(
        "INSERT IGNORE INTO snapsync_usage_event (kind, ref, account_id, month, at, billable, deliveries, rows_total, "
        "bytes, data_sets, sync_items, detail) VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s, %s, %s, %s, %s, %s)",
        (event.kind, event.ref[:120], event.account_id, event.month, int(event.billable), event.deliveries,
         event.rows, event.bytes, event.data_sets, event.sync_items, json.dumps(event.detail, default=str)))
    return cur.rowcount == 1


def observe(events: Iterable[UsageEvent]) -> None:
    """Add events newly recorded (and committed) to the process's Prometheus counter."""
    for e in events:
        for measure in MEASURES:
            value = getattr(e, measure)
            if value:
                USAGE.labels(e.kind, measure).inc(value)


def applied_items(entity: str, action: str, detail: dict) -> tuple[str, int] | None:
    """(kind, items) a Data Sync or Data Copy audit record counts for, or None."""
    kind = {"sync_apply": "sync", "data_copy_apply": "data_copy"}.get(entity)
    if kind is None:
        return None
    if action in ("create", "override"):
        return kind, 1
    if action.startswith("initial-"):
        n = int(detail.get("created") or 0) + int(detail.get("overridden") or 0)
        return (kind, n) if n else None
    return None


def application_events(source, records: list[tuple]) -> list[UsageEvent]:
    """The usage of audit records moving out of the outbox (``records``: outbox rows
    ``(outbox_id, at, actor, account_id, entity, entity_id, action, before, after, detail)``).
    Records of the stream applier carry no account: the target customer's is read from the
    practice schema (``source``)."""
    from snapsync.control.accounts import customer_accounts

    found = []
    for r in records:
        detail = json.loads(r[9]) if r[9] else {}
        items = applied_items(r[4], r[6], detail)
        if items is not None:
            found.append((r, detail, items))
    need = {int(d["target_customer"]) for r, d, _i in found if r[3] is None and d.get("target_customer") is not None}
    owners = customer_accounts(source, need) if need else {}
    events = []
    for r, detail, (kind, n) in found:
        account = r[3] if r[3] is not None else owners.get(int(detail.get("target_customer") or 0))
        if account is None:
            continue  # the target customer is gone: nobody to bill
        events.append(UsageEvent(kind, f"journal:{r[0]}", int(account), month_of(r[1]), sync_items=n,
                                 detail={"table": detail.get("table"),
                                         "target_customer": detail.get("target_customer")}))
    return events


# --- reading --------------------------------------------------------------------------------
def _zero() -> dict[str, int]:
    return {m: 0 for m in MEASURES}


def _summary(account_id: int, month: dt.date, by_kind: dict[str, dict[str, int]]) -> dict:
    billable = _zero()
    for kind, counts in by_kind.items():
        if kind not in FREE:
            for m in MEASURES:
                billable[m] += counts[m]
    sample = by_kind["sample"]
    return {"account_id": account_id, "month": f"{month:%Y-%m}", "billable": billable,
            "free": {"samples": sample["deliveries"], "rows": sample["rows"], "bytes": sample["bytes"]},
            "by_kind": by_kind}


def months_usage(conn, account_id: int, months: list[dt.date]) -> list[dict]:
    """The usage summary of each month (oldest first): billable totals, the free samples, and
    each kind's counts."""
    cur = conn.cursor()
    cur.execute("SELECT month, kind, SUM(deliveries), SUM(rows_total), SUM(bytes), SUM(data_sets), SUM(sync_items) "
                "FROM snapsync_usage_event WHERE account_id = %s AND month BETWEEN %s AND %s GROUP BY month, kind",
                (account_id, min(months), max(months)))
    rows = cur.fetchall()
    conn.commit()
    table = {m: {k: _zero() for k in KINDS} for m in months}
    for month, kind, *sums in rows:
        if month in table and kind in KINDS:
            table[month][kind] = dict(zip(MEASURES, (int(v or 0) for v in sums)))
    return [_summary(account_id, m, table[m]) for m in months]


def accounts_with_usage(conn, month: dt.date) -> list[int]:
    cur = conn.cursor()
    cur.execute("SELECT DISTINCT account_id FROM snapsync_usage_event WHERE month = %s ORDER BY 1", (month,))
    out = [r[0] for r in cur.fetchall()]
    conn.commit()
    return out


def account_usage(settings, account_id: int, month: dt.date | None = None) -> dict:
    """One account's usage for ``month`` (default: this New York month), on its own connection."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        return months_usage(conn, account_id, [month or this_month()])[0]


def usage_history(settings, account_id: int, count: int = 13, last: dt.date | None = None) -> list[dict]:
    """This month (or ``last``) and the ``count - 1`` before it, oldest first."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        return months_usage(conn, account_id, previous_months(last or this_month(), count))


def invoice_usage(settings, month: dt.date, account_id: int | None = None) -> list[dict]:
    """The month's usage of one account (which must exist), or of every account that has any.

    Raises:
        ConfigError: an unknown account.
    """
    from snapsync.connectors.mysql import connect
    from snapsync.connectors.state import connect_state
    from snapsync.control.accounts import require_account

    if account_id is not None:
        with connect(settings.db) as practice:
            require_account(practice, account_id)
    with connect_state(settings) as conn:
        accounts = [account_id] if account_id is not None else accounts_with_usage(conn, month)
        return [months_usage(conn, a, [month])[0] for a in accounts]


CSV_COLUMNS = ("account_id", "month", "kind", "billable", *MEASURES)


def to_csv(summaries: list[dict]) -> str:
    """One line per account and kind, and a ``total`` line of the billable kinds."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in summaries:
        for kind in KINDS:
            w.writerow([s["account_id"], s["month"], kind, int(kind not in FREE),
                        *(s["by_kind"][kind][m] for m in MEASURES)])
        w.writerow([s["account_id"], s["month"], "total", 1, *(s["billable"][m] for m in MEASURES)])
    return buf.getvalue()
