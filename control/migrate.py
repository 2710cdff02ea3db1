"""``snapsync db migrate``: the one step that creates and upgrades snapsync's own schemas.

A small versioned-migrations runner (``docs/decisions.md`` says why not Alembic): each schema
(the state store, the signal schema on the source) has its migrations in
``schemas/state.py``; the versions applied are rows of its ``snapsync_schema_version``. Run
once per release as a user allowed to run DDL (the ``migrate`` role); every other command
only checks the version (``connectors/state.py``).

Steps, each safe to run again after an interruption (MySQL's DDL is not transactional):

1. Create the two schemas when missing.
2. Move the tables an earlier release kept in the practice schema (``snapsync_*``) into the
   schema each belongs to, by ``RENAME TABLE`` (same server: instant, nothing copied, nothing
   lost). A table found in both places is moved only when the new one is empty.
3. Apply each schema's migrations that are not recorded yet: tables created when missing,
   columns renamed or added and indexes added when missing; then the version is recorded.
4. Pair moved before-images with their audit records (their journal id is the audit id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import SchemaError, forget_checks, schema_version
from snapsync.schemas import VERSION
from snapsync.schemas.config import DatabaseTarget, Settings
from snapsync.schemas.errors import ConfigError
from snapsync.schemas.state import LEGACY_HOME, MIGRATIONS, SCHEMA_VERSIONS, TABLES, VERSION_DDL, VERSION_TABLE, Component

log = logging.getLogger("snapsync.migrate")


@dataclass
class MigrateReport:
    """What ``db migrate`` did."""

    created_schemas: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)  # table -> schema it went to
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)  # component -> (before, after)
    paired: int = 0

    def lines(self) -> list[str]:
        out = [f"created schema `{s}`" for s in self.created_schemas]
        out += [f"moved {t} out of the practice schema into `{s}`" for t, s in self.moved.items()]
        for component, (before, after) in self.versions.items():
            name = "state store" if component == "state" else "signal schema"
            out.append(f"{name}: version {before} -> {after}" if before != after else f"{name}: at version {after}")
        if self.paired:
            out.append(f"{self.paired} earlier sync application(s) kept undoable")
        return out


def _schemas(settings: Settings) -> dict[Component, tuple[DatabaseTarget, str]]:
    """Each component's server and schema."""
    return {"state": (settings.state, settings.state.database), "signal": (settings.db, settings.signal_schema)}


def _create_schema(conn, schema: str) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
    if cur.fetchone():
        return False
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return True


def _tables(conn, schema: str) -> set[str]:
    cur = conn.cursor()
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
    return {r[0] for r in cur.fetchall()}


def _empty(conn, schema: str, table: str) -> bool:
    cur = conn.cursor()
    cur.execute(f"SELECT 1 FROM `{schema}`.`{table}` LIMIT 1")
    return cur.fetchone() is None


def _columns(conn, schema: str, table: str) -> set[str]:
    cur = conn.cursor()
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, table))
    return {r[0].lower() for r in cur.fetchall()}


def _indexes(conn, schema: str, table: str) -> set[str]:
    cur = conn.cursor()
    cur.execute("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s", (schema, table))
    return {r[0].lower() for r in cur.fetchall()}


def _move_legacy(settings: Settings, source, report: MigrateReport) -> None:
    """Step 2: the practice schema's ``snapsync_*`` tables into their schemas."""
    practice = settings.db.database
    found = sorted(t for t in _tables(source, practice) if t.startswith("snapsync_") and t in LEGACY_HOME)
    if not found:
        return
    schemas = _schemas(settings)
    if any(LEGACY_HOME[t] == "state" for t in found) and not settings.state.same_server(settings.db):
        raise ConfigError(
            f"the practice schema {practice!r} holds snapsync tables of an earlier release, and the state store is "
            "on another server: run `snapsync db migrate` once without SNAPSYNC_STATE_URL (it moves them into schema "
            "snapsync on this server), then copy that schema to the new server (mariadb-dump snapsync | mariadb) "
            "and set SNAPSYNC_STATE_URL. Nothing was moved")
    for table in found:
        _target, schema = schemas[LEGACY_HOME[table]]
        if table in _tables(source, schema):
            if not _empty(source, schema, table):
                if _empty(source, practice, table):
                    source.cursor().execute(f"DROP TABLE `{practice}`.`{table}`")
                    continue
                raise ConfigError(f"{table} holds rows both in the practice schema {practice!r} and in `{schema}`: "
                                  "keep the one that is right (move or drop the other by hand), then run "
                                  "`snapsync db migrate` again. Nothing more was moved")
            source.cursor().execute(f"DROP TABLE `{schema}`.`{table}`")
        source.cursor().execute(f"RENAME TABLE `{practice}`.`{table}` TO `{schema}`.`{table}`")
        report.moved[table] = schema
        log.info("moved %s into %s", table, schema)


