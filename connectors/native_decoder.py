"""The native binlog decoder of ``snapsync capture --decoder native``: ``mysql-event-stream``'s
C++ core decodes the rows, everything else stays as the Python decoder has it.

Who does what:

* ``mysql_event_stream.BinlogClient`` is the replica connection (a file/pos start, the
  server's heartbeats) and hands back each binlog event's raw bytes.
* Every event goes to a ``mysql_event_stream.CdcEngine``, which turns a rows event into one
  change per row (column name -> value, the values as the library's own types: dates and
  decimals as text, TIMESTAMP as epoch seconds, ENUM as its index, SET as a bit mask).
* The events that are not rows (table map, GTID, XID, QUERY, ROTATE) are parsed from the same
  bytes by ``mysql-replication``'s own event classes: capture sees exactly the objects the
  Python decoder gives it, and a table map's columns (types, fsp, scale, ENUM and SET labels,
  bit widths, charsets: ``binlog_row_metadata=FULL``) say how each native value is encoded.
* :func:`converter` turns a native value into the value ``schemas.events.encode_value`` gives
  for ``mysql-replication``'s reading of it; ``tests/unit/test_native_decoder.py`` holds the
  two side by side, ``tests/integration/test_conformance.py`` runs against Debezium with both.

What this decoder gives that the Python one does not (both documented in docs/decisions.md):
a negative TIME with a fraction is its true value (``mysql-replication`` reads ``-00:00:01.5``
as -0.5 s); a latin1 (or other non-UTF-8) character column is read with its charset like the
Python decoder, after the library's UTF-8 reading is undone byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import queue
import struct
import threading
from collections import deque
from functools import lru_cache
from typing import Any, Callable

from pymysql.protocol import MysqlPacket
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import (
    GtidEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from snapsync.schemas.errors import ConfigError, RetriableError

try:  # optional: pip install 'snapsync[native]'
    from mysql_event_stream import BinlogClient, CdcEngine, EventType
except ImportError:  # pragma: no cover - depends on the environment
    BinlogClient = CdcEngine = EventType = None  # type: ignore[assignment,misc]

#: Binlog event types (the 19-byte v4 header's 5th byte).
_ROTATE, _TABLE_MAP = 4, 19
_ROWS_EVENTS = {23, 24, 25, 30, 31, 32}  # WRITE/UPDATE/DELETE_ROWS v1 and v2
_HEADER = struct.Struct("<IBIIIH")
_UTF8 = {None, "utf8", "utf8mb3", "utf8mb4", "binary", "ascii"}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_UTC = dt.timezone.utc


def available() -> bool:
    """Whether ``mysql-event-stream`` is installed."""
    return CdcEngine is not None


# --- values --------------------------------------------------------------------------------
@lru_cache(maxsize=65536)
def _days(text: str) -> int | None:
    """``YYYY-MM-DD`` -> days since 1970-01-01; None for a zero or impossible date (as
    ``mysql-replication``)."""
    try:
        return dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _micros_of_datetime(text: str) -> int | None:
    days = _days(text[:10])
    if days is None:
        return None
    frac = text[20:]
    return ((days * 86_400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])) * 1_000_000
            + (int(frac.ljust(6, "0")) if frac else 0))


def _datetime(fsp: int) -> Callable[[str], int | None]:
    if fsp > 3:
        return _micros_of_datetime

    def millis(text: str) -> int | None:
        micros = _micros_of_datetime(text)
        return None if micros is None else micros // 1000
    return millis


def _timestamp(text: str) -> str:
    secs, _, frac = text.partition(".")
    moment = dt.datetime.fromtimestamp(int(secs), _UTC)
    if frac:
        moment = moment.replace(microsecond=int(frac.ljust(6, "0")))
    return moment.isoformat().replace("+00:00", "Z")


def _time(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("-")
    hms, _, frac = body.partition(".")
    h, m, s = hms.split(":")
    return sign * ((int(h) * 3600 + int(m) * 60 + int(s)) * 1_000_000 + (int(frac.ljust(6, "0")) if frac else 0))


def _bytes_or(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def conv(value: Any) -> Any:
        if type(value) is bytes:
            return base64.b64encode(value).decode("ascii")
        return convert(value)
    return conv


def _identity(value: Any) -> Any:
    return value


def converter(column: Any) -> Callable[[Any], Any]:
    """The function from a native (``mysql-event-stream``) non-NULL value of ``column`` (a
    ``mysql-replication`` table-map column) to its change-event encoding: what
    ``encode_value`` gives for ``mysql-replication``'s value of the same bytes."""
    t = column.type
    if t in (FIELD_TYPE.DATETIME2, FIELD_TYPE.DATETIME):
        return _datetime(getattr(column, "fsp", 0) or 0)
    if t == FIELD_TYPE.DATE:
        return _days
    if t in (FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIMESTAMP):
        return _timestamp
    if t in (FIELD_TYPE.TIME2, FIELD_TYPE.TIME):
        return _time
    if t == FIELD_TYPE.LONGLONG:  # BIGINT UNSIGNED above 2**63-1 arrives as text
        return lambda v: int(v) if type(v) is str else v
    if t == FIELD_TYPE.ENUM:
        labels = column.enum_values  # [""] + labels: index 0 is the empty (invalid) value
        return (lambda v: labels[v]) if labels else (lambda v: None)
    if t == FIELD_TYPE.SET:
        members = column.set_values or []

        def set_text(mask: int) -> str | None:
            chosen = [m for i, m in enumerate(members) if mask >> i & 1]
            return ",".join(sorted(chosen)) if chosen else None  # as mysql-replication: empty set -> None
        return set_text
    if t == FIELD_TYPE.BIT:
        width = column.bits
        return lambda v: format(v, f"0{width}b")
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        charset = getattr(column, "character_set_name", None)
        if charset not in _UTF8:
            encoding = RowsEvent.charset_to_encoding(charset)  # mysql-replication's own mapping

            def recode(value: Any) -> Any:
                # The library read the bytes as UTF-8 (surrogateescape): undo, read with the charset
                # (as mysql-replication: bytes as they are when Python has no such codec).
                if type(value) is not str:
                    return value
                raw = value.encode("utf-8", "surrogateescape")
                try:
                    return raw.decode(encoding)
                except LookupError:
                    return base64.b64encode(raw).decode("ascii")
            return _bytes_or(recode)
        return _bytes_or(_identity)
    if t in (FIELD_TYPE.GEOMETRY, FIELD_TYPE.JSON):
        return _bytes_or(_identity)
    return _identity  # integers, YEAR, FLOAT, DOUBLE, DECIMAL (text with the column's scale)


