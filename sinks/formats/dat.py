"""The .DAT text format (docs/contracts.md, contract 3): UTF-8, header line, TAB-separated,
LF-terminated rows, MySQL ``LOAD DATA`` escaping.

NULL is ``\\N``. Inside a value TAB, LF, CR, NUL and backslash become ``\\t``, ``\\n``,
``\\r``, ``\\0`` and ``\\\\``: unlike ``SELECT ... INTO OUTFILE`` (which writes a
backslash before a literal TAB or LF), every row stays on one physical line, and
``LOAD DATA ... FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'`` reads it back exactly.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal

from snapsync.sinks.formats.base import OP_COLUMN, PackageFormat

NULL = "\\N"
NULL_BYTES = b"\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_SPECIAL = ("\\", "\t", "\n", "\r", "\0")
_SPECIAL_B = (b"\\", b"\t", b"\n", b"\r", b"\0")

#: The LOAD DATA clause that reads a .DAT file back (after ``INTO TABLE t``).
LOAD_DATA_OPTIONS = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
    "LINES TERMINATED BY '\\n' IGNORE 1 LINES"
)


_NEEDS_ESCAPE = re.compile("[\\\\\t\n\r\0]")


def escape_text(value: str) -> str:
    """Escape one text value (not NULL)."""
    if _NEEDS_ESCAPE.search(value):
        return value.translate(_ESCAPES)
    return value


def escape_bytes(value: bytes) -> bytes:
    """Escape one value already in MySQL's text form (bytes from the text protocol)."""
    if any(ch in value for ch in _SPECIAL_B):
        value = (
            value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r").replace(b"\0", b"\\0")
        )
    return value


def format_value(value: object) -> str:
    """A Python value as MySQL prints it as text, escaped for .DAT."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (_dt.date, int, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return escape_bytes(value).decode("utf-8", "surrogateescape")
    return escape_text(str(value))


def format_row(values: tuple | list) -> str:
    """One .DAT line, LF included."""
    return "\t".join(map(format_value, values)) + "\n"


def unescape_field(field: str) -> str | None:
    """Inverse of :func:`escape_text` for one field (``\\N`` gives None)."""
    if field == NULL:
        return None
    if "\\" not in field:
        return field
    out, i, n = [], 0, len(field)
    table = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\", "N": "N"}
    while i < n:
        ch = field[i]
        if ch == "\\" and i + 1 < n:
            out.append(table.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# --- server-side formatting ---------------------------------------------------------------
# The export asks the server for each row already as one .DAT line: the values are MySQL's
# own text (exactly what INTO OUTFILE prints), and the escaping runs in the server's C code
# instead of Python. These are SQL string literals, written with SQL's own escapes.
_TEXT_TYPES = ("CHAR", "VARCHAR", "TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT", "ENUM", "SET")


_BINARY_TYPES = ("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB")


def is_text_type(column_type: str) -> bool:
    return column_type.upper().startswith(_TEXT_TYPES)


def is_binary_type(column_type: str) -> bool:
    """Byte strings: escaped like text in .DAT (LOAD DATA stores their bytes unconverted)."""
    return column_type.upper().startswith(_BINARY_TYPES)


def sql_escape_expr(column: str) -> str:
    """SQL expression: the column's text with .DAT escapes (backslash first)."""
    e = f"`{column}`"
    for raw, esc in (("\\\\", "\\\\\\\\"), ("\\t", "\\\\t"), ("\\n", "\\\\n"), ("\\r", "\\\\r"), ("\\0", "\\\\0")):
        e = f"REPLACE({e},'{raw}','{esc}')"
    return e


def guarded_escape_expr(column: str) -> str:
    """Escape only values that hold a special character: the REGEXP test is cheaper than
    five REPLACE passes over every value (measured: 0.34 s against 0.46 s per 1M values)."""
    # SQL literal '[\\\\\t\n\r\0]' = the regex class of backslash, TAB, LF, CR and NUL.
    pattern = "'[" + "\\" * 4 + "\\t\\n\\r\\0]'"
    return f"IF(`{column}` REGEXP {pattern}, {sql_escape_expr(column)}, `{column}`)"


def dat_line_expr(columns) -> str:
    """``CONCAT_WS(TAB, ...)`` giving one .DAT line per row (NULL as ``\\N``)."""
    parts = []
    for c in columns:
        e = guarded_escape_expr(c.name) if is_text_type(c.type) or is_binary_type(c.type) else f"`{c.name}`"
        parts.append(f"IFNULL({e},'\\\\N')" if c.nullable else e)
    return "CONCAT_WS('\\t'," + ",".join(parts) + ")"


def header_line(columns) -> bytes:
    return ("\t".join(c.name for c in columns) + "\n").encode("utf-8")


# --- the format -----------------------------------------------------------------------------


class DatFormat(PackageFormat):
    """Tab-delimited ``.DAT`` files, one per data set (the product's "Default" format).

    An incremental data set has a leading ``_op`` column: ``U`` rows are upserts, ``D`` rows
    deletes that carry only the primary key (other columns ``\\N``)."""

    name = "dat"
    label = "Default (tab-delimited .DAT)"

    def dataset_file(self, ds) -> str:
        return f"{ds.table}.DAT"

    def row_expr(self, ds, *, changes: bool = False) -> str:
        expr = dat_line_expr(ds.columns)
        return f"CONCAT('U\\t',{expr})" if changes else expr

    def begin(self, ds, out, *, changes: bool = False) -> None:
        out.write((OP_COLUMN + "\t" if changes else "").encode() + header_line(ds.columns))

    def write_rows(self, ds, lines: bytes, out) -> None:
        out.write(lines)

    def write_upserts(self, ds, rows, out) -> None:
        for start in range(0, len(rows), 5000):
            lines = []
            for row in rows[start:start + 5000]:
                values = (row.get(c.name) for c in ds.columns)
                lines.append("U\t" + "\t".join(NULL if v is None else escape_text(v) for v in values) + "\n")
            out.write("".join(lines).encode("utf-8", "surrogateescape"))  # binary values: their bytes

    def write_deletes(self, ds, keys, out) -> None:
        if keys:
            out.write("".join("D\t" + "\t".join(format_value(k[c]) if c in k else NULL for c in ds.column_names)
                              + "\n" for k in keys).encode("utf-8"))