def _apply(conn, component: Component, schema: str) -> tuple[int, int]:
    """Step 3 for one schema: its missing migrations; returns (version before, after)."""
    cur = conn.cursor()
    have = schema_version(conn, schema) or 0
    need = SCHEMA_VERSIONS[component]
    if have > need:
        raise SchemaError(f"`{schema}` is at schema version {have}, made by a newer release of snapsync (this one, "
                          f"{VERSION}, knows up to {need}): run `db migrate` of that release, or upgrade snapsync")
    cur.execute(f"USE `{schema}`")
    cur.execute(VERSION_DDL)
    present = {t.lower() for t in _tables(conn, schema)}
    for m in MIGRATIONS[component]:
        if m.version <= have:
            # Applied already: only its tables are made again where missing (a layout made by a
            # pre-release build of the same version, or a table dropped by hand). Its other steps
            # are not repeated: a later version may have changed what they made.
            for table in m.tables:
                if table.lower() not in present:
                    cur.execute(TABLES[component][table])
                    log.info("%s: table %s of migration %d made again", schema, table, m.version)
            continue
        for table in m.tables:
            cur.execute(TABLES[component][table])
        for table, old, new, definition in m.renames:
            cols = _columns(conn, schema, table)
            if old.lower() in cols and new.lower() not in cols:
                cur.execute(f"ALTER TABLE `{table}` CHANGE COLUMN `{old}` `{new}` {definition}")
        for table, column, definition in m.columns:
            if column.lower() not in _columns(conn, schema, table):
                cur.execute(f"ALTER TABLE `{table}` ADD COLUMN `{column}` {definition}")
        for table, name, definition in m.indexes:
            if name.lower() not in _indexes(conn, schema, table):
                cur.execute(f"ALTER TABLE `{table}` ADD {definition}")
        cur.execute(f"INSERT INTO `{VERSION_TABLE}` (`version`, `description`, `release`, applied_at) "
                    "VALUES (%s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE `release` = `release`",
                    (m.version, m.description, VERSION))
        conn.commit()
        log.info("%s: migration %d applied (%s)", schema, m.version, m.description)
    return have, need


def _pair_moved_before_images(settings: Settings, source, state) -> int:
    """Step 4: before-images moved from an earlier release are keyed by their audit record's
    id; record that id as the record's journal id, and start new journal ids above it."""
    signal = settings.signal_schema
    cur = source.cursor()
    cur.execute(f"SELECT DISTINCT journal_id FROM `{signal}`.`snapsync_sync_before`")
    ids = [int(r[0]) for r in cur.fetchall()]
    if not ids:
        return 0
    st = state.cursor()
    paired = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        st.execute(f"UPDATE snapsync_audit SET journal_id = audit_id WHERE journal_id IS NULL AND audit_id IN "
                   f"({','.join(['%s'] * len(chunk))})", chunk)
        paired += st.rowcount
    state.commit()
    st.execute("SELECT COALESCE(MAX(audit_id), 0), COALESCE(MAX(journal_id), 0) FROM snapsync_audit")
    top = max(int(v) for v in st.fetchone()) + 1
    cur.execute(f"SELECT COALESCE(MAX(outbox_id), 0) FROM `{signal}`.`snapsync_audit_outbox`")
    if int(cur.fetchone()[0]) < top:
        cur.execute(f"ALTER TABLE `{signal}`.`snapsync_audit_outbox` AUTO_INCREMENT = {int(top)}")
    source.commit()
    return paired


def migrate(settings: Settings, *, say: Callable[[str], None] | None = None) -> MigrateReport:
    """Create or upgrade the state store and the signal schema (see the module docstring).

    Raises:
        ConfigError: the login may not run DDL there (the message names the grants), the
            practice schema's old tables cannot be moved as they are, or a schema is newer.
        RetriableError: a server did not answer.
    """
    report = MigrateReport()
    say = say or (lambda _line: None)
    try:
        with connect(settings.db, database=False) as source, connect(settings.state, database=False) as state:
            for component, (_target, schema) in _schemas(settings).items():
                conn = state if component == "state" else source
                if _create_schema(conn, schema):
                    report.created_schemas.append(schema)
                    say(f"created schema `{schema}`")
            source.commit()
            state.commit()
            _move_legacy(settings, source, report)
            for component, (_target, schema) in _schemas(settings).items():
                report.versions[component] = _apply(state if component == "state" else source, component, schema)
            if report.moved.get("snapsync_sync_before"):
                state.cursor().execute(f"USE `{settings.state.database}`")
                report.paired = _pair_moved_before_images(settings, source, state)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in (1044, 1142, 1227):  # access denied to the database / table / this statement
            raise ConfigError(f"the database login may not create or change snapsync's schemas (MySQL error {code}): "
                              "run `snapsync db migrate` as a user with the migrate role's grants (`snapsync db "
                              "grants --role migrate` prints them)") from None
        raise
    forget_checks()
    for line in report.lines():
        log.info("%s", line)
    return report


def versions(settings: Settings) -> dict[str, dict]:
    """Each schema's recorded version beside the one this release needs (``db status``)."""
    out = {}
    for component, (target, schema) in _schemas(settings).items():
        with connect(target, database=False) as conn:
            have = schema_version(conn, schema)
        out[component] = {"schema": schema, "server": f"{target.host}:{target.port}", "version": have or 0,
                          "needed": SCHEMA_VERSIONS[component],
                          "state": "missing" if not have else "current" if have == SCHEMA_VERSIONS[component]
                          else "older" if have < SCHEMA_VERSIONS[component] else "newer"}
    return out
