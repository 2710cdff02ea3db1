"""The practice database (MySQL 8 / MariaDB): connections, schema creation, the one
consistent-snapshot opener and the grants a user holds.

A consistent snapshot is opened two ways, from the same statements of the server's dialect
(``connectors/dialect.py``): on pymysql connections (:func:`open_consistent_snapshot`: the
capture's initial snapshot, the export's server-side sessions) and in a command-line client
script (:func:`snapshot_script_lines`: the export's client path).
"""

from __future__ import annotations

import re
import struct
from typing import Any

import pymysql
import pymysql.cursors

from snapsync.connectors.dialect import PRIVILEGE_ALIASES, Dialect, SnapshotPoint
from snapsync.schemas.catalog import schema_ddl
from snapsync.schemas.config import DatabaseTarget
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError

#: Seconds to open a connection and to receive the server's greeting and login answer: a
#: listener that is not a MySQL server (or a server that hangs) fails within this time.
CONNECT_TIMEOUT = 10


def connect(target: DatabaseTarget, *, database: bool = True, **kwargs: Any) -> pymysql.connections.Connection:
    """Open a pymysql connection (autocommit off, utf8mb4, local infile allowed).

    The handshake is bounded by :data:`CONNECT_TIMEOUT`; later reads wait as long as the
    query takes (an export's long statements), unless ``read_timeout`` is given.

    Raises:
        RetriableError: the server did not answer (down, wrong port, not a MySQL server).
        ConfigError: the server refused the credentials or the database is missing.
    """
    params = target.connect_kwargs()
    if database:
        params["database"] = target.database
    params.setdefault("local_infile", True)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    if target.host in ("127.0.0.1", "localhost", "::1"):
        params.setdefault("ssl_disabled", True)  # no TLS on loopback: saves ~50 ms per connection
    params.update(kwargs)
    keep_read_timeout = "read_timeout" in kwargs
    params.setdefault("read_timeout", params["connect_timeout"])
    try:
        conn = pymysql.connect(**params)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in (1045, 1044, 1698):
            raise ConfigError(
                f"the database at {target.redacted()} refused the login (MySQL error {code}): "
                "fix the user/password in SNAPSYNC_DATABASE_URL"
            ) from None
        if code == 1049:
            raise ConfigError(
                f"database {target.database!r} does not exist on {target.host}:{target.port}: "
                "create it, or run `snapsync seed` to create the practice schema"
            ) from None
        what = "did not answer in time" if "timed out" in str(exc) else f"MySQL error {code}"
        raise RetriableError(
            f"cannot reach the database at {target.host}:{target.port} ({what}): is the server running, and is it "
            "a MySQL or MariaDB server? (`snapsync local up` starts the local one)"
        ) from None
    except (pymysql.err.MySQLError, OSError, ValueError, IndexError, struct.error) as exc:
        # A listener that speaks another protocol: its greeting cannot be parsed.
        raise RetriableError(
            f"the service at {target.host}:{target.port} does not answer like a MySQL or MariaDB server "
            f"({type(exc).__name__}): check the host and port in SNAPSYNC_DATABASE_URL"
        ) from None
    if not keep_read_timeout:
        conn._read_timeout = None  # pymysql re-applies it before every read: from now on, wait
    return conn


def close_quietly(conn) -> None:
    """Close a connection that may be broken already (after a failure): never raises."""
    try:
        if conn is not None:
            conn.close()
    except Exception:  # noqa: BLE001 - already broken
        pass


def ensure_database(target: DatabaseTarget) -> None:
    """CREATE DATABASE IF NOT EXISTS for the configured database."""
    with connect(target, database=False) as conn:
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )


def create_schema(conn: pymysql.connections.Connection, *, drop: bool = False) -> None:
    """Create the practice schema (tenancy tables and every data set)."""
    from snapsync.schemas.catalog import DATASETS

    cur = conn.cursor()
    if drop:
        cur.execute("SET FOREIGN_KEY_CHECKS=0")
        for ds in reversed(DATASETS):
            cur.execute(f"DROP TABLE IF EXISTS `{ds.table}`")
        cur.execute("DROP TABLE IF EXISTS `customer`")
        cur.execute("DROP TABLE IF EXISTS `account`")
        cur.execute("SET FOREIGN_KEY_CHECKS=1")
    for stmt in schema_ddl():
        cur.execute(stmt.replace("CREATE TABLE `", "CREATE TABLE IF NOT EXISTS `", 1))
    conn.commit()


def binlog_end(conn, dialect: Dialect | None = None) -> tuple[str, int]:
    """(file, position) of the end of the server's binlog: every transaction committed before
    the call lies before it (the dialect's binlog status statement; needs REPLICATION CLIENT,
    BINLOG MONITOR on MariaDB).

    Raises:
        FatalError: binary logging is off (nothing can be captured).
    """
    cur = conn.cursor()
    cur.execute((dialect or Dialect.of(conn)).binlog_status)
    row = cur.fetchone()
    if not row:
        raise FatalError("the database has binary logging off: start it with log-bin and binlog-format=ROW")
    return str(row[0]), int(row[1])


def binlog_files(conn) -> list[str]:
    cur = conn.cursor()
    cur.execute("SHOW BINARY LOGS")
    return [r[0] for r in cur.fetchall()]


# --- consistent snapshots ------------------------------------------------------------------
def snapshot_script_lines(dialect: Dialect, marker) -> list[str]:
    """The snapshot's statements for a client script; ``marker()`` is put before the report."""
    opening, report, after = dialect.snapshot_statements()
    return [*(s + ";" for s in opening), marker(), *(s + ";" for s in report), *(s + ";" for s in after)]


