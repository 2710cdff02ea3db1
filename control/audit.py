"""The audit history: every change of configuration, every delivery and every sync
application, with who made it, in the state store's ``snapsync_audit``.

Records of snapsync's own writes to the source (Data Sync applications, initial copies, undo)
must commit with those writes, so they are written into the signal schema's
``snapsync_audit_outbox`` in the source transaction (:func:`record_source_audit`) and moved into
the state store right after (:func:`flush_outbox`; a record left by a crash in between is moved
by the next flush). The outbox id is the application's *journal id*: its before-images in the
signal schema carry it, and the state record keeps it (``journal_id``), so undo finds them.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from snapsync.schemas.control import utcnow


#: How an account's own history names whatever was done by an operator from the command line.
OPERATOR = "operator"


def actor() -> str:
    """Who is acting: ``SNAPSYNC_ACTOR`` or the OS user."""
    return os.environ.get("SNAPSYNC_ACTOR") or getpass.getuser()


def tenant_actor(name: str, people: set[str]) -> str:
    """Who acted, as an account sees it: its own users by e-mail, snapsync's own work by its
    name (``snapsync``, ``snapsync-sync``...), anyone else as :data:`OPERATOR` (an operator's OS
    login or ``SNAPSYNC_ACTOR`` tells a tenant nothing it should know)."""
    return name if name in people or name.startswith("snapsync") else OPERATOR


def _people(state, account_id: int) -> set[str]:
    cur = state.cursor()
    cur.execute("SELECT email FROM snapsync_user WHERE account_id = %s", (account_id,))
    return {r[0] for r in cur.fetchall()}


def _insert(cur, table: str, account_id, entity, entity_id, action, before, after, detail, who) -> int:
    def js(value):
        return None if value is None else json.dumps(value, default=str)

    cur.execute(f"INSERT INTO {table} (at, actor, account_id, entity, entity_id, action, before_json, after_json, "
                "detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (utcnow(), who or actor(), account_id, entity, entity_id, action, js(before), js(after), js(detail)))
    return cur.lastrowid


def record_audit(cur, *, account_id: int | None, entity: str, entity_id: str | None, action: str,
                 before: Any = None, after: Any = None, detail: Any = None, who: str | None = None) -> int:
    """Append one audit record in the caller's transaction; returns its id."""
    return _insert(cur, "snapsync_audit", account_id, entity, entity_id, action, before, after, detail, who)


def record_source_audit(cur, *, account_id: int | None, entity: str, entity_id: str | None, action: str,
                        before: Any = None, after: Any = None, detail: Any = None, who: str | None = None) -> int:
    """Append one audit record in the caller's *source* transaction (a connection from
    ``connect_source``): it goes to the outbox, and :func:`flush_outbox` moves it. Returns
    its journal id."""
    from snapsync.connectors.state import signal_table

    return _insert(cur, signal_table(cur.connection, "snapsync_audit_outbox"), account_id, entity, entity_id,
                   action, before, after, detail, who)


#: Outbox records moved per round trip.
OUTBOX_BATCH = 500


