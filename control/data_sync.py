"""Data Sync writes started from the control plane: the initial copy of a new group or
target (queued as a task the worker makes, ``control/sync_tasks.py``), and the group actions
that trigger a copy. The stream applier (``streams/sync_apply.py``) and undo share the helpers
for before-images and echo markers.

Rules (docs/contracts.md, Data Sync): items are matched by natural key; create-only
creates what is missing and never modifies; override makes the target item equal to the
source's except id, ``customer_id`` and the never-copied columns.
"""

from __future__ import annotations

import json
from typing import Any

import pymysql

from snapsync.connectors.state import connect_source, connect_state, signal_table
from snapsync.control import sync_groups
from snapsync.control.audit import flush_outbox, record_source_audit
from snapsync.schemas.catalog import DataSet
from snapsync.schemas.config import Settings
from snapsync.schemas.control import SyncGroup, utcnow
from snapsync.schemas.events import image_texts
from snapsync.schemas.messages import row_digest


def mysql_texts(ds: DataSet, image: dict[str, Any]) -> dict[str, str | None]:
    """The columns an event image has, as MySQL text values."""
    return image_texts(ds, image, complete=False)


def where_natural_key(ds: DataSet) -> str:
    return " AND ".join(f"`{c}` = %s" for c in ds.natural_key)


def mark_echo(cur, table: str, row_id: int, image: dict[str, Any], path: list[int] | None) -> None:
    """Remember a row image snapsync wrote. When it comes back through the change stream the
    fan-out sends it on only to targets not in ``path`` (the customers the change has been
    applied in, from its origin); ``path`` None: never fan it out."""
    cur.execute(f"INSERT INTO {signal_table(cur.connection, 'snapsync_sync_echo')} (table_name, row_id, digest, "
                "path, created_at) VALUES (%s, %s, %s, %s, %s)",
                (table, row_id, row_digest(image), None if path is None else json.dumps(path), utcnow()))


def save_before(cur, journal_id: int, ds: DataSet, target: int, row_id: int | None, natural_key: dict,
                before: dict[str, Any] | None, after: dict[str, Any] | None = None) -> None:
    """The before-image of one application (None: the row was created), for undo, and what
    it wrote (to tell at undo time whether the item changed since), in the source transaction."""
    cur.execute(f"INSERT INTO {signal_table(cur.connection, 'snapsync_sync_before')} (journal_id, table_name, "
                "target_customer, row_id, natural_key, before_json, after_json) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (journal_id, ds.table, target, row_id, json.dumps(natural_key),
                 None if before is None else json.dumps(mysql_texts(ds, before)),
                 None if after is None else json.dumps({c: v for c, v in mysql_texts(ds, after).items()
                                                        if c in ds.sync_columns})))


def _text_object(alias: str, columns) -> str:
    """SQL: a JSON object of the columns as MySQL text (``CAST(... AS CHAR)``)."""
    return "JSON_OBJECT(" + ", ".join(f"'{c}', CAST({alias}.`{c}` AS CHAR)" for c in columns) + ")"


#: Items of an override whose replaced values an initial copy's audit record lists (the
#: before-images of all of them are kept for undo in any case).
REPLACED_LISTED = 50


def _replaced(cur, before_table: str, journal: int, ds: DataSet) -> list[dict]:
    """What an override copy replaced, from its before-images: per item its natural key and
    ``{column: [before, after]}`` of the columns it changed (setup data, for the account that
    owns it: the Data Sync page's list of overrides)."""
    cur.execute(f"SELECT natural_key, before_json, after_json FROM {before_table} WHERE journal_id = %s AND "
                "before_json IS NOT NULL LIMIT %s", (journal, REPLACED_LISTED))
    out = []
    for nk, before, after in cur.fetchall():
        b, a = json.loads(before), json.loads(after or "{}")
        out.append({"key": json.loads(nk), "changes": {c: [b.get(c), v] for c, v in a.items() if b.get(c) != v}})
    return out


