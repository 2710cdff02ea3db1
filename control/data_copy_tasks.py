"""The worker's side of a Data Copy (``control/data_copy.py``): the approved copy and its
undo, made as tasks of ``control/sync_tasks.py`` under the ``sync`` role.

* **The copy** is Data Sync's set-based initial copy from A's customer into B's, its audit
  records (``data_copy_apply``, one per data set, of account B) written with the copy in the
  source transaction, before-images kept for undo. A copy made twice (a worker died before
  recording the task's end) changes nothing the second time, and what it did is read back
  from all of its audit records, so the outcome is the same.
* **The outcome** (the copy's state, both accounts' audit records and A's message) commits in
  the transaction that ends the task (``sync_tasks.finish``): it is recorded once.
* **Undo** restores every data set of the copy in one source transaction, with Data Sync's
  conflict check across all of them.
"""

from __future__ import annotations

import json

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control import data_copy
from snapsync.control.accounts import customer_accounts
from snapsync.control.audit import flush_outbox
from snapsync.control.data_sync import initial_copy
from snapsync.control.notifications import notify
from snapsync.control.sync_undo import undo_many
from snapsync.schemas.catalog import sync_datasets
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow
from snapsync.schemas.errors import ConfigError


def _entity_id(copy_id: int) -> str:
    return f"copy:{copy_id}"


def _records(state, copy_id: int) -> list[tuple[int, str, dict]]:
    """(audit id, action, detail) of the copy's applications, oldest first."""
    cur = state.cursor()
    cur.execute("SELECT audit_id, action, detail FROM snapsync_audit WHERE entity = 'data_copy_apply' AND "
                "entity_id = %s ORDER BY audit_id", (_entity_id(copy_id),))
    rows = [(r[0], r[1], json.loads(r[2]) if r[2] else {}) for r in cur.fetchall()]
    state.commit()
    return rows


def _outcome(records: list[tuple[int, str, dict]]) -> dict:
    """What every run of the copy did, per data set (created and overridden add up over runs;
    the source's item count is the same for each)."""
    tables: dict[str, dict[str, int]] = {}
    for _id, action, d in records:
        if not action.startswith("initial-") or "table" not in d:
            continue
        t = tables.setdefault(d["table"], {"created": 0, "overridden": 0, "source_items": 0})
        t["created"] += int(d.get("created") or 0)
        t["overridden"] += int(d.get("overridden") or 0)
        t["source_items"] = max(t["source_items"], int(d.get("source_items") or 0))
    return {"tables": tables, "created": sum(t["created"] for t in tables.values()),
            "overridden": sum(t["overridden"] for t in tables.values()),
            "source_items": {k: v["source_items"] for k, v in tables.items()}}


def _loaded(settings: Settings, copy_id: int, want: str) -> data_copy.DataCopy:
    with connect_state(settings) as conn:
        copy = data_copy.load(conn, copy_id)
        conn.commit()
    if copy is None or copy.state != want:
        raise ConfigError(f"Data Copy {copy_id} is {copy.status if copy else 'gone'}: nothing to do")
    return copy


def _ended(copy: data_copy.DataCopy, state: str, action: str, result: dict | None, *, for_from: dict,
           for_to: dict, who: str, message: str | None):
    """``then(cur)`` for the task's end: the copy's state, both audit records, A's message."""

    def then(cur) -> None:
        cur.execute("UPDATE snapsync_data_copy SET state = %s, result = COALESCE(%s, result), updated_at = %s "
                    "WHERE copy_id = %s", (state, None if result is None else json.dumps(result), utcnow(),
                                           copy.copy_id))
        data_copy.audit_both(cur, copy, action, for_from=for_from, for_to=for_to, who=who, by="to")
        if message:
            notify(cur, account_id=copy.from_account, kind=f"data_copy_{action}", message=message,
                   detail={"copy_id": copy.copy_id})

    return then