def flush_outbox(source, state) -> int:
    """Move every record of the outbox (``source``: a ``connect_source`` connection) into the
    state store's audit (``state``), each exactly once: the state record is keyed by its
    journal id, so a flush interrupted between its two commits moves nothing twice. Returns
    how many were moved.

    The Data Sync and Data Copy items the records applied are counted for the invoice in the
    same state transaction, keyed by the same journal id (``control/usage.py``): a record moved
    twice is counted once."""
    from snapsync.connectors.state import signal_table
    from snapsync.control import usage

    outbox = signal_table(source, "snapsync_audit_outbox")
    moved = 0
    while True:
        cur = source.cursor()
        cur.execute(f"SELECT outbox_id, at, actor, account_id, entity, entity_id, action, before_json, after_json, "
                    f"detail FROM {outbox} ORDER BY outbox_id LIMIT %s", (OUTBOX_BATCH,))
        rows = cur.fetchall()
        source.commit()
        if not rows:
            return moved
        events = usage.application_events(source, rows)
        source.commit()
        st = state.cursor()
        st.executemany("INSERT IGNORE INTO snapsync_audit (journal_id, at, actor, account_id, entity, entity_id, "
                       "action, before_json, after_json, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       [tuple(r) for r in rows])
        counted = [e for e in events if usage.record(st, e)]
        state.commit()
        usage.observe(counted)
        cur.execute(f"DELETE FROM {outbox} WHERE outbox_id IN ({','.join(['%s'] * len(rows))})",
                    [r[0] for r in rows])
        source.commit()
        moved += len(rows)


def flush_outbox_of(settings) -> int:
    """:func:`flush_outbox` on connections of its own."""
    from snapsync.connectors.state import connect_source, connect_state

    with connect_source(settings) as source, connect_state(settings) as state:
        return flush_outbox(source, state)


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
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        return audit_rows(conn, account_id=account_id, entity=entity, limit=limit)


def account_history(settings, account_id: int, *, entity: str | None = None, who: str | None = None,
                    since=None, until=None, limit: int = 200, tenant_view: bool = False) -> list[dict]:
    """One account's audit history, newest first, filtered by entity, by who acted and by
    time (``since`` inclusive, ``until`` exclusive; naive UTC datetimes). Sync applications
    recorded without an account are included when their target customer is one of the
    account's (the customer list is read from the practice schema: the state store may be on
    another server). ``tenant_view``: actors as the account sees them (:func:`tenant_actor`;
    ``who`` may then be :data:`OPERATOR`)."""
    from snapsync.connectors.mysql import connect
    from snapsync.connectors.state import connect_state
    from snapsync.control.accounts import customers_of

    with connect(settings.db) as conn:
        customers = [c for c, _n in customers_of(conn, account_id)]
    where = ["(a.account_id = %s" + (" OR (a.account_id IS NULL AND a.entity = 'sync_apply' AND "
             "JSON_VALUE(a.detail, '$.target_customer') IN (" + ",".join(["%s"] * len(customers)) + "))"
             if customers else "") + ")"]
    args: list[Any] = [account_id, *customers]
    with connect_state(settings) as conn:
        people = _people(conn, account_id) if tenant_view else set()
        if tenant_view and who == OPERATOR:
            where.append("a.actor NOT LIKE 'snapsync%%'" + (" AND a.actor NOT IN (" + ",".join(["%s"] * len(people))
                                                            + ")" if people else ""))
            args.extend(sorted(people))
            who = None
        for clause, value in (("a.entity = %s", entity), ("a.actor = %s", who), ("a.at >= %s", since),
                              ("a.at < %s", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        cur = conn.cursor()
        cur.execute(
            "SELECT a.audit_id, a.at, a.actor, a.account_id, a.entity, a.entity_id, a.action, a.before_json, "
            "a.after_json, a.detail FROM snapsync_audit a WHERE " + " AND ".join(where)
            + " ORDER BY a.audit_id DESC LIMIT %s", (*args, limit))
        rows = cur.fetchall()
        conn.commit()
    name = (lambda a: tenant_actor(a, people)) if tenant_view else (lambda a: a)
    return [{"audit_id": r[0], "at": r[1].isoformat(), "actor": name(r[2]), "account_id": account_id, "entity": r[4],
             "entity_id": r[5], "action": r[6], "before": json.loads(r[7]) if r[7] else None,
             "after": json.loads(r[8]) if r[8] else None, "detail": json.loads(r[9]) if r[9] else None}
            for r in rows]


def account_facets(settings, account_id: int, *, tenant_view: bool = False) -> dict[str, list[str]]:
    """The entities and the people found in one account's audit history (for filters);
    ``tenant_view``: people as the account sees them (:func:`tenant_actor`)."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT DISTINCT entity FROM snapsync_audit WHERE account_id = %s ORDER BY 1", (account_id,))
        entities = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT actor FROM snapsync_audit WHERE account_id = %s ORDER BY 1", (account_id,))
        actors = [r[0] for r in cur.fetchall()]
        if tenant_view:
            people = _people(conn, account_id)
            actors = sorted({tenant_actor(a, people) for a in actors})
        conn.commit()
    if "sync_apply" not in entities:
        entities.append("sync_apply")
    return {"entities": entities, "actors": actors}


def record(settings, *, account_id: int | None, entity: str, entity_id: str | None, action: str,
           detail: Any = None, who: str | None = None) -> int:
    """:func:`record_audit` in its own transaction (downloads, sign-ins)."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        audit_id = record_audit(conn.cursor(), account_id=account_id, entity=entity, entity_id=entity_id,
                                action=action, detail=detail, who=who)
        conn.commit()
        return audit_id
