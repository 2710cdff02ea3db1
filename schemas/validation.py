"""Checks of a change event against the catalog: the key agrees with the row, the row has
its tenant and primary-key columns, and every value fits its column's type.

A failing check raises :class:`DataError` with a reason that names the column and what is
wrong, never the value (row values are PHI). Columns the catalog does not know (a column
added by ALTER TABLE) are not checked; columns an image lacks are not required, except
the primary key and the tenant column.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from snapsync.schemas.catalog import DataSet
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import ChangeEvent

_INT_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1), "SMALLINT": (-(2**15), 2**15 - 1), "MEDIUMINT": (-(2**23), 2**23 - 1),
    "INT": (-(2**31), 2**31 - 1), "BIGINT": (-(2**63), 2**63 - 1),
}
_TEXT_BYTES = {"TINYTEXT": 255, "TEXT": 65_535, "MEDIUMTEXT": 16_777_215, "LONGTEXT": 4_294_967_295}
_DATE_DAYS = ((dt.date(1000, 1, 1) - dt.date(1970, 1, 1)).days, (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days)
_DATETIME_US = (-30_610_224_000_000_000, 253_402_300_799_999_999)  # 1000-01-01 .. 9999-12-31 23:59:59.999999
#: Source commit times accepted: 1970 .. 9999 (milliseconds).
MAX_TS_MS = 253_402_300_799_999
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def _type_parts(column_type: str) -> tuple[str, str]:
    t = column_type.upper().strip()
    base = t.split("(", 1)[0].split()[0]
    return base, t


def check_value(column: str, column_type: str, value: Any) -> None:
    """One value in the change-event encoding against its MySQL column type.

    Raises:
        DataError: naming the column and the problem (never the value).
    """
    problem = checker(column_type)(value)
    if problem:
        raise DataError(f"column {column} ({column_type}): {problem}")


@lru_cache(maxsize=None)
def checker(column_type: str) -> Callable[[Any], str | None]:
    """A function that returns what is wrong with a value for ``column_type`` (None: fine).
    Built once per type: the deltas stage checks every value of every change."""
    base, t = _type_parts(column_type)
    if base in _INT_RANGES:
        lo, hi = _INT_RANGES[base]
        if "UNSIGNED" in t:
            lo, hi = 0, hi * 2 + 1

        def check_int(v):
            if v is None:
                return None
            if type(v) is not int:
                return "not an integer"
            return None if lo <= v <= hi else "out of range"
        return check_int
    if base == "DECIMAL":
        precision, scale = (int(x) for x in t[t.index("(") + 1:t.index(")")].split(","))

        def check_decimal(v):
            if v is None:
                return None
            if not isinstance(v, str) or len(v) > precision + 2 or not _DECIMAL.match(v):
                return "not a decimal string"
            whole, _, frac = v.lstrip("-").partition(".")
            if len(frac) > scale or len(whole.lstrip("0")) > precision - scale:
                return "more digits than the column holds"
            return None
        return check_decimal
    if base in ("DATE", "DATETIME"):
        if base == "DATE":
            lo, hi = _DATE_DAYS
        else:
            fsp = int(t[t.index("(") + 1:t.index(")")]) if "(" in t else 0
            lo, hi = _DATETIME_US if fsp > 3 else (_DATETIME_US[0] // 1000, _DATETIME_US[1] // 1000)
        what = "not a day number in range" if base == "DATE" else "not an epoch number in range"

        def check_temporal(v):
            if v is None:
                return None
            return None if type(v) is int and lo <= v <= hi else what
        return check_temporal
    if base == "TIMESTAMP":
        def check_timestamp(v):
            if v is None:
                return None
            try:
                moment = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            except ValueError:
                return "not an ISO-8601 timestamp"
            return None if isinstance(v, str) and moment.tzinfo is not None else "not an ISO-8601 timestamp with zone"
        return check_timestamp
    if base in ("CHAR", "VARCHAR"):
        limit = int(t[t.index("(") + 1:t.index(")")])

        def check_chars(v):
            if v is None:
                return None
            if type(v) is not str:
                return "not a string"
            return None if len(v) <= limit else f"longer than {limit} characters"
        return check_chars
    if base in _TEXT_BYTES:
        limit = _TEXT_BYTES[base]

        def check_text(v):
            if v is None:
                return None
            if type(v) is not str:
                return "not a string"
            if len(v) * 4 <= limit:  # cannot be too long, whatever its characters
                return None
            return None if len(v.encode("utf-8", "surrogatepass")) <= limit else f"longer than {limit} bytes"
        return check_text
    if base == "ENUM":
        allowed = frozenset(a.replace("''", "'") for a in re.findall(r"'((?:[^']|'')*)'", column_type))

        def check_enum(v):
            if v is None:
                return None
            return None if isinstance(v, str) and v in allowed else "not one of the enumerated values"
        return check_enum
    return lambda v: None


_CHECKERS: dict[int, tuple[DataSet, dict[str, tuple[str, Callable[[Any], str | None]]]]] = {}


def _column_checkers(ds: DataSet) -> dict[str, tuple[str, Callable[[Any], str | None]]]:
    found = _CHECKERS.get(id(ds))  # by identity: hashing a data set hashes all its columns
    if found is None or found[0] is not ds:
        found = _CHECKERS[id(ds)] = (ds, {c.name: (c.type, checker(c.type)) for c in ds.columns})
    return found[1]


def check_image(ds: DataSet, image: dict[str, Any]) -> None:
    """Every value of a row image against its column's type (DataError: column and problem)."""
    checks = _column_checkers(ds)
    for name, value in image.items():
        found = checks.get(name)
        if found is not None and value is not None:
            problem = found[1](value)
            if problem:
                raise DataError(f"column {name} ({found[0]}): {problem}")


def check_change(ds: DataSet, event: ChangeEvent, key: bytes | None) -> None:
    """The whole event against data set ``ds``: source time, key, images and values.

    Raises:
        DataError: the first problem found (never quoting a value).
    """
    if not 0 <= event.source_ts_ms <= MAX_TS_MS:
        raise DataError("source.ts_ms is out of range")
    image = event.row
    for col in (*ds.primary_key, *((ds.tenant_column,) if ds.tenant_column else ())):
        if image.get(col) is None:
            raise DataError(f"the row image has no {col}")
    for img in (event.before, event.after):
        if img is not None:
            check_image(ds, img)
    if key is None:
        raise DataError("the message has no key")
    try:
        decoded = json.loads(key)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DataError("the key is not JSON") from None
    if isinstance(decoded, dict) and "payload" in decoded and "schema" in decoded:
        decoded = decoded["payload"]
    if not isinstance(decoded, dict) or decoded != {c: image.get(c) for c in ds.primary_key}:
        raise DataError("the key does not match the row's primary key")