def make_copy(settings: Settings, task) -> tuple[dict, str, object]:
    """Make an approved copy; (result, B's message, what commits with the task's end).

    Raises:
        ConfigError: the copy is not approved, or a customer moved to another account since.
    """
    copy = _loaded(settings, int(task.payload["copy_id"]), "approved")
    with connect(settings.db) as practice:
        owners = customer_accounts(practice, [copy.source_customer, copy.target_customer])
    if owners.get(copy.source_customer) != copy.from_account or owners.get(copy.target_customer) != copy.to_account:
        raise ConfigError(f"Data Copy {copy.copy_id} was not made: a customer it names has moved to another account "
                          "since it was approved")
    tables = [d for c in copy.categories for d in sync_datasets(c)]
    with connect_state(settings) as state, connect_source(settings) as conn:
        try:
            initial_copy(conn, None, copy.source_customer, copy.target_customer, tables, copy.mode, copy.to_account,
                         entity="data_copy_apply", entity_id=_entity_id(copy.copy_id),
                         extra={"copy_id": copy.copy_id, "from_account": copy.from_account},
                         who=copy.decided_by or "snapsync-sync")
        finally:
            flush_outbox(conn, state)
        result = _outcome(_records(state, copy.copy_id))
    sent = sum(result["source_items"].values())
    what = copy.categories_text()
    mode = "only items it did not have were created" if copy.mode == "create-only" else "existing items were overridden"
    b_message = (f"Data Copy #{copy.copy_id} from account #{copy.from_account} is done: its customer "
                 f"#{copy.source_customer}'s {what} were copied into your customer #{copy.target_customer} "
                 f"({copy.target_name}): {result['created']} item(s) created, {result['overridden']} overridden. "
                 "It can be undone from the Data Copy page.")
    a_message = (f"Your Data Copy #{copy.copy_id} is done: customer #{copy.source_customer}'s {what} ({sent} item(s) "
                 f"in {len(result['source_items'])} data set(s)) were copied into account #{copy.to_account}'s "
                 f"customer #{copy.target_customer} ({copy.target_name}); {mode}.")
    then = _ended(copy, "done", "done", result, who=copy.decided_by or "snapsync-sync", message=a_message,
                  for_from={"source_items": result["source_items"]},
                  for_to={"tables": result["tables"], "created": result["created"],
                          "overridden": result["overridden"]})
    return {"copy_id": copy.copy_id, **result}, b_message, then


def undo_copy(settings: Settings, task) -> tuple[dict, str, object]:
    """Undo a copy that was made (every data set, in one source transaction).

    Raises:
        ConfigError: the copy is not done, or nothing is left to undo.
        UndoConflict: (without force) items changed since, listed.
    """
    copy = _loaded(settings, int(task.payload["copy_id"]), "done")
    with connect_state(settings) as state, connect_source(settings) as conn:
        ids = [a for a, action, _d in _records(state, copy.copy_id) if action.startswith("initial-")]
        n = undo_many(conn, state, ids, force=bool(task.payload.get("force")), entities=("data_copy_apply",),
                      account_id=copy.to_account, who=task.requested_by or None, what=f"Data Copy {copy.copy_id}",
                      force_hint=f"`snapsync copy undo {copy.copy_id} --force` (or confirm it on the Data Copy page)",
                      nothing="has nothing to undo: it changed nothing, or was undone already")
    b_message = (f"Data Copy #{copy.copy_id} was undone: {n} item(s) of your customer #{copy.target_customer} "
                 "restored or removed.")
    a_message = (f"Account #{copy.to_account} undid Data Copy #{copy.copy_id}: what it copied into customer "
                 f"#{copy.target_customer} ({copy.target_name}) was restored or removed.")
    then = _ended(copy, "undone", "undo", None, who=task.requested_by or "snapsync-sync", message=a_message,
                  for_from={}, for_to={"rows": n, "forced": bool(task.payload.get("force"))})
    return {"copy_id": copy.copy_id, "rows": n}, b_message, then


def on_failure(task, exc: Exception):
    """What commits with a task's failure: a Data Copy that could not be made is marked failed
    and A is told (without the reason, which may name the other account's customers)."""
    if task.kind != "data_copy":
        return None

    def then(cur) -> None:
        cur.execute("SELECT state FROM snapsync_data_copy WHERE copy_id = %s FOR UPDATE",
                    (int(task.payload["copy_id"]),))
        row = cur.fetchone()
        if row is None or row[0] != "approved":
            return
        cur.execute("UPDATE snapsync_data_copy SET state = 'failed', result = %s, updated_at = %s WHERE copy_id = %s",
                    (json.dumps({"error": str(exc)[:500]}), utcnow(), int(task.payload["copy_id"])))
        copy = data_copy.load(cur.connection, int(task.payload["copy_id"]))
        data_copy.audit_both(cur, copy, "failed", for_from={}, for_to={"error": str(exc)[:500]},
                             who="snapsync-sync", by="to")
        notify(cur, account_id=copy.from_account, kind="data_copy_failed",
               message=f"Your Data Copy #{copy.copy_id} could not be made; account #{copy.to_account} was told why.",
               detail={"copy_id": copy.copy_id})

    return then

