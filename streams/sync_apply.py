"""Data Sync in the stream: turning a source edit into commands (fan-out), and applying a
command to a target customer. Plain functions over pymysql connections; the faust agents
(``streams/agents.py``) only move messages to and from them.

* Items are matched by the data set's natural key within a customer, never by id.
* create-only creates a missing item and never modifies an existing one; override makes
  the target item equal to the source's except its id, its ``customer_id`` and the
  never-copied columns (a created item gets NULL there).
* Deletes in the source are not propagated.
* One source transaction per command: the write, its audit record (into the signal schema's
  outbox) with the before-image (for ``undo``), the echo marker and the "applied" mark commit
  together, so redelivery is a no-op and a crash leaves nothing half-applied. The audit
  record moves to the state store after the batch (``control/audit.py``).
* No echo: the applier records a digest of each row it wrote; when that very row image
  comes back through the change stream the fan-out recognises it and does not fan out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

import pymysql

from snapsync.connectors.mysql import encoded_rows
from snapsync.connectors.state import signal_table
from snapsync.control import moves, sync_groups
from snapsync.control.accounts import account_of, customer_accounts
from snapsync.control.audit import record_source_audit
from snapsync.control.data_sync import mark_echo, mysql_texts, save_before, where_natural_key
from snapsync.control.notifications import notify
from snapsync.schemas.catalog import DataSet, dataset
from snapsync.schemas.control import utcnow
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import ChangeEvent
from snapsync.schemas.messages import SyncCommand, row_digest

Outcome = Literal["created", "overridden", "unchanged", "exists", "duplicate", "moved"]


# --- fan-out -------------------------------------------------------------------------------
def plan_commands(event: ChangeEvent, routes: list[tuple[int, int, str]],
                  path: tuple[int, ...] = ()) -> list[SyncCommand]:
    """One command per sync-to customer for an insert or update of a sync-from item.

    ``routes``: (group id, target customer, mode) of the source customer's groups;
    ``path``: the customers the change was applied in before (empty: an edit made here).
    """
    if event.op not in ("c", "u") or event.after is None:
        return []
    missing = [c for c in dataset(event.table).natural_key if event.after.get(c) is None]
    if missing and routes:
        raise DataError(f"the row image has no natural-key column {', '.join(missing)}: it cannot be matched")
    source = int(event.after["customer_id"])
    path = tuple(path) or (source,)
    p = event.position
    return [
        SyncCommand(command_id=f"{p.file}:{p.pos}:{p.row}>{group}:{target}", group_id=group, mode=mode,
                    table=event.table, source_customer=source, target_customer=target, values=event.after,
                    path=path, source_ts_ms=event.source_ts_ms)
        for group, target, mode in routes if target not in path
    ]


def fanout_plan(conn, state, event: ChangeEvent) -> tuple[list[SyncCommand], int | None]:
    """Commands for one change event, and the source account (None: nothing to do).
    ``conn``: the source (``connect_source``), ``state``: the state store (the groups).

    A change that is snapsync's own write (an applied command coming back) goes on only to
    the targets it has not been applied in yet: a chain 1 -> 4 -> 7 carries an edit of 1 to
    7, a cycle 1 -> 4 -> 7 -> 1 stops when it comes back to 1.
    """
    if event.op not in ("c", "u") or event.after is None:
        return [], None  # snapshot reads and deletes are not propagated
    ds = dataset(event.table)
    if ds.sync_category is None or "customer_id" not in event.after:
        return [], None
    routes = sync_groups.routes_for(state, int(event.after["customer_id"]), ds.sync_category)
    state.commit()
    if not routes:
        return [], None
    echo, path = applied_path(conn, event)
    if echo and path is None:
        return [], None  # snapsync's own write that never fans out (an undo)
    routes = owned_routes(conn, state, int(event.after["customer_id"]), routes)
    cmds = plan_commands(event, routes, tuple(path or ()))
    if not cmds:
        return [], None
    account = account_of(conn, int(event.after["customer_id"]))
    conn.commit()
    return cmds, account


def owned_routes(conn, state, source: int, routes: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The routes whose group's account owns the source and the target now. A customer moved to
    another account since the group was saved fails its routes, and the account's groups are
    checked again (``control/moves.py``: the moved customer is dropped, both accounts told)."""
    accounts = {g: sync_groups.group_account(state, g) for g in {r[0] for r in routes}}
    state.commit()
    owners = customer_accounts(conn, {source, *(r[1] for r in routes)})
    conn.commit()
    kept = [r for r in routes if accounts[r[0]] is not None and owners.get(source) == accounts[r[0]]
            and owners.get(r[1]) == accounts[r[0]]]
    if len(kept) < len(routes):
        for account in sorted({a for a in accounts.values() if a is not None}):
            moves.recheck_groups(state, conn, account)
    return kept


