"""The one change-event envelope, its Debezium JSON codec, and value encodings.

Every producer of changes (the embedded binlog capture, a Debezium connector) and every
consumer (agents, sinks) goes through :class:`ChangeEvent`. The JSON is the Debezium MySQL
connector's value with ``value.converter.schemas.enable=false``:

``{"before": {...}|null, "after": {...}|null, "source": {...}, "transaction": {"id", "total_order",
"data_collection_order"}|null, "op": "c|u|d|r", "ts_ms": N, "ts_us": N, "ts_ns": N}``

Keys in Debezium's order. ``ts_ms``/``ts_us``/``ts_ns`` at the top are when the event was made;
in ``source`` they are the change's time at the source (the binlog header: whole seconds).
What still differs from Debezium's own events, and why: ``docs/capture.md``.

Value encodings (identical to the rendered Debezium config, ``connectors/debezium.py``:
``decimal.handling.mode=string``, ``time.precision.mode=adaptive_time_microseconds``,
``binary.handling.mode=base64``, ``bigint.unsigned.handling.mode=long``):

=================  ==============================================================
MySQL type         JSON value
=================  ==============================================================
integers, TINYINT  number (TINYINT(1) is a number, not a boolean)
DECIMAL(p,s)       string with exactly ``s`` decimals: ``"-0.01"``, ``"12.30"``
DATE               number: days since 1970-01-01 (``io.debezium.time.Date``)
DATETIME(0..3)     number: milliseconds since epoch, the value read as UTC (``Timestamp``)
DATETIME(4..6)     number: microseconds since epoch, read as UTC (``MicroTimestamp``)
TIMESTAMP          string: ISO-8601 in UTC with ``Z`` (``ZonedTimestamp``)
TIME               number: microseconds (``MicroTime``)
CHAR/VARCHAR/TEXT  string (unchanged: TAB, LF, NUL, emoji as they are)
ENUM / SET         string
BINARY/BLOB        string: base64
=================  ==============================================================
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import orjson

from snapsync.schemas.errors import DataError
from snapsync.schemas import VERSION

Op = Literal["c", "u", "d", "r"]
OPS: tuple[str, ...] = ("c", "u", "d", "r")
_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class SourcePosition:
    """Where a change is in the source's binlog.

    ``pos`` is the start of the row event, ``row`` the row's index inside it: the pair
    (file, pos, row) is unique per row change, so consumers can de-duplicate by it.
    """

    file: str
    pos: int
    row: int = 0
    gtid: str | None = None

    def __post_init__(self) -> None:
        if not self.file or "/" in self.file:
            raise ValueError(f"binlog file name {self.file!r} is not valid")
        if self.pos < 0 or self.row < 0:
            raise ValueError(f"binlog position {self.pos}/{self.row} is negative")

    def key(self) -> tuple[int, int, int]:
        """Total order within one server's binlog: (file number, pos, row)."""
        return (binlog_file_number(self.file), self.pos, self.row)

    def order(self) -> int:
        """:meth:`key` as one number (stored in ``DECIMAL(38,0)`` columns): file number,
        position and row index, each in its own range of digits."""
        file_no, pos, row = self.key()
        return file_no * ORDER_FILE + pos * ORDER_POS + row


#: Digit ranges of :meth:`SourcePosition.order`: positions below 10**12 bytes per file,
#: rows below 10**12 per event.
ORDER_FILE, ORDER_POS = 10**24, 10**12


def binlog_file_number(file: str) -> int:
    """The sequence number of a binlog file name (``binlog.000042`` -> 42; 0 if none)."""
    suffix = str(file).rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


