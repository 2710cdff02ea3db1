"""Undo of one Data Sync application (a command, or an initial copy): the before-images
come back, created items go. Refused when an item changed after that application (a later
synced edit, a local edit): undo would throw those changes away. ``force`` undoes anyway."""

from __future__ import annotations

import json

from snapsync.connectors.mysql import encoded_rows
from snapsync.connectors.state import connect_source, connect_state, signal_table
from snapsync.control.audit import flush_outbox, record_source_audit
from snapsync.control.data_sync import mark_echo, where_natural_key
from snapsync.schemas.catalog import DataSet, dataset
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError


def _current_texts(cur, ds: DataSet, where: str, args: tuple, columns) -> dict[int, dict[str, str | None]]:
    cols = list(columns)
    cur.execute("SELECT id, " + ", ".join(f"CAST(`{c}` AS CHAR)" for c in cols) + f" FROM `{ds.table}` WHERE {where}",
                args)
    return {r[0]: dict(zip(cols, r[1:])) for r in cur.fetchall()}


def _differences(written: dict[str, str | None], now: dict[str, str | None] | None) -> list[str]:
    if now is None:
        return ["(deleted)"]
    return [c for c, v in written.items() if now.get(c) != v]


def changes_since(cur, table: str, target: int, row_id: int | None, nk: dict, after: dict | None) -> dict[int, list[str]]:
    """Rows this application wrote that differ now from what it wrote: ``{row id: columns}``."""
    ds = dataset(table)
    if after is None:
        if "__created_ids__" in nk:  # a bulk copy's created range keeps no after-images
            first, last = row_id, row_id + nk["__created_ids__"] - 1
            cur.execute(f"SELECT COUNT(*) FROM `{table}` WHERE customer_id = %s AND id BETWEEN %s AND %s",
                        (target, first, last))
            if cur.fetchone()[0]:
                return {first: [f"{nk['__created_ids__']} item(s) created by a bulk copy (ids {first}-{last}); "
                                "edits made to them since cannot be checked"]}
        return {}  # recorded before snapsync kept what it wrote: nothing to compare
    if "__created_ids__" in nk:  # (older records) a created range with after-images by id
        first, last = row_id, row_id + nk["__created_ids__"] - 1
        columns = next(iter(after.values()), {}).keys()
        now = _current_texts(cur, ds, "customer_id = %s AND id BETWEEN %s AND %s", (target, first, last), columns)
        found = {int(i): _differences(w, now.get(int(i))) for i, w in after.items()}
    elif row_id is not None:
        now = _current_texts(cur, ds, "id = %s", (row_id,), after.keys())
        found = {row_id: _differences(after, now.get(row_id))}
    else:
        now = _current_texts(cur, ds, f"customer_id = %s AND {where_natural_key(ds)}",
                             (target, *(nk[c] for c in ds.natural_key)), after.keys())
        found = {next(iter(now), 0): _differences(after, next(iter(now.values()), None))}
    return {i: cols for i, cols in found.items() if cols}


class UndoConflict(ConfigError):
    """An undo refused because items changed after the application.

    Attributes:
        conflicts: per item changed since: ``table``, ``data_set``, ``row_id``, ``key`` (its
            natural key, when known), ``columns`` changed, and ``written`` / ``now`` (their
            values as the application wrote them and as they are: setup data of the account
            that asked, for its pages; never in the message, which goes to logs and Messages).
    """

    def __init__(self, message: str, conflicts: list[dict]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def journal_of(state, audit_id: int, entities: tuple[str, ...] = ("sync_apply",)) -> int | None:
    """The journal id of a sync application's audit record (None: not one)."""
    found = _journal(state, audit_id, entities)
    return None if found is None else found[0]


def _journal(state, audit_id: int, entities: tuple[str, ...]) -> tuple[int, str] | None:
    cur = state.cursor()
    cur.execute(f"SELECT journal_id, entity FROM snapsync_audit WHERE audit_id = %s AND entity IN "
                f"({','.join(['%s'] * len(entities))}) AND action <> 'undo'", (audit_id, *entities))
    row = cur.fetchone()
    state.commit()
    return None if row is None or row[0] is None else (int(row[0]), row[1])


def _conflicts(cur, rows) -> list[dict]:
    """Every item these before-image rows wrote that differs now from what was written."""
    out = []
    for table, target, row_id, nk_json, _before, after_json in rows:
        nk = json.loads(nk_json)
        after = None if after_json is None else json.loads(after_json)
        for i, cols in sorted(changes_since(cur, table, target, row_id, nk, after).items()):
            item = {"table": table, "data_set": dataset(table).name, "row_id": i, "columns": cols,
                    "key": None if "__created_ids__" in nk else nk, "written": {}, "now": {}}
            real = [c for c in cols if c in dataset(table).column_names]
            if real and after is not None and "__created_ids__" not in nk:
                item["written"] = {c: after.get(c) for c in real}
                now = _current_texts(cur, dataset(table), "id = %s", (i,), real).get(i)
                item["now"] = now or {}
            out.append(item)
    return out


def undo_many(conn, state, audit_ids: list[int], *, force: bool = False,
              entities: tuple[str, ...] = ("sync_apply",), account_id: int | None = None, who: str | None = None,
              what: str | None = None,
              force_hint: str = "`snapsync sync undo --force` (or confirm it on the Data Sync page)",
              nothing: str = "has nothing to undo: give the id of a sync application (`snapsync audit --entity "
                             "sync_apply`)") -> int:
    """Restore what these applications (a sync command, an initial copy's tables, a Data
    Copy's tables) overwrote and remove what they created, all in one source transaction,
    or nothing. Returns the number of rows restored or removed. ``conn``: from
    ``connect_source`` (the restore, its echo marks and its audit records commit together);
    ``state``: the state store (the audit records named, and the undo's records once moved).

    Raises:
        ConfigError: nothing to undo under these ids.
        UndoConflict: (without ``force``) an item changed after the application, naming the
            rows and columns.
    """
    flush_outbox(conn, state)  # an application's record still in the outbox is undoable too
    what = what or f"audit record {', '.join(map(str, audit_ids))}"
    before_table = signal_table(conn, "snapsync_sync_before")
    cur = conn.cursor()
    found: list[tuple[int, int, str, tuple]] = []  # (audit id, journal, entity, before rows)
    for audit_id in audit_ids:
        journal = _journal(state, audit_id, entities)
        if journal is None:
            continue
        cur.execute("SELECT table_name, target_customer, row_id, natural_key, before_json, after_json "
                    f"FROM {before_table} WHERE journal_id = %s", (journal[0],))
        rows = cur.fetchall()
        if rows:
            found.append((audit_id, journal[0], journal[1], rows))
    if not found:
        conn.rollback()
        raise ConfigError(f"{what} {nothing}")
    if account_id is not None:  # a target moved since: its items are another account's now
        from snapsync.control.moves import check_owned

        check_owned(conn, account_id, {r[1] for *_x, rows in found for r in rows}, what="the undo")
    if not force:
        conflicts = _conflicts(cur, [r for *_x, rows in found for r in rows])
        if conflicts:
            conn.rollback()
            named = [f"{c['table']} row {c['row_id']} ({', '.join(c['columns'])})" for c in conflicts]
            raise UndoConflict(
                f"{what}: {len(named)} item(s) changed after this application: {'; '.join(named[:10])}"
                f"{' ...' if len(named) > 10 else ''}. Undo would throw those changes away; run {force_hint} to "
                "undo anyway", conflicts)
    n = 0
    for audit_id, journal, entity, rows in found:
        done = sum(_restore(cur, row) for row in rows)
        n += done
        record_source_audit(cur, account_id=account_id, entity=entity, entity_id=str(audit_id), action="undo",
                            detail={"rows": done, "forced": force,
                                    "target_customer": rows[0][1]}, who=who)
        cur.execute(f"DELETE FROM {before_table} WHERE journal_id = %s", (journal,))
    conn.commit()
    flush_outbox(conn, state)
    return n


def _restore(cur, row) -> int:
    """Put one before-image back (or remove what was created); the rows affected."""
    table, target, row_id, nk_json, before_json, _after = row
    ds = dataset(table)
    nk = json.loads(nk_json)
    if before_json is None and "__created_ids__" in nk:  # a bulk copy's created range
        cur.execute(f"DELETE FROM `{table}` WHERE customer_id = %s AND id BETWEEN %s AND %s",
                    (target, row_id, row_id + nk["__created_ids__"] - 1))
        return cur.rowcount
    if before_json is None:
        cur.execute(f"DELETE FROM `{table}` WHERE customer_id = %s AND {where_natural_key(ds)}",
                    (target, *(nk[c] for c in ds.natural_key)))
        return cur.rowcount
    before = json.loads(before_json)
    cols = [c for c in ds.column_names if c != "id" and c in before]
    cur.execute(f"UPDATE `{table}` SET " + ", ".join(f"`{c}` = %s" for c in cols) + " WHERE id = %s",
                (*(before[c] for c in cols), row_id))
    cur.execute(f"SELECT * FROM `{table}` WHERE id = %s", (row_id,))
    restored = encoded_rows(cur)
    if restored:  # the restore is snapsync's own write too: never fan it out
        mark_echo(cur, table, row_id, restored[0], None)
    return 1


def undo(conn, state, audit_id: int, *, force: bool = False, account_id: int | None = None,
         who: str | None = None) -> int:
    """Restore what one sync application (or initial copy) overwrote; remove what it
    created (:func:`undo_many` of one record). Returns the number of rows restored or removed.

    Raises:
        ConfigError: nothing to undo under that id.
        UndoConflict: (without ``force``) an item changed after the application.
    """
    return undo_many(conn, state, [audit_id], force=force, account_id=account_id, who=who,
                     what=f"audit record {audit_id}")


def request_undo(settings: Settings, audit_id: int, *, force: bool = False, account_id: int | None = None,
                 who: str | None = None) -> int:
    """Queue the undo of one sync application for the worker (``control/sync_tasks.py``); its id.

    Args:
        account_id: the account the caller acts in (the web app): an application of another
            account is reported as not found.

    Raises:
        ConfigError: no sync application under that id (in that account).
    """
    from snapsync.connectors.mysql import connect
    from snapsync.control.accounts import customer_accounts
    from snapsync.control.sync_tasks import enqueue

    missing = ConfigError(f"audit record {audit_id} has nothing to undo: give the id of a sync application "
                          "(`snapsync audit --entity sync_apply`)")
    with connect_state(settings) as state:
        cur = state.cursor()
        cur.execute("SELECT account_id, JSON_VALUE(detail, '$.target_customer'), journal_id, action FROM "
                    "snapsync_audit WHERE audit_id = %s AND entity = 'sync_apply'", (audit_id,))
        row = cur.fetchone()
        if row is None or row[2] is None or row[3] == "undo":
            raise missing
        owner = row[0]
        if owner is None and row[1] is not None:
            with connect(settings.db) as practice:
                owner = customer_accounts(practice, [int(row[1])]).get(int(row[1]))
        if owner is None or (account_id is not None and owner != account_id):
            raise missing
        task_id = enqueue(cur, owner, "undo", {"audit_id": audit_id, "force": force}, who=who)
        state.commit()
        return task_id


def undo_application(settings: Settings, audit_id: int, *, force: bool = False, account_id: int | None = None,
                     who: str | None = None) -> int:
    """:func:`undo` on connections of its own."""
    with connect_source(settings) as conn, connect_state(settings) as state:
        return undo(conn, state, audit_id, force=force, account_id=account_id, who=who)
