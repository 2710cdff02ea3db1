"""Data Sync: turning a source edit into commands, applying a command to a target
customer, the initial bulk copy, and undo. Plain functions over a pymysql connection;
the faust agents (``streams/app.py``) only move messages to and from them.

Rules (DESIGN.md contract 8):

* Items are matched by the data set's natural key within a customer, never by id.
* create-only creates a missing item and never modifies an existing one; override makes
  the target item equal to the source's except its id, its ``customer_id`` and the
  never-copied columns (a created item gets NULL there).
* Deletes in the source are not propagated.
* One transaction per command: the write, its audit record with the before-image (for
  ``undo``), the echo marker and the "applied" mark commit together, so redelivery is
  a no-op and a crash leaves nothing half-applied.
* No echo: the applier records a digest of each row it wrote; when that very row image
  comes back through the change stream the fan-out recognises it and does not fan out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import pymysql

from schemas.catalog import DataSet, dataset
from schemas.control import utcnow
from schemas.events import ChangeEvent, dumps, to_mysql_text
from snapsync.control import record_audit
from snapsync.db import encoded_rows


@dataclass(frozen=True)
class SyncCommand:
    """Make ``target_customer``'s item (by natural key) follow the source's image."""

    command_id: str
    group_id: int
    mode: str
    table: str
    source_customer: int
    target_customer: int
    values: dict[str, Any]

    def to_json(self) -> bytes:
        return dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> SyncCommand:
        return cls(**json.loads(raw))


def row_digest(image: dict[str, Any]) -> str:
    """Digest of a row image in the change-event encoding (the same from both sides)."""
    return hashlib.sha256(json.dumps(image, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def copy_columns(ds: DataSet) -> list[str]:
    skip = {"id", ds.tenant_column, *ds.never_copied}
    return [c for c in ds.column_names if c not in skip]


def plan_commands(event: ChangeEvent, routes: list[tuple[int, int, str]]) -> list[SyncCommand]:
    """One command per sync-to customer for an insert or update of a sync-from item."""
    if event.op not in ("c", "u") or event.after is None:
        return []
    p = event.position
    return [
        SyncCommand(command_id=f"{p.file}:{p.pos}:{p.row}>{group}:{target}", group_id=group, mode=mode,
                    table=event.table, source_customer=int(event.after["customer_id"]), target_customer=target,
                    values=event.after)
        for group, target, mode in routes
    ]


def _text(ds: DataSet, col: str, value: Any) -> str | None:
    return to_mysql_text(value, ds.column(col).type)


def _where_nk(ds: DataSet) -> str:
    return " AND ".join(f"`{c}` = %s" for c in ds.natural_key)


def _texts(ds: DataSet, image: dict[str, Any]) -> dict[str, str | None]:
    return {c: _text(ds, c, image.get(c)) for c in ds.column_names if c in image}


def apply_command(conn, cmd: SyncCommand, *, mark_echo: bool | None = None) -> str:
    """Apply one command in one transaction. Returns what happened:
    ``created``, ``overridden``, ``unchanged``, ``exists`` (create-only) or ``duplicate``."""
    ds = dataset(cmd.table)
    cur = conn.cursor()
    # READ COMMITTED: no gap locks, so commands for different targets applied side by side
    # do not deadlock; one target's commands are applied one after another anyway.
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    try:
        try:  # claim the command first: a redelivered command stops here
            cur.execute("INSERT INTO snapsync_sync_applied (command_id, applied_at) VALUES (%s, %s)",
                        (cmd.command_id, utcnow()))
        except pymysql.err.IntegrityError:
            conn.rollback()
            return "duplicate"
        new = _texts(ds, cmd.values)
        nk = [new[c] for c in ds.natural_key]
        cur.execute(f"SELECT * FROM `{ds.table}` WHERE customer_id = %s AND {_where_nk(ds)} FOR UPDATE",
                    (cmd.target_customer, *nk))
        existing = encoded_rows(cur)
        before = existing[0] if existing else None
        cols = copy_columns(ds)
        outcome = "exists"
        row_id = None
        if before is None:
            cur.execute(f"INSERT INTO `{ds.table}` (`customer_id`, " + ", ".join(f"`{c}`" for c in cols)
                        + ") VALUES (%s" + ", %s" * len(cols) + ")", (cmd.target_customer, *(new[c] for c in cols)))
            row_id, outcome = cur.lastrowid, "created"
        elif cmd.mode == "override":
            old = _texts(ds, before)
            changed = [c for c in cols if old.get(c) != new[c]]
            row_id = before["id"]
            if changed:
                cur.execute(f"UPDATE `{ds.table}` SET " + ", ".join(f"`{c}` = %s" for c in changed)
                            + " WHERE id = %s", (*(new[c] for c in changed), row_id))
                outcome = "overridden"
            else:
                outcome = "unchanged"
        if outcome in ("created", "overridden"):
            cur.execute(f"SELECT * FROM `{ds.table}` WHERE id = %s", (row_id,))
            after = encoded_rows(cur)[0]
            if mark_echo is None:
                # Only a target that is itself a sync-from customer of this category has its
                # changes fanned out; only there can the write echo, so only there is it marked.
                from streams.sync_groups import routes_for

                mark_echo = bool(routes_for(conn, cmd.target_customer, ds.sync_category))
            if mark_echo:
                cur.execute("INSERT INTO snapsync_sync_echo (table_name, row_id, digest, created_at) "
                            "VALUES (%s, %s, %s, %s)", (ds.table, row_id, row_digest(after), utcnow()))
            audit_id = record_audit(
                cur, account_id=None, entity="sync_apply", entity_id=cmd.command_id,
                action="create" if outcome == "created" else "override", before=before, after=after,
                detail={"group_id": cmd.group_id, "table": ds.table, "source_customer": cmd.source_customer,
                        "target_customer": cmd.target_customer, "mode": cmd.mode}, who="snapsync-sync")
            cur.execute("INSERT INTO snapsync_sync_before (audit_id, table_name, target_customer, row_id, "
                        "natural_key, before_json) VALUES (%s, %s, %s, %s, %s, %s)",
                        (audit_id, ds.table, cmd.target_customer, row_id,
                         json.dumps(dict(zip(ds.natural_key, nk))),
                         None if before is None else json.dumps(_texts(ds, before))))
        conn.commit()
        return outcome
    except BaseException:
        conn.rollback()
        raise


def take_echo(conn, table: str, image: dict[str, Any]) -> bool:
    """True (and the marker consumed) when this row image is one the applier wrote."""
    cur = conn.cursor()
    cur.execute("DELETE FROM snapsync_sync_echo WHERE table_name = %s AND row_id = %s AND digest = %s LIMIT 1",
                (table, image.get("id"), row_digest(image)))
    conn.commit()
    return cur.rowcount > 0


def initial_copy(conn, group_id: int, source: int, target: int, tables: list[DataSet], mode: str) -> dict:
    """The bulk copy of a new group or target (the old "Data Copy"): set-based SQL, one
    transaction per table, before-images kept for undo under one audit record each."""
    counts = {}
    cur = conn.cursor()
    cur.execute("SELECT @@innodb_autoinc_lock_mode")
    consecutive = int(cur.fetchone()[0]) in (0, 1)
    for ds in tables:
        cur = conn.cursor()
        cols = copy_columns(ds)
        collist = ", ".join(f"`{c}`" for c in cols)
        src_cols = ", ".join(f"s.`{c}`" for c in cols)
        match = " AND ".join(f"x.`{c}` = s.`{c}`" for c in ds.natural_key)
        nk_json = "JSON_OBJECT(" + ", ".join(f"'{c}', s.`{c}`" for c in ds.natural_key) + ")"
        audit_id = record_audit(cur, account_id=None, entity="sync_apply", entity_id=f"initial:{group_id}:{target}",
                                action=f"initial-{mode}", detail={"group_id": group_id, "table": ds.table,
                                                                   "source_customer": source,
                                                                   "target_customer": target, "mode": mode},
                                who="snapsync-sync")
        missing = (f"FROM `{ds.table}` s WHERE s.customer_id = %s AND NOT EXISTS "
                   f"(SELECT 1 FROM `{ds.table}` x WHERE x.customer_id = %s AND {match})")
        changed = 0
        if mode == "override":
            all_cols = "JSON_OBJECT(" + ", ".join(f"'{c}', CAST(x.`{c}` AS CHAR)" for c in ds.column_names) + ")"
            differs = " OR ".join(f"NOT (x.`{c}` <=> s.`{c}`)" for c in cols) or "FALSE"
            cur.execute(
                f"INSERT INTO snapsync_sync_before (audit_id, table_name, target_customer, row_id, natural_key, "
                f"before_json) SELECT %s, %s, %s, x.id, {nk_json}, {all_cols} FROM `{ds.table}` x "
                f"JOIN `{ds.table}` s ON s.customer_id = %s AND {match} WHERE x.customer_id = %s AND ({differs})",
                (audit_id, ds.table, target, source, target))
            changed = cur.rowcount
        if not consecutive:
            # Interleaved AUTO_INCREMENT (mode 2, MySQL 8's default): record each created key.
            cur.execute(f"INSERT INTO snapsync_sync_before (audit_id, table_name, target_customer, row_id, "
                        f"natural_key, before_json) SELECT %s, %s, %s, NULL, {nk_json}, NULL {missing}",
                        (audit_id, ds.table, target, source, target))
        # Created rows: with innodb_autoinc_lock_mode 0 or 1 one INSERT ... SELECT holds the
        # AUTO-INC lock for the statement and gets consecutive ids: undo needs only the range.
        cur.execute(f"INSERT INTO `{ds.table}` (`customer_id`, {collist}) SELECT %s, {src_cols} {missing}",
                    (target, source, target))
        created = cur.rowcount
        if created and consecutive:
            cur.execute("SELECT LAST_INSERT_ID()")
            first = cur.fetchone()[0]
            cur.execute("INSERT INTO snapsync_sync_before (audit_id, table_name, target_customer, row_id, "
                        "natural_key, before_json) VALUES (%s, %s, %s, %s, %s, NULL)",
                        (audit_id, ds.table, target, first, json.dumps({"__created_ids__": created})))
        if mode == "override" and changed:
            updates = ", ".join(f"x.`{c}` = s.`{c}`" for c in cols if c not in ds.natural_key)
            cur.execute(f"UPDATE `{ds.table}` x JOIN `{ds.table}` s ON s.customer_id = %s AND {match} "
                        f"SET {updates} WHERE x.customer_id = %s", (source, target))
        conn.commit()
        counts[ds.table] = {"created": created, "overridden": changed}
    return counts


def undo(conn, audit_id: int) -> int:
    """Restore what one sync application (or initial copy) overwrote; remove what it
    created. Returns the number of rows restored or removed."""
    cur = conn.cursor()
    cur.execute("SELECT table_name, target_customer, row_id, natural_key, before_json FROM snapsync_sync_before "
                "WHERE audit_id = %s", (audit_id,))
    rows = cur.fetchall()
    if not rows:
        from schemas.errors import ConfigError

        raise ConfigError(f"audit record {audit_id} has nothing to undo: give the id of a sync application "
                          "(`snapsync audit --entity sync_apply`)")
    n = 0
    for table, target, row_id, nk_json, before_json in rows:
        ds = dataset(table)
        nk = json.loads(nk_json)
        if before_json is None and "__created_ids__" in nk:  # a bulk copy's created range
            cur.execute(f"DELETE FROM `{table}` WHERE customer_id = %s AND id BETWEEN %s AND %s",
                        (target, row_id, row_id + nk["__created_ids__"] - 1))
        elif before_json is None:
            cur.execute(f"DELETE FROM `{table}` WHERE customer_id = %s AND {_where_nk(ds)}",
                        (target, *(nk[c] for c in ds.natural_key)))
        else:
            before = json.loads(before_json)
            cols = [c for c in ds.column_names if c != "id" and c in before]
            cur.execute(f"UPDATE `{table}` SET " + ", ".join(f"`{c}` = %s" for c in cols) + " WHERE id = %s",
                        (*(before[c] for c in cols), row_id))
            cur.execute(f"SELECT * FROM `{table}` WHERE id = %s", (row_id,))
            restored = encoded_rows(cur)
            if restored:  # the restore is snapsync's own write too: never fan it out
                cur.execute("INSERT INTO snapsync_sync_echo (table_name, row_id, digest, created_at) "
                            "VALUES (%s, %s, %s, %s)", (table, row_id, row_digest(restored[0]), utcnow()))
        n += cur.rowcount if before_json is None else 1
    record_audit(cur, account_id=None, entity="sync_apply", entity_id=str(audit_id), action="undo",
                 detail={"rows": n})
    cur.execute("DELETE FROM snapsync_sync_before WHERE audit_id = %s", (audit_id,))
    conn.commit()
    return n
