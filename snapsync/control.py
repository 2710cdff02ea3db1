"""Control tables: creation, the audit history and account notifications."""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from schemas.control import CONTROL_DDL, DELTA_DDL, SYNC_DDL, utcnow


def ensure_control_tables(conn) -> None:
    cur = conn.cursor()
    for ddl in (*CONTROL_DDL, *SYNC_DDL, *DELTA_DDL):
        cur.execute(ddl)
    conn.commit()


def actor() -> str:
    """Who is acting: ``SNAPSYNC_ACTOR`` or the OS user."""
    return os.environ.get("SNAPSYNC_ACTOR") or getpass.getuser()


def record_audit(cur, *, account_id: int | None, entity: str, entity_id: str | None, action: str,
                 before: Any = None, after: Any = None, detail: Any = None, who: str | None = None) -> int:
    """Append one audit record in the caller's transaction; returns its id."""
    cur.execute(
        "INSERT INTO snapsync_audit (at, actor, account_id, entity, entity_id, action, before_json, after_json, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (utcnow(), who or actor(), account_id, entity, entity_id, action,
         None if before is None else json.dumps(before, default=str),
         None if after is None else json.dumps(after, default=str),
         None if detail is None else json.dumps(detail, default=str)),
    )
    return cur.lastrowid


def notify(cur, *, account_id: int, kind: str, message: str, detail: Any = None) -> int:
    """A message to the account (the product's Messaging section), in the caller's transaction."""
    cur.execute(
        "INSERT INTO snapsync_notification (account_id, at, kind, message, detail) VALUES (%s, %s, %s, %s, %s)",
        (account_id, utcnow(), kind, message[:1000], None if detail is None else json.dumps(detail, default=str)),
    )
    return cur.lastrowid


def audit_rows(conn, *, account_id: int | None = None, entity: str | None = None, limit: int = 100) -> list[dict]:
    cur = conn.cursor()
    where, args = [], []
    if account_id is not None:
        where.append("account_id = %s")
        args.append(account_id)
    if entity is not None:
        where.append("entity = %s")
        args.append(entity)
    cur.execute(
        "SELECT audit_id, at, actor, account_id, entity, entity_id, action, before_json, after_json, detail "
        "FROM snapsync_audit" + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY audit_id DESC LIMIT %s", (*args, limit))
    out = []
    for r in cur.fetchall():
        out.append({"audit_id": r[0], "at": r[1].isoformat(), "actor": r[2], "account_id": r[3], "entity": r[4],
                    "entity_id": r[5], "action": r[6],
                    "before": json.loads(r[7]) if r[7] else None, "after": json.loads(r[8]) if r[8] else None,
                    "detail": json.loads(r[9]) if r[9] else None})
    conn.commit()
    return out


def customer_accounts(conn, customers) -> dict[int, int]:
    """``{customer_id: account_id}`` for those of ``customers`` that exist."""
    customers = list(customers)
    if not customers:
        return {}
    cur = conn.cursor()
    cur.execute("SELECT customer_id, account_id FROM customer WHERE customer_id IN ("
                + ",".join(["%s"] * len(customers)) + ")", customers)
    return dict(cur.fetchall())
