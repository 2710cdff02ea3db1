"""Connections to the practice database and schema creation."""

from __future__ import annotations

from typing import Any

import pymysql
import pymysql.cursors

from schemas.catalog import schema_ddl
from schemas.config import DatabaseTarget
from schemas.errors import FatalError, RetriableError


def connect(target: DatabaseTarget, *, database: bool = True, **kwargs: Any) -> pymysql.connections.Connection:
    """Open a pymysql connection (autocommit off, utf8mb4, local infile allowed).

    Raises:
        RetriableError: the server did not answer (down, wrong port).
        FatalError: the server refused the credentials or the database is missing.
    """
    params = target.connect_kwargs()
    if database:
        params["database"] = target.database
    params.setdefault("local_infile", True)
    if target.host in ("127.0.0.1", "localhost", "::1"):
        params.setdefault("ssl_disabled", True)  # no TLS on loopback: saves ~50 ms per connection
    params.update(kwargs)
    try:
        return pymysql.connect(**params)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in (1045, 1044):
            raise FatalError(
                f"the database at {target.redacted()} refused the login ({exc.args[1]}): "
                "fix the user/password in SNAPSYNC_DATABASE_URL"
            ) from None
        if code == 1049:
            raise FatalError(
                f"database {target.database!r} does not exist on {target.host}:{target.port}: "
                "create it, or run `snapsync seed` to create the practice schema"
            ) from None
        raise RetriableError(
            f"cannot reach the database at {target.host}:{target.port} ({exc.args[-1]}): "
            "is the server running? (`snapsync local up` starts the local one)"
        ) from None


def ensure_database(target: DatabaseTarget) -> None:
    """CREATE DATABASE IF NOT EXISTS for the configured database."""
    with connect(target, database=False) as conn:
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )


def create_schema(conn: pymysql.connections.Connection, *, drop: bool = False) -> None:
    """Create the practice schema (tenancy tables and every data set)."""
    from schemas.catalog import DATASETS

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


def is_mariadb(conn) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT VERSION()")
    return "mariadb" in str(cur.fetchall()[0][0]).lower()


def start_consistent_snapshot(conn) -> tuple[str, int, str | None]:
    """Open a consistent-read transaction on ``conn`` and return the binlog position
    (file, pos, gtid) that it corresponds to exactly.

    MariaDB reports the position of the snapshot itself (``binlog_snapshot_file`` /
    ``binlog_snapshot_position``) without any lock. MySQL has no such status: there we
    take ``FLUSH TABLES WITH READ LOCK`` for the instant between opening the snapshot
    and reading the position, as mysqldump and Debezium do.

    Raises:
        FatalError: binary logging is off on the server.
    """
    cur = conn.cursor()
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    cur.execute("SELECT @@log_bin")
    if not int(cur.fetchall()[0][0]):
        raise FatalError("binary logging is off on the source: start the server with --log-bin "
                         "--binlog-format=ROW --binlog-row-image=FULL")
    if is_mariadb(conn):
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = {k.lower(): v for k, v in cur.fetchall()}
        file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        gtid = cur.fetchall()[0][0] or None
        return file, pos, gtid
    cur.execute("FLUSH TABLES WITH READ LOCK")
    try:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            cur.execute("SHOW BINARY LOG STATUS")  # MySQL 8.4
        except pymysql.err.ProgrammingError:
            cur.execute("SHOW MASTER STATUS")
        row = cur.fetchall()[0]
        file, pos = row[0], int(row[1])
        gtid = row[4] if len(row) > 4 and row[4] else None
    finally:
        conn.cursor().execute("UNLOCK TABLES")
    return file, pos, gtid


def binlog_files(conn) -> list[str]:
    cur = conn.cursor()
    cur.execute("SHOW BINARY LOGS")
    return [r[0] for r in cur.fetchall()]


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
    from schemas.events import encode_value

    names = [d[0] for d in cur.description]
    enc = [description_encoder(d) for d in cur.description]
    return [{n: encode_value(v, **kw) for n, v, kw in zip(names, row, enc)} for row in cur.fetchall()]
