"""The MySQL format (DESIGN.md contract 4): a ``.sql`` file the ``mysql``/``mariadb`` client
loads into an empty database, creating each data set as a table with its rows.

Rows come from the server already as SQL tuples ``(v1,v2,...)``: text through ``QUOTE()``
(which escapes backslash, quote, NUL and Ctrl-Z) with LF and CR turned into ``\\n`` and
``\\r`` so that one row stays one line; numbers as they print; NULL as ``NULL``.
The writer groups lines into multi-row INSERTs of at most ``ROWS_PER_INSERT`` rows.
"""

from __future__ import annotations

from typing import BinaryIO

from schemas.catalog import DataSet
from sinks.dat_format import is_text_type

ROWS_PER_INSERT = 2000

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
    if is_text_type(t) or t.startswith(("DATE", "TIME", "YEAR")):
        e = f"QUOTE({n})"  # QUOTE(NULL) is the word NULL
        if is_text_type(t):
            e = f"REPLACE(REPLACE({e},'\\n','\\\\n'),'\\r','\\\\r')"
        return e
    return f"IFNULL({n},'NULL')"


def sql_tuple_expr(columns) -> str:
    """SQL expression giving one ``(v1,...)`` tuple per row."""
    return "CONCAT('(',CONCAT_WS(','," + ",".join(sql_value_expr(c) for c in columns) + "),')')"


def table_preamble(ds: DataSet) -> bytes:
    return (
        f"\n-- data set: {ds.name}\nDROP TABLE IF EXISTS `{ds.table}`;\n"
        f"{ds.ddl(with_foreign_keys=False)};\n"
        f"LOCK TABLES `{ds.table}` WRITE;\nALTER TABLE `{ds.table}` DISABLE KEYS;\n"
    ).encode("utf-8")


def table_postamble(ds: DataSet) -> bytes:
    return f"ALTER TABLE `{ds.table}` ENABLE KEYS;\nUNLOCK TABLES;\n".encode("utf-8")


class InsertBatcher:
    """Turns a stream of tuple lines into ``INSERT INTO t VALUES ...;`` statements."""

    def __init__(self, out: BinaryIO, table: str) -> None:
        self.out = out
        self.prefix = f"INSERT INTO `{table}` VALUES ".encode()
        self.pending: list[bytes] = []

    def add_lines(self, lines: list[bytes]) -> None:
        self.pending.extend(lines)
        while len(self.pending) >= ROWS_PER_INSERT:
            self._emit(self.pending[:ROWS_PER_INSERT])
            del self.pending[:ROWS_PER_INSERT]

    def _emit(self, rows: list[bytes]) -> None:
        self.out.write(self.prefix + b",\n".join(rows) + b";\n")

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = []
