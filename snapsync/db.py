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
