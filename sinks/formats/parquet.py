"""The Parquet format: one ``<table>.parquet`` file per data set, written with pyarrow, with
the exact types of the source columns, so that BI tools load it without guessing.

=========================================  ===============================================
MySQL type                                 Arrow / Parquet type
=========================================  ===============================================
TINYINT .. BIGINT (UNSIGNED)               int8 .. int64 (uint8 .. uint64); TINYINT(1) int8
DECIMAL(p,s)                               decimal128(p,s) (decimal256 above 38 digits)
FLOAT, DOUBLE                              float32, float64
DATE                                       date32
DATETIME(n), TIMESTAMP(n)                  timestamp[us] (the wall-clock text MySQL prints)
YEAR                                       int16
CHAR, VARCHAR, TEXT, ENUM, SET, JSON       string (utf8)
BINARY, VARBINARY, BLOB                    binary
TIME, anything else                        string (the text MySQL prints)
=========================================  ===============================================

NULL is null and distinct from the empty string. Each field carries its MySQL type in its
metadata (``mysql_type``). An incremental data set's file starts with an ``_op`` column
(``U`` upsert, ``D`` delete) and then every column, nullable except the primary key (a
``D`` row carries only its key).

How: the server formats each row as for ``.DAT`` (:mod:`.dat`: MySQL's own text, escaped,
binary columns as hex), and this module parses the lines with ``pyarrow.csv`` straight into
the typed columns; the .DAT escapes are decoded in one vectorised step (split at the
escaped backslash, decode ``\\t \\n \\r \\0`` in the pieces, join with a backslash), so no
value is handled in a Python loop. Rows are buffered into row groups of about 128k rows.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from snapsync.schemas.catalog import Column, DataSet
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import to_mysql_text
from snapsync.schemas.types import TypeInfo, parse_type
from snapsync.sinks.formats.base import OP_COLUMN, PackageFormat
from snapsync.sinks.formats.dat import NULL, escape_text, guarded_escape_expr

ROW_GROUP_ROWS = 128 * 1024
_INT_TYPES = {
    "TINYINT": (pa.int8(), pa.uint8()), "SMALLINT": (pa.int16(), pa.uint16()),
    "MEDIUMINT": (pa.int32(), pa.uint32()), "INT": (pa.int32(), pa.uint32()), "BIGINT": (pa.int64(), pa.uint64()),
}
_ESCAPES = (("\\t", "\t"), ("\\n", "\n"), ("\\r", "\r"), ("\\0", "\0"), ("\\Z", "\x1a"), ("\\b", "\b"))


def arrow_type(column_type: str) -> pa.DataType:
    """The Arrow type of a MySQL column type (the table in the module docstring)."""
    t = parse_type(column_type)
    if t.base in _INT_TYPES:
        return _INT_TYPES[t.base][1 if t.unsigned else 0]
    if t.base in ("DECIMAL", "NUMERIC"):
        p, s = t.precision_scale()
        return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    if t.base == "FLOAT":
        return pa.float32()
    if t.base in ("DOUBLE", "REAL"):
        return pa.float64()
    if t.base == "DATE":
        return pa.date32()
    if t.base in ("DATETIME", "TIMESTAMP"):
        return pa.timestamp("us")
    if t.base == "YEAR":
        return pa.int16()
    if t.base == "BIT":
        return pa.uint64()
    if t.is_binary:
        return pa.binary()
    return pa.string()


def arrow_schema(ds: DataSet, *, changes: bool = False) -> pa.Schema:
    """The file's schema: the columns in table order (after ``_op`` for changes)."""
    pk = set(ds.primary_key)
    fields = [pa.field(OP_COLUMN, pa.string(), nullable=False)] if changes else []
    for c in ds.columns:
        nullable = c.nullable or (changes and c.name not in pk)
        fields.append(pa.field(c.name, arrow_type(c.type), nullable=nullable,
                               metadata={"mysql_type": c.type}))
    meta = {"snapsync.dataset": ds.name, "snapsync.table": ds.table,
            "snapsync.primary_key": json.dumps(list(ds.primary_key))}
    return pa.schema(fields, metadata=meta)


def _value_expr(c: Column, t: TypeInfo) -> str:
    if t.is_binary:
        return f"HEX(`{c.name}`)"
    if t.is_text:
        return guarded_escape_expr(c.name)
    if t.base == "BIT":
        return f"(`{c.name}` + 0)"
    if t.base == "TIME" or not (t.is_integer or t.base in ("DECIMAL", "NUMERIC", "FLOAT", "DOUBLE", "REAL", "DATE",
                                                           "DATETIME", "TIMESTAMP", "YEAR")):
        return guarded_escape_expr(c.name)  # printed as text: escape it like text
    return f"`{c.name}`"


def line_expr(ds: DataSet) -> str:
    """``CONCAT_WS(TAB, ...)``: one line per row, .DAT escapes, binary columns as hex."""
    parts = []
    for c in ds.columns:
        e = _value_expr(c, parse_type(c.type))
        parts.append(f"IFNULL({e},'\\\\N')" if c.nullable else e)
    return "CONCAT_WS('\\t'," + ",".join(parts) + ")"


