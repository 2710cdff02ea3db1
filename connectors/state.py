"""Connections to where snapsync keeps its own tables (``schemas/state.py``): the state store
and, on the source server, the signal schema; each checked once per process against the
schema version this release needs.

* :func:`connect_state` - a connection whose default database is the state store.
* :func:`connect_source` - a connection to the practice database that also knows the signal
  schema (:func:`signal_table` names a table there), for the writes that must commit with a
  write to the source or travel through its binlog.

Neither ever runs DDL: a schema that is missing or older than this release stops the command
with :class:`SchemaError` naming ``snapsync db migrate`` (exit code 2); one from a newer
release names the upgrade.
"""

from __future__ import annotations

import threading
from typing import Any

import pymysql

from snapsync.connectors.mysql import connect
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError
from snapsync.schemas.state import SCHEMA_VERSIONS, STATE_TABLES, VERSION_TABLE, Component

#: Error codes: unknown database, unknown table.
_NO_DATABASE, _NO_TABLE = 1049, 1146

_checked: set[tuple] = set()
_lock = threading.Lock()


class SchemaError(ConfigError):
    """snapsync's schema is missing, older or newer than this release; the message says what
    to run."""


def _describe(component: Component, where: str) -> str:
    return (f"the state store {where}" if component == "state"
            else f"the signal schema {where} on the source server")


def schema_version(conn, schema: str) -> int | None:
    """The newest migration recorded in ``schema`` (None: no version table, or no schema)."""
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT COALESCE(MAX(`version`), 0) FROM `{schema}`.`{VERSION_TABLE}`")
        row = cur.fetchone()
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] in (_NO_DATABASE, _NO_TABLE):
            return None
        raise
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] in (1044, 1142):  # no right on the schema or its version table
            raise ConfigError(f"the database login may not read `{schema}`.`{VERSION_TABLE}`: give it its role's "
                              "grants (`snapsync db grants --role ...` prints them)") from None
        raise
    finally:
        conn.commit()
    return int(row[0]) if row else 0


def check_version(conn, component: Component, schema: str, where: str) -> None:
    """Raises :class:`SchemaError` unless ``schema`` is at the version this release needs."""
    need = SCHEMA_VERSIONS[component]
    have = schema_version(conn, schema)
    what = _describe(component, where)
    if have is None or have == 0:
        raise SchemaError(f"{what} has no snapsync tables yet: run `snapsync db migrate` once, as a user "
                          "allowed to create tables (`snapsync db grants --role migrate` prints its grants)")
    if have < need:
        raise SchemaError(f"{what} is at schema version {have}, this release needs {need}: run "
                          "`snapsync db migrate` (as the migrate role) to upgrade it")
    if have > need:
        raise SchemaError(f"{what} is at schema version {have}, made by a newer release of snapsync (this one "
                          f"knows up to {need}): upgrade snapsync on this machine, or run the release that made it")


def check_state_tables(conn, schema: str, where: str) -> None:
    """Raises :class:`SchemaError` when the state store, at the right version, lacks a table of
    this release (made by a pre-release build of the version, or dropped by hand). Only the state
    store is looked at: every role reads all of it, while most see one or two signal tables."""
    cur = conn.cursor()
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
    missing = sorted(set(STATE_TABLES) - {r[0].lower() for r in cur.fetchall()})
    if missing:
        raise SchemaError(f"{_describe('state', where)} lacks {len(missing)} table(s) of this release "
                          f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): run `snapsync db migrate` "
                          "(as the migrate role) to make them")


def _checked_once(key: tuple, check) -> None:
    with _lock:
        if key in _checked:
            return
    check()
    with _lock:
        _checked.add(key)


def forget_checks() -> None:
    """Check the schema versions again at the next connection (after ``db migrate``)."""
    with _lock:
        _checked.clear()


def connect_state(settings: Settings, **kwargs: Any) -> pymysql.connections.Connection:
    """A connection to the state store (its schema selected), checked against this release's
    schema version once per process.

    Raises:
        SchemaError: the state store is missing, older or newer (exit code 2).
        ConfigError: the login was refused, or its schema does not exist yet.
        RetriableError: the server did not answer.
    """
    target = settings.state
    try:
        conn = connect(target, **kwargs)
    except ConfigError as exc:
        if f"database {target.database!r} does not exist" in str(exc):
            raise SchemaError(f"{_describe('state', '`' + target.database + '`')} does not exist yet: run "
                              "`snapsync db migrate` once, as a user allowed to create it") from None
        raise
    try:
        _checked_once(("state", target.host, target.port, target.database),
                      lambda: (check_version(conn, "state", target.database, f"`{target.database}`"),
                               check_state_tables(conn, target.database, f"`{target.database}`")))
    except BaseException:
        conn.close()
        raise
    return conn


def connect_source(settings: Settings, **kwargs: Any) -> pymysql.connections.Connection:
    """A connection to the practice database that knows the signal schema (``conn.signal_schema``),
    checked against this release's version once per process.

    Raises:
        SchemaError: the signal schema is missing, older or newer (exit code 2).
    """
    conn = connect(settings.db, **kwargs)
    schema = settings.signal_schema
    db = settings.db
    try:
        _checked_once(("signal", db.host, db.port, schema),
                      lambda: check_version(conn, "signal", schema, f"`{schema}`"))
    except BaseException:
        conn.close()
        raise
    conn.signal_schema = schema
    return conn


def signal_table(conn_or_schema, table: str) -> str:
    """```schema`.`table``` of a table in the signal schema, for SQL. ``conn_or_schema``: a
    connection from :func:`connect_source`, or the schema's name."""
    schema = conn_or_schema if isinstance(conn_or_schema, str) else getattr(conn_or_schema, "signal_schema", None)
    if not schema:
        raise TypeError("this connection was not opened by connect_source: it does not know the signal schema")
    return f"`{schema}`.`{table}`"
