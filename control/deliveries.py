"""Delivery records: one row per account, day and kind in ``snapsync_delivery``, with its
outcome, size and where it went; every outcome audited."""

from __future__ import annotations

import datetime as dt
import json

from snapsync.control.audit import record_audit
from snapsync.control.notifications import notify
from snapsync.schemas.control import utcnow

#: Who the audit history names for the scheduler's and export workers' records (not the login
#: their process runs under).
SYSTEM = "snapsync"


def delivered(conn, account_id: int, day: dt.date, kind: str) -> bool:
    """True when the account's ``kind`` delivery for ``day`` is recorded as delivered."""
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM snapsync_delivery WHERE account_id=%s AND slot_date=%s AND kind=%s AND "
                "status='delivered' LIMIT 1", (account_id, day, kind))
    found = cur.fetchone() is not None
    conn.commit()
    return found


def start(conn, account_id: int, day: dt.date, kind: str, *, commit: bool = True) -> int:
    """Record a delivery as running; returns its id. ``commit=False`` leaves it in the caller's
    transaction (the claim's record of it goes in the same one)."""
    cur = conn.cursor()
    cur.execute("INSERT INTO snapsync_delivery (account_id, slot_date, kind, status, started_at) "
                "VALUES (%s, %s, %s, 'running', %s)", (account_id, day, kind, utcnow()))
    if commit:
        conn.commit()
    return cur.lastrowid


def fail(conn, delivery_id: int, account_id: int, day: dt.date, exc: BaseException) -> None:
    """Record a delivery as failed (the error's type and message, which never hold row values)."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_delivery SET status='failed', finished_at=%s, detail=%s WHERE delivery_id=%s",
                (utcnow(), json.dumps({"error": type(exc).__name__, "message": str(exc)[:500]}), delivery_id))
    record_audit(cur, account_id=account_id, entity="delivery", entity_id=str(delivery_id),
                 action="failed", detail={"slot_date": day.isoformat(), "error": type(exc).__name__}, who=SYSTEM)
    notify(cur, account_id=account_id, kind="snapshot_failed",
           message=f"Your data snapshot for {day.isoformat()} could not be made; it will be tried again at the "
                   "next scheduling round. The previous snapshot stays available.",
           detail={"slot_date": day.isoformat(), "delivery_id": delivery_id, "error": type(exc).__name__})
    conn.commit()


def finish(cur, delivery_id: int, account_id: int, finished: dt.datetime, path: str, size: int, rows: int,
           detail: dict) -> None:
    """Record a delivery as delivered, in the caller's transaction."""
    cur.execute("UPDATE snapsync_delivery SET status='delivered', finished_at=%s, path=%s, bytes=%s, "
                "rows_total=%s, detail=%s WHERE delivery_id=%s",
                (finished.replace(tzinfo=None), path, size, rows, json.dumps(detail), delivery_id))
    record_audit(cur, account_id=account_id, entity="delivery", entity_id=str(delivery_id),
                 action="delivered", detail=detail, who=SYSTEM)


def latest(settings, account_id: int) -> dict | None:
    """The account's newest delivery record (any outcome), or None."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT delivery_id, slot_date, kind, status, started_at, finished_at, bytes, rows_total "
                    "FROM snapsync_delivery WHERE account_id = %s ORDER BY delivery_id DESC LIMIT 1", (account_id,))
        r = cur.fetchone()
        conn.commit()
    if r is None:
        return None
    return {"delivery_id": r[0], "slot_date": r[1].isoformat(), "kind": r[2], "status": r[3],
            "started_at": r[4].isoformat(), "finished_at": r[5].isoformat() if r[5] else None,
            "bytes": r[6], "rows": r[7]}
