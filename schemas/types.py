"""MySQL column types as text: one canonical spelling, and what a type is made of.

The catalog spells types the way ``CREATE TABLE`` is written (``BIGINT UNSIGNED``,
``DECIMAL(12,2)``); the server reports them its own way (MariaDB ``bigint(20) unsigned``,
MySQL 8 ``bigint unsigned``). :func:`canonical_type` maps both to the catalog's spelling, so
the schema read from a live source equals the catalog's when nothing changed, and a real
change (a new column, a wider VARCHAR) shows as a difference in the package manifests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INTEGERS = ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT")
_TEXT = ("CHAR", "VARCHAR", "TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT", "ENUM", "SET", "JSON")
_BINARY = ("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB")
_WIDTH = re.compile(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)\(\d+\)")


def _upper_outside_quotes(text: str) -> str:
    parts = re.split(r"('(?:[^'\\]|\\.|'')*')", text)  # quoted ENUM/SET members keep their case
    return "".join(p if p.startswith("'") else p.upper() for p in parts)


def canonical_type(column_type: str) -> str:
    """The catalog's spelling of a MySQL column type.

    Upper case outside quotes, single spaces, and no integer display width (MariaDB's
    ``int(10) unsigned`` is ``INT UNSIGNED``) except ``TINYINT(1)``, the boolean convention
    that both servers keep.
    """
    t = " ".join(_upper_outside_quotes(column_type.strip()).split())
    if not t.startswith("TINYINT(1)"):
        t = _WIDTH.sub(r"\1", t)
    return t


@dataclass(frozen=True)
class TypeInfo:
    """A MySQL type taken apart: its base name and arguments."""

    base: str  # DECIMAL, DATETIME, VARCHAR, ...
    args: tuple[str, ...] = ()
    unsigned: bool = False

    @property
    def is_integer(self) -> bool:
        return self.base in _INTEGERS

    @property
    def is_text(self) -> bool:
        return self.base in _TEXT

    @property
    def is_binary(self) -> bool:
        return self.base in _BINARY

    def precision_scale(self) -> tuple[int, int]:
        """DECIMAL(p,s): MySQL's defaults are (10, 0)."""
        p = int(self.args[0]) if self.args else 10
        s = int(self.args[1]) if len(self.args) > 1 else 0
        return p, s

    @property
    def fsp(self) -> int:
        """Fractional-second digits of DATETIME / TIMESTAMP / TIME."""
        return int(self.args[0]) if self.args else 0


def parse_type(column_type: str) -> TypeInfo:
    """Take ``DECIMAL(12,2)``, ``BIGINT UNSIGNED``, ``ENUM('a','b')`` apart."""
    t = canonical_type(column_type)
    m = re.match(r"^([A-Z]+)\s*(?:\((.*?)\))?(.*)$", t)
    if not m:
        return TypeInfo(t)
    base, args, rest = m.group(1), m.group(2), m.group(3)
    if base == "INTEGER":
        base = "INT"
    if base in ("ENUM", "SET"):
        return TypeInfo(base)
    arg_list = tuple(a.strip() for a in args.split(",")) if args else ()
    return TypeInfo(base, arg_list, "UNSIGNED" in rest.split())
