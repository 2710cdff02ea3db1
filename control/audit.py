"""The audit history: every change of configuration, every delivery and every sync
application, with who made it."""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from snapsync.schemas.control import utcnow


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


def history(settings, *, account_id: int | None = None, entity: str | None = None, limit: int = 100) -> list[dict]:
    """:func:`audit_rows` on its own connection."""
    from snapsync.connectors.mysql import connect
    from snapsync.control.tables import ensure_control_tables

    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        return audit_rows(conn, account_id=account_id, entity=entity, limit=limit)


def account_history(settings, account_id: int, *, entity: str | None = None, who: str | None = None,
                    since=None, until=None, limit: int = 200) -> list[dict]:
    """One account's audit history, newest first, filtered by entity, by who acted and by
    time (``since`` inclusive, ``until`` exclusive; naive UTC datetimes). Sync applications
    recorded without an account (by the stream applier) are included when their target
    customer is one of the account's."""
    from snapsync.connectors.mysql import connect

    where = ["(a.account_id = %s OR (a.account_id IS NULL AND a.entity = 'sync_apply' AND "
             "JSON_VALUE(a.detail, '$.target_customer') IN (SELECT customer_id FROM customer WHERE account_id = %s)))"]
    args: list[Any] = [account_id, account_id]
    for clause, value in (("a.entity = %s", entity), ("a.actor = %s", who), ("a.at >= %s", since),
                          ("a.at < %s", until)):
        if value is not None:
            where.append(clause)
            args.append(value)
    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT a.audit_id, a.at, a.actor, a.account_id, a.entity, a.entity_id, a.action, a.before_json, "
            "a.after_json, a.detail FROM snapsync_audit a WHERE " + " AND ".join(where)
            + " ORDER BY a.audit_id DESC LIMIT %s", (*args, limit))
        rows = cur.fetchall()
        conn.commit()
    return [{"audit_id": r[0], "at": r[1].isoformat(), "actor": r[2], "account_id": account_id, "entity": r[4],
             "entity_id": r[5], "action": r[6], "before": json.loads(r[7]) if r[7] else None,
             "after": json.loads(r[8]) if r[8] else None, "detail": json.loads(r[9]) if r[9] else None}
            for r in rows]


def account_facets(settings, account_id: int) -> dict[str, list[str]]:
    """The entities and the people found in one account's audit history (for filters)."""
    from snapsync.connectors.mysql import connect

    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT DISTINCT entity FROM snapsync_audit WHERE account_id = %s ORDER BY 1", (account_id,))
        entities = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT actor FROM snapsync_audit WHERE account_id = %s ORDER BY 1", (account_id,))
        actors = [r[0] for r in cur.fetchall()]
        conn.commit()
    if "sync_apply" not in entities:
        entities.append("sync_apply")
    return {"entities": entities, "actors": actors}


def record(settings, *, account_id: int | None, entity: str, entity_id: str | None, action: str,
           detail: Any = None, who: str | None = None) -> int:
    """:func:`record_audit` in its own transaction (downloads, sign-ins)."""
    from snapsync.connectors.mysql import connect

    with connect(settings.db) as conn:
        audit_id = record_audit(conn.cursor(), account_id=account_id, entity=entity, entity_id=entity_id,
                                action=action, detail=detail, who=who)
        conn.commit()
        return audit_id