def initial_copy(conn, group_id: int | None, source: int, target: int, tables: list[DataSet], mode: str,
                 account_id: int | None = None, _known_empty: bool | None = None, *, entity: str = "sync_apply",
                 entity_id: str | None = None, extra: dict | None = None, who: str = "snapsync-sync") -> dict:
    """The bulk copy of a new group or target (and of a Data Copy between accounts): set-based
    SQL, one transaction per table, before-images kept for undo under one audit record each (of
    ``account_id``, so the account's audit history shows it), which says how many items it
    created and overrode and lists what the first overrides replaced. ``conn``: from
    ``connect_source``; the audit records wait in the outbox until ``flush_outbox``.

    Args:
        entity, entity_id, extra: the audit records' entity (``sync_apply``; a Data Copy's are
            ``data_copy_apply``), id (default ``initial:<group>:<target>``) and detail added.
    """
    counts = {}
    before_table = signal_table(conn, "snapsync_sync_before")
    outbox = signal_table(conn, "snapsync_audit_outbox")
    cur = conn.cursor()
    cur.execute("SELECT @@innodb_autoinc_lock_mode")
    consecutive = int(cur.fetchone()[0]) in (0, 1)
    again = {"entity": entity, "entity_id": entity_id, "extra": extra, "who": who}
    for ds in tables:
        cur = conn.cursor()
        cols = list(ds.sync_columns)
        collist = ", ".join(f"`{c}`" for c in cols)
        src_cols = ", ".join(f"s.`{c}`" for c in cols)
        match = " AND ".join(f"x.`{c}` = s.`{c}`" for c in ds.natural_key)
        nk_json = "JSON_OBJECT(" + ", ".join(f"'{c}', s.`{c}`" for c in ds.natural_key) + ")"
        detail = {**(extra or {}), "group_id": group_id, "table": ds.table, "source_customer": source,
                  "target_customer": target, "mode": mode}
        journal = record_source_audit(cur, account_id=account_id, entity=entity,
                                      entity_id=entity_id or f"initial:{group_id}:{target}",
                                      action=f"initial-{mode}", detail=detail, who=who)
        cur.execute(f"SELECT 1 FROM `{ds.table}` WHERE customer_id = %s LIMIT 1", (target,))
        empty = cur.fetchone() is None and _known_empty is not False  # a new customer: nothing to match
        missing = (f"FROM `{ds.table}` s WHERE s.customer_id = %s AND NOT EXISTS "
                   f"(SELECT 1 FROM `{ds.table}` x WHERE x.customer_id = %s AND {match})")
        if empty:  # the same rows without the anti-join (a row added meanwhile: the unique key refuses it)
            missing = f"FROM `{ds.table}` s WHERE s.customer_id = %s AND %s IS NOT NULL"
        changed = 0
        written = _text_object("s", cols)  # what the copy writes, as undo compares it later
        if mode == "override" and not empty:
            all_cols = _text_object("x", ds.column_names)
            differs = " OR ".join(f"NOT (x.`{c}` <=> s.`{c}`)" for c in cols) or "FALSE"
            cur.execute(
                f"INSERT INTO {before_table} (journal_id, table_name, target_customer, row_id, natural_key, "
                f"before_json, after_json) SELECT %s, %s, %s, x.id, {nk_json}, {all_cols}, {written} "
                f"FROM `{ds.table}` x JOIN `{ds.table}` s ON s.customer_id = %s AND {match} "
                f"WHERE x.customer_id = %s AND ({differs})",
                (journal, ds.table, target, source, target))
            changed = cur.rowcount
        if not consecutive:
            # Interleaved AUTO_INCREMENT (mode 2, MySQL 8's default): record each created key.
            cur.execute(f"INSERT INTO {before_table} (journal_id, table_name, target_customer, row_id, "
                        f"natural_key, before_json, after_json) SELECT %s, %s, %s, NULL, {nk_json}, NULL, {written} "
                        f"{missing}", (journal, ds.table, target, source, target))
        # Created rows: with innodb_autoinc_lock_mode 0 or 1 one INSERT ... SELECT holds the
        # AUTO-INC lock for the statement and gets consecutive ids: undo needs only the range.
        try:
            cur.execute(f"INSERT INTO `{ds.table}` (`customer_id`, {collist}) SELECT %s, {src_cols} {missing}",
                        (target, source, target))
        except pymysql.err.IntegrityError:  # the target got an item meanwhile: copy this table again, matched
            conn.rollback()
            counts.update(initial_copy(conn, group_id, source, target, [ds], mode, account_id, _known_empty=False,
                                       **again))
            continue
        created = cur.rowcount
        if created and consecutive:
            cur.execute("SELECT LAST_INSERT_ID()")
            first = cur.fetchone()[0]
            # The range only (what undo removes): no after-image of each created row, which would
            # cost as much as the copy; undo asks for --force to remove created items.
            cur.execute(f"INSERT INTO {before_table} (journal_id, table_name, target_customer, row_id, "
                        "natural_key, before_json) VALUES (%s, %s, %s, %s, %s, NULL)",
                        (journal, ds.table, target, first, json.dumps({"__created_ids__": created})))
        if mode == "override" and changed:
            updates = ", ".join(f"x.`{c}` = s.`{c}`" for c in cols if c not in ds.natural_key)
            cur.execute(f"UPDATE `{ds.table}` x JOIN `{ds.table}` s ON s.customer_id = %s AND {match} "
                        f"SET {updates} WHERE x.customer_id = %s", (source, target))
        cur.execute(f"SELECT COUNT(*) FROM `{ds.table}` WHERE customer_id = %s", (source,))
        offered = int(cur.fetchone()[0])
        replaced = _replaced(cur, before_table, journal, ds) if changed else []
        # The record says what the copy did (the invoice counts its items, the Data Sync page
        # lists what it replaced), in the same transaction as the copy.
        cur.execute(f"UPDATE {outbox} SET detail = %s WHERE outbox_id = %s",
                    (json.dumps({**detail, "created": created, "overridden": changed, "source_items": offered,
                                 "replaced": replaced}, default=str), journal))
        conn.commit()
        counts[ds.table] = {"created": created, "overridden": changed, "source_items": offered}
    return counts