@dataclass(frozen=True)
class ChangeEvent:
    """One row change (Debezium envelope)."""

    op: Op
    db: str
    table: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: SourcePosition
    source_ts_ms: int
    ts_ms: int
    connector_name: str = "practice"
    server_id: int = 0
    snapshot: str = "false"
    transaction: dict[str, Any] | None = None
    extra_source: dict[str, Any] = field(default_factory=dict)
    #: When the event was made, in nanoseconds (``ts_us``/``ts_ns``); None: from ``ts_ms``. A finer
    #: rendering of ``ts_ms``, so not part of an event's equality.
    ts_ns: int | None = field(default=None, compare=False)

    @property
    def row(self) -> dict[str, Any]:
        """The latest image: ``after``, or ``before`` for a delete."""
        return self.after if self.after is not None else (self.before or {})

    def key(self, primary_key: tuple[str, ...]) -> dict[str, Any]:
        row = self.row
        return {k: row[k] for k in primary_key}

    def to_debezium(self) -> dict[str, Any]:
        source = {
            "version": f"snapsync-{VERSION}",
            "connector": "mysql",
            "name": self.connector_name,
            "ts_ms": self.source_ts_ms,
            "snapshot": self.snapshot,
            "db": self.db,
            "sequence": None,
            # Debezium 2.6+: the source time in finer units (same instant, binlog seconds).
            "ts_us": self.source_ts_ms * 1_000,
            "ts_ns": self.source_ts_ms * 1_000_000,
            "table": self.table,
            "server_id": self.server_id,
            "gtid": self.position.gtid,
            "file": self.position.file,
            "pos": self.position.pos,
            "row": self.position.row,
            "thread": None,
            "query": None,
            **self.extra_source,
        }
        ts_ns = self.ts_ns if self.ts_ns is not None else self.ts_ms * 1_000_000
        return {
            "before": self.before,
            "after": self.after,
            "source": source,
            "transaction": self.transaction,
            "op": self.op,
            "ts_ms": self.ts_ms,
            "ts_us": ts_ns // 1_000,
            "ts_ns": ts_ns,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_debezium())

    @classmethod
    def from_debezium(cls, value: Any) -> ChangeEvent:
        """Parse a Debezium envelope (dict, JSON text or bytes).

        Accepts the schema-embedding form too (``{"schema":..., "payload":...}``).

        Raises:
            DataError: saying what is wrong with the envelope (never quoting row values).
        """
        if isinstance(value, (bytes, bytearray, memoryview, str)):
            try:
                value = orjson.loads(value)  # ~4x json's speed; refuses NaN, Infinity and lone surrogates
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise DataError(f"value is not JSON ({type(exc).__name__} at {getattr(exc, 'pos', '?')})") from None
        if not isinstance(value, dict):
            raise DataError(f"envelope must be a JSON object, got {type(value).__name__}")
        if "payload" in value and "schema" in value:
            value = value["payload"]
            if not isinstance(value, dict):
                raise DataError("envelope payload must be a JSON object")
        op = value.get("op")
        if op not in OPS:
            shown = repr(op) if isinstance(op, str) and len(op) <= 3 and op.isalpha() else f"of type {type(op).__name__}"
            raise DataError(f"unknown op {shown}: expected one of c, u, d, r")
        before, after = value.get("before"), value.get("after")
        for name, image in (("before", before), ("after", after)):
            if image is not None and not isinstance(image, dict):
                raise DataError(f"'{name}' must be an object or null")
        if op in ("c", "r", "u") and after is None:
            raise DataError(f"op {op!r} without 'after'")
        if op == "d" and before is None:
            raise DataError("op 'd' without 'before'")
        source = value.get("source")
        if not isinstance(source, dict):
            raise DataError("'source' is missing")
        missing = [k for k in ("db", "table", "file", "pos") if source.get(k) in (None, "")]
        if missing:
            raise DataError(f"source lacks {', '.join(missing)}")
        try:
            position = SourcePosition(str(source["file"]), int(source["pos"]), int(source.get("row") or 0),
                                      source.get("gtid"))
            known = {"version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "table", "server_id",
                     "gtid", "file", "pos", "row", "thread", "query", "ts_us", "ts_ns"}
            ts_ns = value.get("ts_ns")
            return cls(
                op=op, db=str(source["db"]), table=str(source["table"]), before=before, after=after,
                position=position, source_ts_ms=int(source.get("ts_ms") or 0), ts_ms=int(value.get("ts_ms") or 0),
                connector_name=str(source.get("name") or ""), server_id=int(source.get("server_id") or 0),
                snapshot=str(source.get("snapshot") or "false"), transaction=value.get("transaction"),
                extra_source={k: v for k, v in source.items() if k not in known},
                ts_ns=ts_ns if type(ts_ns) is int and ts_ns >= 0 else None,
            )
        except (TypeError, ValueError, OverflowError) as exc:
            # The message names the exception type only: source fields can be anything.
            raise DataError(f"source position is not valid ({type(exc).__name__} in file, pos, row, ts_ms "
                            "or server_id)") from None


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is, as Kafka Connect's JsonConverter does)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def key_bytes(key: dict[str, Any]) -> bytes:
    return dumps(key)