def owned_command(conn, state, cmd: SyncCommand) -> bool:
    """Whether the command's source and target customers still belong to its group's account (to
    one account, when the group is gone); when not, the account's groups are checked again."""
    account = sync_groups.group_account(state, cmd.group_id)
    state.commit()
    owners = customer_accounts(conn, [cmd.source_customer, cmd.target_customer])
    expected = account if account is not None else owners.get(cmd.source_customer)
    if expected is not None and owners.get(cmd.source_customer) == expected == owners.get(cmd.target_customer):
        return True
    conn.rollback()
    if account is not None:
        moves.recheck_groups(state, conn, account)
    return False


def record_pending(_conn, state, account: int, event: ChangeEvent, n: int) -> str:
    """The account's notice that a change will be synchronized to ``n`` customers."""
    message = (f"A change to {dataset(event.table).name} in customer {event.after['customer_id']} "
               f"will be synchronized to {n} customer(s).")
    notify(state.cursor(), account_id=account, kind="sync_pending", message=message,
           detail={"table": event.table, "source_customer": event.after["customer_id"], "targets": n})
    state.commit()
    return message


#: How long the fan-out remembers its decision for an event (replays come within minutes).
SEEN_RETENTION = dt.timedelta(days=7)


def applied_path(conn, event: ChangeEvent) -> tuple[bool, list[int] | None]:
    """Whether this change is snapsync's own write, and then the path it was applied along.

    The applier's marker is taken (it matches the row image's digest) and the decision is
    kept by the event's binlog position, so that an event replayed after a crash is routed
    exactly as the first time.
    """
    event_id = f"{event.position.file}:{event.position.pos}:{event.position.row}"
    seen_t, echo_t = signal_table(conn, "snapsync_sync_seen"), signal_table(conn, "snapsync_sync_echo")
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT path FROM {seen_t} WHERE event_id = %s", (event_id,))
        seen = cur.fetchone()
        if seen is not None:
            return True, None if seen[0] is None else json.loads(seen[0])
        cur.execute(f"SELECT echo_id, path FROM {echo_t} WHERE table_name = %s AND row_id = %s "
                    "AND digest = %s ORDER BY echo_id LIMIT 1 FOR UPDATE",
                    (event.table, event.after.get("id"), row_digest(event.after)))
        marker = cur.fetchone()
        if marker is None:
            return False, None
        cur.execute(f"DELETE FROM {echo_t} WHERE echo_id = %s", (marker[0],))
        cur.execute(f"INSERT INTO {seen_t} (event_id, path, seen_at) VALUES (%s, %s, %s)",
                    (event_id, marker[1], utcnow()))
        cur.execute(f"DELETE FROM {seen_t} WHERE seen_at < %s LIMIT 100", (utcnow() - SEEN_RETENTION,))
        return True, None if marker[1] is None else json.loads(marker[1])
    finally:
        conn.commit()


# --- apply ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyPlan:
    """What applying a command to the target's current item does."""

    outcome: Outcome
    columns: tuple[str, ...] = ()  # columns written (all copied ones on create, the changed ones on override)