def decode_escapes(arr: pa.Array) -> pa.Array:
    """The .DAT escapes of a string array decoded, in one vectorised step: split each value
    at the escaped backslash ``\\\\``, decode the other sequences inside the pieces (where
    every backslash starts a sequence), join the pieces with a single backslash."""
    if not pc.any(pc.match_substring(arr, "\\")).as_py():
        return arr
    parts = pc.split_pattern(arr, "\\\\")
    values = parts.values
    for seq, char in _ESCAPES:
        values = pc.replace_substring(values, seq, char)
    return pc.binary_join(pa.ListArray.from_arrays(parts.offsets, values, mask=parts.is_null()), "\\")


def _unhex(arr: pa.Array) -> pa.Array:
    return pa.array([None if v is None else bytes.fromhex(v) for v in arr.to_pylist()], pa.binary())


class _Sink:
    """What pyarrow writes to: the package writer's file, never closed by pyarrow."""

    def __init__(self, out) -> None:
        self.out, self.pos, self.closed = out, 0, False

    def write(self, data) -> int:
        self.out.write(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass


class ParquetFormat(PackageFormat):
    """Typed ``.parquet`` files, one per data set (module docstring)."""

    name = "parquet"
    label = "Parquet (typed columns, for BI tools)"

    def __init__(self) -> None:
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._parse_types: dict[str, pa.DataType] = {}
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def dataset_file(self, ds) -> str:
        return f"{ds.table}.parquet"

    def row_expr(self, ds, *, changes: bool = False) -> str:
        expr = line_expr(ds)
        return f"CONCAT('U\\t',{expr})" if changes else expr

    def begin(self, ds, out, *, changes: bool = False) -> None:
        self._schema = arrow_schema(ds, changes=changes)
        # Text, hex-coded binary and TIME are read as strings; the rest straight into their types.
        self._parse_types = {f.name: (pa.string() if pa.types.is_binary(f.type) else f.type) for f in self._schema}
        self._writer = pq.ParquetWriter(_Sink(out), self._schema, compression="snappy")
        self._buffer, self._buffered = [], 0

    def write_rows(self, ds, lines: bytes, out) -> None:
        table = self._parse(ds, bytes(lines))  # a copy: a reader's memory view is released after this call
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def write_upserts(self, ds, rows, out) -> None:
        lines = []
        for row in rows:
            values = (_text(row.get(c.name), c) for c in ds.columns)
            lines.append("U\t" + "\t".join(values) + "\n")
        self.write_rows(ds, "".join(lines).encode("utf-8"), out)

    def write_deletes(self, ds, keys, out) -> None:
        if keys:
            lines = ("D\t" + "\t".join(_text(to_mysql_text(k[c.name], c.type), c) if c.name in k else NULL
                                       for c in ds.columns) + "\n" for k in keys)
            self.write_rows(ds, "".join(lines).encode("utf-8"), out)

    def end(self, ds, out, *, changes: bool = False) -> None:
        self._flush()
        assert self._writer is not None, "begin() first"
        self._writer.close()  # the footer; the package writer closes the file itself
        self._writer = None

    # -- internals -------------------------------------------------------------------------
    def _parse(self, ds: DataSet, lines: bytes) -> pa.Table:
        assert self._schema is not None, "begin() first"
        names = self._schema.names
        try:
            raw = pacsv.read_csv(
                io.BytesIO(lines),
                read_options=pacsv.ReadOptions(column_names=names, block_size=max(1 << 20, len(lines) + 1)),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False,
                                                 newlines_in_values=False, ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(column_types=self._parse_types, null_values=[NULL],
                                                     strings_can_be_null=True, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            raise DataError(f"{ds.table}: a row could not be read into its Parquet types ({_no_values(exc, names)})") \
                from None
        columns = []
        for f in self._schema:
            col = raw.column(f.name).combine_chunks()
            if pa.types.is_binary(f.type):
                col = _unhex(col)
            elif pa.types.is_string(f.type) and f.name != OP_COLUMN:
                col = decode_escapes(col)
            columns.append(col)
        return pa.Table.from_arrays(columns, schema=self._schema)

    def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            self._writer.write_table(pa.concat_tables(self._buffer), row_group_size=ROW_GROUP_ROWS)
        self._buffer, self._buffered = [], 0


def _text(value: str | None, c: Column) -> str:
    """A MySQL text value as it stands in a line: .DAT-escaped, binary as hex."""
    if value is None:
        return NULL
    if parse_type(c.type).is_binary:
        return value.encode("utf-8", "surrogateescape").hex().upper()
    return escape_text(value)


def _no_values(exc: Exception, names: list[str]) -> str:
    """pyarrow's message names the column by number and quotes the value: keep the column,
    never the value (logs hold no row values)."""
    text = str(exc)
    if "column #" in text:
        try:
            index = int(text.split("column #", 1)[1].split(":", 1)[0])
            return f"column {names[index]}"
        except (ValueError, IndexError):
            pass
    return "malformed line"
