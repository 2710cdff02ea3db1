"""What Data Sync overrode in an account, for its Data Sync page: each group's recent
overrides with what they replaced, whether each was undone, and its latest undo.

Everything is read from the state store's audit history (the stream applier's records carry
the row before and after; an initial copy's record lists what its first overrides replaced),
so the web app needs no right on the signal schema. Only the account's own applications are
read: records of the account, or without an account whose target customer is one of its
customers. The values shown are the account's own setup data (codes, fee schedules,
facilities, referring providers, payers).
"""

from __future__ import annotations

import json
from typing import Any

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control.accounts import customers_of
from snapsync.schemas.catalog import dataset
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import NotFoundError
from snapsync.schemas.events import image_texts

OVERRIDES = ("override", "initial-override")
_COLUMNS = "audit_id, at, actor, entity_id, action, before_json, after_json, detail"


def _owned(customers: list[int]) -> tuple[str, list[Any]]:
    """SQL and arguments: the record belongs to the account (``%s`` first: its id)."""
    if not customers:
        return "account_id = %s", []
    return ("(account_id = %s OR (account_id IS NULL AND JSON_VALUE(detail, '$.target_customer') IN ("
            + ",".join(["%s"] * len(customers)) + ")))"), [*customers]


def _changes(ds, before: dict | None, after: dict | None) -> tuple[dict, list[dict]]:
    """(natural key, [{column, before, after}]) of a stream application's row images."""
    b = image_texts(ds, before or {}, complete=False)
    a = image_texts(ds, after or {}, complete=False)
    key = {c: a.get(c) for c in ds.natural_key}
    return key, [{"column": c, "before": b.get(c), "after": a.get(c)} for c in ds.sync_columns
                 if c in a and b.get(c) != a.get(c)]


def _view(row, names: dict[int, str]) -> dict:
    audit_id, at, actor, _entity_id, action, before, after, detail = row
    d = json.loads(detail) if detail else {}
    ds = dataset(d["table"]) if d.get("table") else None
    item: dict[str, Any] = {"audit_id": audit_id, "at": at.isoformat(), "action": action,
                            "group_id": d.get("group_id"), "table": d.get("table"),
                            "data_set": ds.name if ds else d.get("table"), "target_customer": d.get("target_customer"),
                            "target_name": names.get(d.get("target_customer")),
                            "source_customer": d.get("source_customer"),
                            "initial_copy": action.startswith("initial-"), "replaced": [], "more": 0, "created": 0}
    if action.startswith("initial-"):
        listed = d.get("replaced") or []
        item["replaced"] = [{"key": r["key"], "changes": [{"column": c, "before": v[0], "after": v[1]}
                                                       for c, v in r["changes"].items()]} for r in listed]
        item["more"] = max(0, int(d.get("overridden") or 0) - len(listed))
        item["created"] = int(d.get("created") or 0)
    elif ds is not None:
        key, changes = _changes(ds, json.loads(before) if before else None, json.loads(after) if after else None)
        item["replaced"] = [{"key": key, "changes": changes}]
    return item


def _undone(cur, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    cur.execute("SELECT entity_id, at, actor, detail FROM snapsync_audit WHERE entity = 'sync_apply' AND "
                f"action = 'undo' AND entity_id IN ({','.join(['%s'] * len(ids))})", [str(i) for i in ids])
    out = {}
    for entity_id, at, who, detail in cur.fetchall():
        d = json.loads(detail) if detail else {}
        out[int(entity_id)] = {"at": at.isoformat(), "by": who, "rows": d.get("rows"), "forced": d.get("forced")}
    return out


def recent_overrides(settings: Settings, account_id: int, group_ids: list[int],
                     per_group: int = 10) -> dict[int, list[dict]]:
    """``{group id: [override, newest first]}``: each with the data set, the target customer,
    per item its natural key and the columns it replaced (before and after), and ``undone``."""
    with connect(settings.db) as practice:
        names = dict(customers_of(practice, account_id))
    owned, args = _owned(list(names))
    out: dict[int, list[dict]] = {}
    with connect_state(settings) as conn:
        cur = conn.cursor()
        for gid in group_ids:
            cur.execute(f"SELECT {_COLUMNS} FROM snapsync_audit WHERE entity = 'sync_apply' AND action IN "
                        f"(%s, %s) AND JSON_VALUE(detail, '$.group_id') = %s AND {owned} "
                        "ORDER BY audit_id DESC LIMIT %s", (*OVERRIDES, gid, account_id, *args, per_group))
            out[gid] = [_view(r, names) for r in cur.fetchall()]
        undone = _undone(cur, [i["audit_id"] for items in out.values() for i in items])
        conn.commit()
    for items in out.values():
        for i in items:
            i["undone"] = undone.get(i["audit_id"])
    return out


def application(settings: Settings, account_id: int, audit_id: int) -> dict:
    """One sync application of the account (any action but an undo), as the overrides list
    shows it, with its latest undo task (``undo``: the task's view, its conflicts when refused).

    Raises:
        NotFoundError: not a sync application of this account (another account's reads the same).
    """
    from snapsync.control.sync_tasks import get

    with connect(settings.db) as practice:
        names = dict(customers_of(practice, account_id))
    owned, args = _owned(list(names))
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {_COLUMNS} FROM snapsync_audit WHERE audit_id = %s AND entity = 'sync_apply' AND "
                    f"action <> 'undo' AND {owned}", (audit_id, account_id, *args))
        row = cur.fetchone()
        if row is None:
            conn.commit()
            raise NotFoundError(f"sync application {audit_id} does not exist")
        item = _view(row, names)
        item["undone"] = _undone(cur, [audit_id]).get(audit_id)
        cur.execute("SELECT task_id FROM snapsync_sync_task WHERE account_id = %s AND kind = 'undo' AND "
                    "JSON_VALUE(payload, '$.audit_id') = %s ORDER BY task_id DESC LIMIT 1", (account_id, audit_id))
        task = cur.fetchone()
        conn.commit()
        item["undo"] = get(conn, [task[0]])[0].view() if task else None
    return item