def plan_apply(ds: DataSet, mode: str, new: dict[str, str | None], existing: dict[str, str | None] | None) -> ApplyPlan:
    """Decide the write, from the source's values and the target's item (MySQL text values)."""
    cols = ds.sync_columns
    if existing is None:
        return ApplyPlan("created", cols)
    if mode != "override":
        return ApplyPlan("exists")
    changed = tuple(c for c in cols if existing.get(c) != new.get(c))
    return ApplyPlan("overridden", changed) if changed else ApplyPlan("unchanged")


def apply_command(conn, state, cmd: SyncCommand, *, mark: bool | None = None) -> Outcome:
    """Apply one command in one source transaction (``conn``: from ``connect_source``;
    ``state``: the state store, read for the target's own groups). Returns what happened:
    ``created``, ``overridden``, ``unchanged``, ``exists`` (create-only), ``duplicate``, or
    ``moved``: the source or the target no longer belongs to the group's account (nothing
    written; a command planned before the move is refused when it is applied)."""
    ds = dataset(cmd.table)
    cur = conn.cursor()  # the connection reads committed (streams/app.py Database)
    try:
        # In the write's transaction: the owners as they are when the write is made.
        if not owned_command(conn, state, cmd):
            return "moved"
        try:  # claim the command first: a redelivered command stops here
            cur.execute(f"INSERT INTO {signal_table(conn, 'snapsync_sync_applied')} (command_id, applied_at) "
                        "VALUES (%s, %s)", (cmd.command_id, utcnow()))
        except pymysql.err.IntegrityError:
            conn.rollback()
            return "duplicate"
        new = mysql_texts(ds, cmd.values)
        if any(new.get(c) is None for c in ds.natural_key):
            raise DataError(f"the command has no natural-key column {', '.join(ds.natural_key)}")
        nk = [new[c] for c in ds.natural_key]
        cur.execute(f"SELECT * FROM `{ds.table}` WHERE customer_id = %s AND {where_natural_key(ds)} FOR UPDATE",
                    (cmd.target_customer, *nk))
        existing = encoded_rows(cur)
        before = existing[0] if existing else None
        plan = plan_apply(ds, cmd.mode, new, None if before is None else mysql_texts(ds, before))
        row_id = None if before is None else before["id"]
        if plan.outcome == "created":
            cur.execute(f"INSERT INTO `{ds.table}` (`customer_id`, " + ", ".join(f"`{c}`" for c in plan.columns)
                        + ") VALUES (%s" + ", %s" * len(plan.columns) + ")",
                        (cmd.target_customer, *(new[c] for c in plan.columns)))
            row_id = cur.lastrowid
        elif plan.outcome == "overridden":
            cur.execute(f"UPDATE `{ds.table}` SET " + ", ".join(f"`{c}` = %s" for c in plan.columns)
                        + " WHERE id = %s", (*(new[c] for c in plan.columns), row_id))
        if plan.outcome in ("created", "overridden"):
            cur.execute(f"SELECT * FROM `{ds.table}` WHERE id = %s", (row_id,))
            after = encoded_rows(cur)[0]
            if mark is None:
                # Only a target that is itself a sync-from customer of this category has its
                # changes fanned out; only there can the write echo, so only there is it marked.
                mark = bool(sync_groups.routes_for(state, cmd.target_customer, ds.sync_category))
                state.commit()
            if mark:
                mark_echo(cur, ds.table, row_id, after, [*(cmd.path or (cmd.source_customer,)), cmd.target_customer])
            journal = record_source_audit(
                cur, account_id=None, entity="sync_apply", entity_id=cmd.command_id,
                action="create" if plan.outcome == "created" else "override", before=before, after=after,
                detail={"group_id": cmd.group_id, "table": ds.table, "source_customer": cmd.source_customer,
                        "target_customer": cmd.target_customer, "mode": cmd.mode}, who="snapsync-sync")
            save_before(cur, journal, ds, cmd.target_customer, row_id, dict(zip(ds.natural_key, nk)), before,
                        after)
        conn.commit()
        return plan.outcome
    except BaseException:
        conn.rollback()
        raise
