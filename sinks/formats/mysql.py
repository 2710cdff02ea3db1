"""The MySQL format (docs/contracts.md, contract 4): a ``.sql`` file the ``mysql``/``mariadb`` client
loads into an empty database, creating each data set as a table with its rows.

Rows come from the server already as SQL tuples ``(v1,v2,...)``: text through ``QUOTE()``
(which escapes backslash, quote, NUL and Ctrl-Z) with LF and CR turned into ``\\n`` and
``\\r`` so that one row stays one line; numbers as they print; NULL as ``NULL``.
The writer makes one multi-row INSERT of each chunk of lines it is given (about 1 MB).
"""

from __future__ import annotations

from typing import BinaryIO

from snapsync.schemas.catalog import DataSet
from snapsync.sinks.formats.base import PackageFormat
from snapsync.sinks.formats.dat import is_binary_type, is_text_type

HEADER = (
    b"-- snapsync MySQL-format snapshot\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n"
    b"SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0;\n"
    b"SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0;\n"
    b"SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO';\n"
    b"SET @OLD_TIME_ZONE=@@TIME_ZONE, TIME_ZONE='+00:00';\n"
)
FOOTER = (
    b"SET TIME_ZONE=@OLD_TIME_ZONE;\n"
    b"SET SQL_MODE=@OLD_SQL_MODE;\n"
    b"SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS;\n"
    b"SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS;\n"
    b"-- end of snapshot\n"
)


def sql_value_expr(column) -> str:
    n = f"`{column.name}`"
    t = column.type.upper()
    if is_binary_type(t):  # bytes as a hex literal: X'00FF' (X'' when empty)
        return f"IF({n} IS NULL,'NULL',CONCAT('X''',HEX({n}),''''))"
    if is_text_type(t) or t.startswith(("DATE", "TIME", "YEAR")):
        e = f"QUOTE({n})"  # QUOTE(NULL) is the word NULL
        if is_text_type(t):
            e = f"REPLACE(REPLACE({e},'\\n','\\\\n'),'\\r','\\\\r')"
        return e
    return f"IFNULL({n},'NULL')"


def sql_tuple_expr(columns) -> str:
    """SQL expression giving one ``(v1,...),`` tuple per row: the trailing comma lets a
    chunk of lines become a statement with no per-row work (the last one becomes ``;``)."""
    return "CONCAT('(',CONCAT_WS(','," + ",".join(sql_value_expr(c) for c in columns) + "),'),')"


def table_preamble(ds: DataSet) -> bytes:
    return (
        f"\n-- data set: {ds.name}\nDROP TABLE IF EXISTS `{ds.table}`;\n"
        f"{ds.ddl(with_foreign_keys=False)};\n"
        f"LOCK TABLES `{ds.table}` WRITE;\nALTER TABLE `{ds.table}` DISABLE KEYS;\n"
    ).encode("utf-8")


def table_postamble(ds: DataSet, *, changes: bool = False) -> bytes:
    if changes:
        return b""
    return f"ALTER TABLE `{ds.table}` ENABLE KEYS;\nUNLOCK TABLES;\n".encode("utf-8")


def changes_preamble(ds: DataSet) -> bytes:
    """An incremental data set: the table is kept (created if missing), rows upserted."""
    return (f"\n-- data set (changes): {ds.name}\n"
            f"{ds.ddl(with_foreign_keys=False, if_not_exists=True)};\n{ds.added_columns_ddl()}").encode("utf-8")


def literal(value: str | None, column_type: str) -> str:
    """A MySQL text value as an SQL literal."""
    from pymysql.converters import escape_string

    if value is None:
        return "NULL"
    if is_binary_type(column_type):
        return "X'" + value.encode("utf-8", "surrogateescape").hex() + "'"
    if is_text_type(column_type) or column_type.upper().startswith(("DATE", "TIME", "YEAR")):
        return "'" + escape_string(value) + "'"
    return value