def copy_tables(settings: Settings, group: SyncGroup, target: int, tables: list[DataSet]) -> dict:
    """The initial copy of ``tables`` from ``group``'s sync-from customer into ``target``, on
    connections of its own (the worker makes it: ``control/sync_tasks.py``). Returns
    ``{table: {created, overridden}}``.

    Raises:
        ConfigError: the sync-from or the target customer no longer belongs to the group's
            account (nothing copied; the account's groups are checked again, ``control/moves.py``).
    """
    from snapsync.control import moves

    with connect_state(settings) as state, connect_source(settings) as conn:
        if moves.not_owned(conn, group.account_id, (group.source_customer, target)):
            moves.recheck_groups(state, conn, group.account_id)
            moves.check_owned(conn, group.account_id, (group.source_customer, target), what="the initial copy")
        try:
            return initial_copy(conn, group.group_id, group.source_customer, target, tables, group.mode,
                                group.account_id)
        finally:
            flush_outbox(conn, state)


def _queue_copies(conn, group: SyncGroup, targets, who: str | None) -> dict[int, int]:
    """Copy tasks for ``targets`` when the account's Data Sync is on (in the caller's transaction)."""
    from snapsync.control.sync_tasks import enqueue_copy

    if not targets or not sync_groups.service_enabled(conn, group.account_id):
        return {}
    return enqueue_copy(conn.cursor(), group, targets, who=who)


def create_group(settings: Settings, source: int, targets: tuple[int, ...], categories: tuple[str, ...],
                 mode: str = "create-only", *, account_id: int | None = None,
                 who: str | None = None) -> tuple[SyncGroup, dict[int, int]]:
    """Add a group (validated, audited) and queue its initial copy, in one transaction; the
    worker makes the copy. Returns (group, ``{target: copy task id}``; {} when the account's
    Data Sync is disabled).

    ``account_id``: the account the caller acts in (the web app), see
    :func:`~snapsync.control.sync_groups.add_group`."""
    tasks: dict[int, int] = {}

    def then(conn, group):
        tasks.update(_queue_copies(conn, group, group.targets, who))

    group = sync_groups.add_group(settings, source, targets, categories, mode, account_id=account_id, who=who,
                                  then=then)
    return group, tasks


def change_group(settings: Settings, group_id: int, **changes) -> tuple[SyncGroup, SyncGroup, dict[int, int]]:
    """Edit a group (keywords of :func:`~snapsync.control.sync_groups.edit_group`); targets
    it did not have before get the initial copy, and every target does when the sync-from
    customer changed (queued in the same transaction). Returns (before, after, copy tasks)."""
    tasks: dict[int, int] = {}

    def then(conn, before, after):
        added = (list(after.targets) if after.source_customer != before.source_customer
                 else [t for t in after.targets if t not in before.targets])
        tasks.update(_queue_copies(conn, after, added, changes.get("who")))

    before, after = sync_groups.edit_group(settings, group_id, then=then, **changes)
    return before, after, tasks


def enable_service(settings: Settings, account_id: int, *, who: str | None = None) -> list[SyncGroup]:
    """Enable the account's Data Sync and queue the copy of every group's current items (one
    transaction)."""
    groups: list[SyncGroup] = []

    def then(conn):
        groups.extend(sync_groups.load_groups(conn, account_id, commit=False))
        for g in groups:
            _queue_copies(conn, g, g.targets, who)

    sync_groups.set_service(settings, account_id, True, who=who, then=then)
    return groups