def open_consistent_snapshot(conns: list, *, dialect: Dialect | None = None, attempts: int = 5) -> SnapshotPoint:
    """Open one consistent read on every connection of ``conns``; return its binlog point.

    Several connections (where the snapshot reports its own position) read the same
    snapshot when each reports the same binlog position: they then saw the same committed
    transactions. When a commit lands between them, every connection rolls back and tries again.

    Raises:
        FatalError: binary logging is off, or the sessions never agreed.
        RetriableError: the global read lock (MySQL) waited too long behind a running statement.
    """
    dialect = dialect or Dialect.of(conns[0])
    if not dialect.lockless_snapshot and len(conns) > 1:
        raise ValueError(f"{dialect.name} reports no snapshot position: one session only")
    cur = conns[0].cursor()
    cur.execute("SELECT @@log_bin")
    if not int(cur.fetchall()[0][0]):
        raise FatalError("binary logging is off on the source: start the server with --log-bin "
                         "--binlog-format=ROW --binlog-row-image=FULL")
    opening, report, after = dialect.snapshot_statements()
    for _ in range(attempts):
        try:
            for c in conns:
                cur = c.cursor()
                for stmt in opening:
                    cur.execute(stmt)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == 1205:  # FTWRL behind a long statement: give way, try later
                raise RetriableError("the global read lock for the snapshot waited too long behind a running "
                                     "statement; nothing was blocked for longer: try again later") from None
            raise
        points = []
        try:
            for c in conns:
                cur = c.cursor()
                rows = []
                for stmt in report:
                    cur.execute(stmt)
                    rows.extend([str(v) if v is not None else "" for v in r] for r in cur.fetchall())
                if dialect.lockless_snapshot:  # is the GTID position the snapshot's? (needs the
                    try:                        # binlog status right; else the GTID is left unknown)
                        cur.execute(dialect.binlog_status)
                        rows.extend([str(v) for v in r] for r in cur.fetchall())
                    except pymysql.err.MySQLError:
                        pass
                points.append(dialect.parse_snapshot_report(rows))
        finally:
            for c in conns:
                for stmt in after:
                    c.cursor().execute(stmt)
        if len({(p.file, p.pos) for p in points}) == 1:
            return points[0]
        for c in conns:
            c.rollback()
    raise FatalError(f"{len(conns)} sessions could not open one consistent snapshot in {attempts} tries")


# --- rows as change-event values -----------------------------------------------------------
def description_encoder(desc) -> dict:
    """``encode_value`` options for a column from a pymysql cursor description."""
    from pymysql.constants import FIELD_TYPE

    type_code, scale = desc[1], desc[5]
    if type_code in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIME):
        return {"fsp": scale}
    if type_code == FIELD_TYPE.TIMESTAMP:
        return {"fsp": scale, "is_timestamp": True}
    if type_code in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
        return {"scale": scale}
    return {}


def encoded_rows(cur) -> list[dict]:
    """The cursor's remaining rows as dicts, values in the change-event encoding."""
    from snapsync.schemas.events import encode_value

    names = [d[0] for d in cur.description]
    enc = [description_encoder(d) for d in cur.description]
    return [{n: encode_value(v, **kw) for n, v, kw in zip(names, row, enc)} for row in cur.fetchall()]


# --- grants ----------------------------------------------------------------------------------
def held_privileges(conn) -> dict[str, set[str]] | None:
    """The connected user's privileges by scope (``*.*``, ``db.*``, ``db.table``), read from
    ``SHOW GRANTS``; ``ALL`` for ``ALL PRIVILEGES``. None when the user has roles, whose grants
    are not listed there (the server then refuses later with its own message)."""
    cur = conn.cursor()
    cur.execute("SHOW GRANTS")
    held: dict[str, set[str]] = {}
    for (line,) in cur.fetchall():
        m = re.match(r"GRANT (.+?) ON (\S+) TO ", line)
        if m is None:
            if re.match(r"GRANT `?[^ ]+`? TO ", line):  # a role
                return None
            continue
        privileges, scope = m.group(1), m.group(2).replace("`", "").replace("\\", "")
        bucket = held.setdefault(scope, set())
        for p in (x.strip().upper() for x in re.sub(r"\([^)]*\)", "", privileges).split(",")):
            bucket.add("ALL" if p.startswith("ALL") else p)
    return held


def lacks(held: dict[str, set[str]], privilege: str, scope: str) -> bool:
    """Whether ``privilege`` on ``scope`` (``*.*``, ``db.*`` or ``db.table``) is not held."""
    db = scope.split(".", 1)[0]
    names = PRIVILEGE_ALIASES.get(privilege, {privilege})
    for s in {"*.*", f"{db}.*", scope}:
        have = held.get(s, set())
        if "ALL" in have or names & have:
            return False
    return True


def missing_grants(conn, database: str, required, *, table: str | None = None) -> list[str]:
    """The privileges of ``required`` the connected user lacks, globally or on ``database``
    (or, when ``table`` is given, on that table of ``database`` too). Nothing is reported when
    the user has roles (:func:`held_privileges`)."""
    held = held_privileges(conn)
    if held is None:
        return []
    scope = f"{database}.{table}" if table else f"{database}.*"
    missing = []
    for need in required:
        names = PRIVILEGE_ALIASES.get(need, {need})
        if lacks(held, need, scope):
            missing.append(need + (f" ({' / '.join(sorted(names - {need}))})" if len(names) > 1 else ""))
    return missing