def tuple_line(ds: DataSet, texts: dict[str, str | None]) -> bytes:
    """``(v1,...),`` + LF for a row given as MySQL text values (the server's tuple format)."""
    return ("(" + ",".join(literal(texts.get(c.name), c.type) for c in ds.columns) + "),\n").encode("utf-8")


def delete_statement(ds: DataSet, keys: list[dict]) -> bytes:
    pk = ds.primary_key
    if len(pk) == 1:
        col = ds.column(pk[0])
        values = ",".join(literal(str(k[pk[0]]), col.type) for k in keys)
        return f"DELETE FROM `{ds.table}` WHERE `{pk[0]}` IN ({values});\n".encode("utf-8")
    conds = " OR ".join("(" + " AND ".join(f"`{c}` = {literal(str(k[c]), ds.column(c).type)}" for c in pk) + ")"
                        for k in keys)
    return f"DELETE FROM `{ds.table}` WHERE {conds};\n".encode("utf-8")


class InsertBatcher:
    """Turns chunks of tuple lines into ``INSERT INTO t VALUES ...;`` statements.

    One statement per chunk of whole lines (about 1 MB from the readers, like mydumper's
    statement size): a single ``bytes.replace`` per chunk, no per-row work in Python.
    """

    def __init__(self, out: BinaryIO, table: str, verb: str = "INSERT", columns: tuple[str, ...] = ()) -> None:
        self.out = out
        names = f"({', '.join(f'`{c}`' for c in columns)}) " if columns else ""
        self.prefix = f"{verb} INTO `{table}` {names}VALUES ".encode()

    def add_chunk(self, data: bytes) -> None:
        """``data``: whole ``(...),`` lines, each ending in LF."""
        if data:
            self.out.write(self.prefix)
            self.out.write(memoryview(data)[:-2])  # all but the last ",\n"
            self.out.write(b";\n")

    def close(self) -> None:
        pass


# --- the format -----------------------------------------------------------------------------


class SqlFormat(PackageFormat):
    """One ``snapshot.sql`` per package that the ``mysql``/``mariadb`` client loads: each data
    set is dropped and created with its rows; an incremental data set is kept (created if
    missing) and gets ``REPLACE`` upserts and ``DELETE`` by primary key."""

    name = "mysql"
    label = "MySQL"
    package_file = "snapshot.sql"

    def __init__(self) -> None:
        self._batcher: InsertBatcher | None = None

    def start_package(self, out) -> None:
        out.write(HEADER)

    def finish_package(self, out) -> None:
        out.write(FOOTER)

    def row_expr(self, ds, *, changes: bool = False) -> str:
        return sql_tuple_expr(ds.columns)

    def begin(self, ds, out, *, changes: bool = False) -> None:
        out.write(changes_preamble(ds) if changes else table_preamble(ds))
        # Changes go into yesterday's table: by column name (its columns may be in another order).
        self._batcher = InsertBatcher(out, ds.table, verb="REPLACE" if changes else "INSERT",
                                      columns=ds.column_names if changes else ())

    def write_rows(self, ds, lines: bytes, out) -> None:
        assert self._batcher is not None, "begin() first"
        self._batcher.add_chunk(lines)

    def write_upserts(self, ds, rows, out) -> None:
        for start in range(0, len(rows), 5000):  # statements of a few thousand rows
            self.write_rows(ds, b"".join(tuple_line(ds, r) for r in rows[start:start + 5000]), out)

    def write_replaced(self, ds, customers, out) -> None:
        if customers:  # their rows in full follow: rows the target has and the source no longer does go
            out.write(f"DELETE FROM `{ds.table}` WHERE `{ds.tenant_column}` IN "
                      f"({','.join(str(int(c)) for c in customers)});\n".encode())

    def write_deletes(self, ds, keys, out) -> None:
        if keys:
            out.write(delete_statement(ds, keys))

    def end(self, ds, out, *, changes: bool = False) -> None:
        self._batcher = None
        out.write(table_postamble(ds, changes=changes))