def encoders(columns: list) -> list[tuple[str, Callable[[Any], Any]]]:
    return [(c.name, converter(c)) for c in columns]


def encode_image(image: dict[str, Any], enc: list[tuple[str, Callable[[Any], Any]]]) -> dict[str, Any]:
    out = {}
    for name, conv in enc:
        v = image.get(name)
        out[name] = None if v is None else conv(v)
    return out


# --- the reader ----------------------------------------------------------------------------
class _Header:
    """What capture reads of a rows event's header (as ``mysql-replication``'s ``packet``)."""

    __slots__ = ("timestamp", "server_id", "event_size", "log_pos")

    def __init__(self, timestamp: int, server_id: int, event_size: int, log_pos: int) -> None:
        self.timestamp, self.server_id, self.event_size, self.log_pos = timestamp, server_id, event_size, log_pos


class NativeRowsEvent:
    """One rows event decoded natively. ``rows`` has ``mysql-replication``'s shape (``values``,
    or ``before_values``/``after_values``) with every value already in the change-event encoding
    (``encoded``); ``op`` is c, u or d."""

    encoded = True
    __slots__ = ("schema", "table", "timestamp", "packet", "op", "rows")

    def __init__(self, schema: str, table: str, header: _Header, op: str, rows: list[dict]) -> None:
        self.schema, self.table, self.packet, self.op, self.rows = schema, table, header, op, rows
        self.timestamp = header.timestamp


class _Ctl:
    """The control connection ``mysql-replication``'s event classes ask for; with
    ``binlog_row_metadata=FULL`` a table map needs nothing of it but these two."""

    charset = "utf8mb4"

    @staticmethod
    def _get_dbms() -> str:
        return "mariadb"


_CONTROL = {TableMapEvent, MariadbGtidEvent, GtidEvent, XidEvent, QueryEvent, RotateEvent}
_OPS = None


#: Longest wait of :meth:`NativeBinlogReader.fetchone` for an event before it returns None.
IDLE = 0.1

#: The library's error codes of a replica connection that failed or dropped (the server went
#: away or restarted): passing, like mysql-replication's OperationalError; 401 is a refused login.
_PASSING_CODES = {400, 403, 404}