# --- value encodings ---------------------------------------------------------------------
def encode_value(value: Any, *, fsp: int | None = None, scale: int | None = None,
                 is_timestamp: bool = False) -> Any:
    """A Python value read from MySQL, in the Debezium JSON encoding (module docstring).

    Args:
        fsp: fractional-second digits of a DATETIME/TIMESTAMP/TIME column.
        scale: decimals of a DECIMAL column.
        is_timestamp: the column is TIMESTAMP (zoned), not DATETIME.
    """
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, Decimal):
        return format(value, f".{scale}f") if scale is not None else format(value, "f")
    if isinstance(value, dt.datetime):
        if is_timestamp:
            utc = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
            return utc.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        delta = value.replace(tzinfo=None) - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros if (fsp or 0) > 3 else micros // 1000
    if isinstance(value, dt.date):
        return (value - _EPOCH_DATE).days
    if isinstance(value, dt.timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set):
        return ",".join(sorted(value))
    return str(value)


def _fsp_of(column_type: str) -> int:
    t = column_type.upper()
    return int(t[t.index("(") + 1:t.index(")")]) if "(" in t else 0


def to_mysql_text(value: Any, column_type: str) -> str | None:
    """Decode a Debezium JSON value back to the text MySQL prints for ``column_type``.

    The inverse of :func:`encode_value`, used by sinks to write rows from events
    exactly as ``SELECT ... INTO OUTFILE`` would.
    """
    return None if value is None else text_decoder(column_type)(value)


@lru_cache(maxsize=None)
def text_decoder(column_type: str):
    """:func:`to_mysql_text` for one column type, as a function of a non-NULL value (built
    once per type: exports decode every value of every staged change)."""
    t = column_type.upper()
    if t.startswith(("DATETIME", "TIMESTAMP")):
        fsp = _fsp_of(t)
        zoned = t.startswith("TIMESTAMP")

        def decode_moment(value):
            if zoned:
                moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            else:
                moment = _EPOCH + dt.timedelta(microseconds=int(value) if fsp > 3 else int(value) * 1000)
            text = moment.strftime("%Y-%m-%d %H:%M:%S")
            return text + (f".{moment.microsecond:06d}"[: fsp + 1] if fsp else "")
        return decode_moment
    if t == "DATE":
        return lambda value: (_EPOCH_DATE + dt.timedelta(days=int(value))).isoformat()
    if t.startswith(("BLOB", "BINARY", "VARBINARY", "LONGBLOB", "MEDIUMBLOB", "TINYBLOB")):
        return lambda value: base64.b64decode(value).decode("utf-8", "surrogateescape")

    def decode_plain(value):
        if value is True or value is False:
            return "1" if value else "0"
        return value if type(value) is str else str(value)
    return decode_plain


def image_texts(ds, image: dict[str, Any], *, complete: bool = True) -> dict[str, str | None]:
    """A row image (change-event encoding) as MySQL text values, by column of the data set
    ``ds``. ``complete``: every column of ``ds`` (None where the image lacks it); otherwise
    only the columns the image has."""
    out = {}
    for c in ds.columns:
        value = image.get(c.name)
        if value is None:
            if complete or c.name in image:
                out[c.name] = None
        else:
            out[c.name] = text_decoder(c.type)(value)
    return out