def _replica_call(fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` of the replica client, its failures in the project's terms (no message text
    of the library is kept: it may quote server replies)."""
    try:
        return fn(*args)
    except ConnectionError:
        raise  # MesConnectionError: already a passing failure (is_transient)
    except RuntimeError as exc:
        code = int(getattr(exc, "code", 0) or 0)
        if code in _PASSING_CODES:
            raise RetriableError(f"the binlog connection to the database was lost (native decoder, code {code})") from None
        if code == 401:
            raise ConfigError("the database refused the binlog connection's login: check the capture user's "
                              "password and its REPLICATION SLAVE grant") from None
        raise


class NativeBinlogReader:
    """A replica reading from ``log_file:log_pos``; :meth:`fetchone` gives the next event capture
    needs: ``mysql-replication``'s control events, :class:`NativeRowsEvent` for rows, None when
    the server only said it is alive (its heartbeat) or the event is of no interest."""

    def __init__(self, *, host: str, port: int, user: str, password: str, server_id: int, log_file: str,
                 log_pos: int, only_schemas: list[str], only_tables: list[str]) -> None:
        if not available():
            raise RuntimeError("the native decoder needs the mysql-event-stream package "
                               "(pip install 'snapsync[native]'); use --decoder python")
        global _OPS
        _OPS = _OPS or {EventType.INSERT: "c", EventType.UPDATE: "u", EventType.DELETE: "d"}
        self.table_map: dict[int, Any] = {}
        self._only_schemas, self._only_tables = list(only_schemas), list(only_tables)
        self._pending: deque = deque()
        self._encoders: dict[tuple, list] = {}
        self._engine = CdcEngine()
        self._engine.set_include_databases(self._only_schemas)
        self._engine.set_include_tables([f"{d}.{t}" for d in self._only_schemas for t in self._only_tables])
        self._checksum: bool | None = None
        self._client = BinlogClient(host=host, port=port, user=user, password=password, server_id=server_id,
                                    start_binlog_file=log_file, start_binlog_position=log_pos, ssl_mode=0,
                                    read_timeout_s=10)
        _replica_call(self._client.connect)
        _replica_call(self._client.start)
        # The client's poll blocks until an event or the server's heartbeat (seconds apart on an
        # idle binlog); capture's loop must turn at least every IDLE seconds (its own heartbeat
        # row, the restart point, stop): a thread polls, the loop waits on the queue.
        self._batches: queue.Queue = queue.Queue(maxsize=64)
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="native-binlog", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            try:
                batch: Any = _replica_call(self._client.poll_batch, 256)
            except BaseException as exc:  # noqa: BLE001 - handed to the capture loop, in order
                batch = exc
            while not self._closing.is_set():
                try:
                    self._batches.put(batch, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if isinstance(batch, BaseException):
                return

    def close(self) -> None:
        self._closing.set()
        self._client.close()
        self._poller.join(5)
        self._engine.close()

    def fetchone(self) -> Any:
        if not self._pending:
            try:
                batch = self._batches.get(timeout=IDLE)
            except queue.Empty:
                return None
            if isinstance(batch, BaseException):
                raise batch
            self._pending.extend(batch)
        res = self._pending.popleft()
        if res.data is None:
            return None
        return self._event(res.data, res.checksum_enabled)

    def _event(self, data: bytes, checksum: bool) -> Any:
        timestamp, etype, server_id, size, log_pos, _flags = _HEADER.unpack_from(data)
        if checksum != self._checksum:
            self._engine.set_checksum_enabled(checksum)
            self._checksum = checksum
        if etype in _ROWS_EVENTS:
            return self._rows(data, _Header(timestamp, server_id, size, log_pos))
        if etype != _ROTATE:
            # The engine keeps its own table maps and format description; ROTATE is capture's.
            self._feed(data)
        if etype not in (_ROTATE, _TABLE_MAP, 2, 16, 33, 162):
            return None  # 2 QUERY, 16 XID, 33 GTID (MySQL), 162 GTID (MariaDB); the rest capture skips
        wrapper = BinLogPacketWrapper(
            MysqlPacket(b"\x00" + data, "utf8"), self.table_map, _Ctl, None, checksum, _CONTROL,
            self._only_tables, None, self._only_schemas, None, False, False, False, True, False)
        return wrapper.event if etype != _TABLE_MAP else None

    def _feed(self, data: bytes, changes: list | None = None) -> None:
        """Feed one event; its changes (if any) into ``changes`` (drained as it goes: the
        engine's queue is bounded)."""
        engine = self._engine
        fed = 0
        while True:
            fed += engine.feed(data[fed:] if fed else data)
            while (ch := engine.next_event()) is not None:
                if changes is not None:
                    changes.append(ch)
            if fed >= len(data):
                return

    def _rows(self, data: bytes, header: _Header) -> NativeRowsEvent | None:
        changes: list = []
        self._feed(data, changes)
        if not changes:
            return None  # a table capture does not read
        table_id = int.from_bytes(data[19:25], "little")
        table = self.table_map.get(table_id)
        first = changes[0]
        if table is None or table.table != first.table or not first.names_resolved:
            raise RuntimeError(f"rows event of {first.database}.{first.table} at position {header.log_pos} "
                               "without its table map (binlog_row_metadata=FULL is needed)")
        cols = table.columns
        key = (table.table, tuple((c.name, c.type) for c in cols))
        enc = self._encoders.get(key)
        if enc is None:
            enc = self._encoders[key] = encoders(cols)
        op = _OPS[first.type]
        if op == "u":
            rows = [{"before_values": encode_image(ch.before, enc), "after_values": encode_image(ch.after, enc)}
                    for ch in changes]
        elif op == "c":
            rows = [{"values": encode_image(ch.after, enc)} for ch in changes]
        else:
            rows = [{"values": encode_image(ch.before, enc)} for ch in changes]
        return NativeRowsEvent(first.database, first.table, header, op, rows)
