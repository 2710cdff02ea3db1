"""Embedded change capture: the practice database's binlog into Kafka, in the Debezium
MySQL connector's shape (``schemas/events.py``).

Life cycle (``snapsync capture``):

1. First start (no stored offset, or ``--resnapshot``): an initial snapshot. One
   consistent-read transaction reads every catalog table (``op`` = ``r``); the binlog
   position of that very instant is recorded with the rows.
2. Streaming from exactly that position with ``mysql-replication``: every row event of
   a catalog table becomes one event on ``<prefix>.<db>.<table>`` (key = primary-key
   JSON); a delete is followed by a tombstone. Transactions get BEGIN/END records on
   ``<prefix>.transaction`` and each event a ``transaction`` block.
3. Every ``commit_interval`` the producer is flushed (the broker acknowledged everything
   produced so far) and only then the last transaction boundary is stored as the
   restart point (``connectors/offsets.py``), also at the end of the transaction of an
   exporter's watermark probe row. A ``kill -9`` at any instant therefore loses nothing; it
   may re-produce the events of at most one interval. Delivery is at-least-once: consumers
   de-duplicate by ``source.file/pos/row``, unique per row change, increasing along the binlog.
4. Heartbeats: every ``heartbeat_interval`` capture writes the server's clock into the
   signal schema's ``snapsync_heartbeat`` (Debezium's ``heartbeat.action.query`` idea). When
   that row comes back through the binlog, every change committed before it has been read;
   capture flushes, then publishes on ``__debezium-heartbeat.<prefix>`` the position, the
   source clock, and the end offset of every change-topic partition it wrote (for lag and
   for consumers; the incremental watermark does not rely on them: it reads the restart
   point, ``sinks/incremental.py``).

Schema changes need no history: with ``binlog_row_metadata=FULL`` each table-map event
carries the column names, so events after an ALTER TABLE have the new shape.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from pymysqlreplication.event import GtidEvent, HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

from snapsync.connectors import native_decoder
from snapsync.connectors.kafka import ensure_topics, producer
from snapsync.connectors.failures import Backoff, is_transient
from snapsync.connectors.grants import check_role
from snapsync.connectors.mysql import binlog_files, connect
from snapsync.connectors.python_decoder import column_encoders, open_reader
from snapsync.connectors.offsets import HEARTBEAT_TABLE, WATERMARK_PROBE, OffsetStore, StoredOffset, write_heartbeat
from snapsync.connectors.state import connect_source, connect_state
from snapsync.schemas.catalog import DATASETS, DataSet
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError
from snapsync.schemas.events import ChangeEvent, SourcePosition, dumps, encode_value
from snapsync.schemas.messages import Heartbeat
from snapsync.schemas.topics import change_topic, dead_letter_topic, heartbeat_topic, transaction_topic

log = logging.getLogger("snapsync.capture")

#: The binlog decoders capture can use (``snapsync capture --decoder``).
DECODERS = ("python", "native")



def default_server_id(connector: str) -> int:
    """A replica server id derived from the connector name (unique per connector)."""
    return 100_000 + zlib.crc32(connector.encode()) % 1_000_000


@dataclass
class _Streaming:
    """Where the streaming loop is: the binlog file, the last transaction boundary (the next
    restart point), the open transaction, the events produced, when the next commit is due."""

    store: OffsetStore
    reader: Any
    file: str
    boundary: StoredOffset
    events_total: int
    txn: dict[str, Any] | None = None
    next_commit: float = 0.0


def _fatal_producer() -> RetriableError:
    """librdkafka's fatal error (raised as ``SystemError`` from a call): the idempotent producer
    met another broker (replaced or emptied, ``control/broker.py``). Passing: the restart point
    was not moved, and the capture starts again with a new producer."""
    return RetriableError("the producer failed fatally (the broker was replaced or emptied); the restart point "
                          "was not moved: capture starts again")


@dataclass
class CaptureStats:
    snapshot_rows: int = 0
    streamed_rows: int = 0
    transactions: int = 0
    heartbeats: int = 0
    commits: int = 0
    last_position: SourcePosition | None = None
    lag_ms: list[float] = field(default_factory=list)
    # For the metrics port (connectors/capture_metrics.py): what capture is doing, the newest
    # source commit time read (epoch seconds), the last turn of the streaming loop (monotonic)
    # and the restart point last stored.
    state: str = "starting"
    source_ts: float | None = None
    loop_at: float = 0.0
    restart_point: StoredOffset | None = None


class Capture:
    """Embedded binlog capture (see the module docstring).

    Args:
        settings: database, broker and topic prefix.
        connector: the connector's name (offset row, heartbeat row, server id).
        server_id: replica id; must be unique among the server's replicas.
        partitions: partitions of the change topics it creates.
        heartbeat_interval: seconds between heartbeat writes (0 disables them).
        commit_interval: seconds between flush-and-store of the restart point.
        measure_lag: keep commit-to-ack lag samples (benchmarks).
        decoder: ``python`` (``mysql-replication``) or ``native`` (``mysql-event-stream``'s C++
            core decodes the rows: ``connectors/native_decoder.py``); default: the ``decoder`` setting.
            Same events either way.
    """

    def __init__(self, settings: Settings, *, connector: str = "snapsync", server_id: int | None = None,
                 partitions: int = 3, heartbeat_interval: float = 1.0, commit_interval: float = 1.0,
                 measure_lag: bool = False, decoder: str | None = None) -> None:
        decoder = decoder or settings.decoder
        if decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
        if decoder == "native" and not native_decoder.available():
            raise ConfigError("--decoder native needs the mysql-event-stream package "
                              "(pip install 'snapsync[native]'); --decoder python needs nothing more")
        self.decoder = decoder
        self.settings = settings
        self.db = settings.db.database
        self.signal = settings.signal_schema
        self.prefix = settings.topic_prefix
        self.connector = connector
        self.server_id = server_id or default_server_id(connector)
        self.partitions = partitions
        self.heartbeat_interval = heartbeat_interval
        self.commit_interval = commit_interval
        self.measure_lag = measure_lag
        self.stats = CaptureStats()
        self._probe_seen = False
        self.stop_event = threading.Event()
        self._tables: dict[str, DataSet] = {d.table: d for d in DATASETS}
        self._errors: list[str] = []
        self._end_offsets: dict[str, dict[int, int]] = {}
        self._encoders: dict[tuple, list[tuple[str, dict[str, Any]]]] = {}
        self._producer = producer(settings.kafka_bootstrap)

    # -- topics and producing -------------------------------------------------------------
    def topics(self) -> list[str]:
        return [*(change_topic(self.prefix, self.db, t) for t in self._tables),
                change_topic(self.prefix, self.signal, HEARTBEAT_TABLE)]

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            # The broker did not take the event: do not move the restart point past it.
            self._errors.append(f"{msg.topic()}: {err}")
            return
        parts = self._end_offsets.setdefault(msg.topic(), {})
        if msg.offset() + 1 > parts.get(msg.partition(), 0):
            parts[msg.partition()] = msg.offset() + 1
        if self.measure_lag and msg.topic().endswith(".snapsync_heartbeat"):
            # Commit (server clock, microseconds) to broker acknowledgement of the heartbeat row.
            ts = msg.timestamp()[1]
            if ts > 0:
                self.stats.lag_ms.append(time.time() * 1000 - ts)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, ts_ms: int | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery,
                                       **({"timestamp": ts_ms} if ts_ms else {}))
                return
            except BufferError:
                self._poll(0.1)  # local queue full: let deliveries drain
            except SystemError:
                raise _fatal_producer() from None

    def _poll(self, timeout: float) -> None:
        try:
            self._producer.poll(timeout)
        except SystemError:  # a delivery callback of a producer in librdkafka's fatal state
            raise _fatal_producer() from None

    def _flush(self) -> None:
        """Wait until the broker acknowledged everything produced so far."""
        try:
            remaining = self._producer.flush(60)
        except SystemError:  # librdkafka's fatal error: the idempotent producer met another broker
            raise _fatal_producer() from None
        if remaining or self._errors:
            errors, self._errors = self._errors[:3], []
            raise RetriableError(
                f"the broker did not acknowledge {remaining} event(s) ({'; '.join(errors) or 'timeout'}); "
                "the restart point was not moved: restart capture when the broker is back"
            )

    def _emit(self, event: ChangeEvent, ds: DataSet) -> None:
        topic = change_topic(self.prefix, event.db, event.table)
        key = dumps(event.key(ds.primary_key))
        self._produce(topic, key, event.to_json())
        if event.op == "d":
            self._produce(topic, key, None)  # tombstone, for log compaction

    # -- entry point ------------------------------------------------------------------------
    def run(self, *, resnapshot: bool = False, install_signals: bool = True,
            outage_retry: bool = True) -> CaptureStats:
        """Snapshot if needed, then stream until stopped (SIGTERM/SIGINT or ``stop_event``).

        An outage of the database or the broker is waited out with back-off: capture starts
        again from the stored restart point, which only ever moved after the broker had
        acknowledged everything before it (nothing lost; at most one interval produced
        twice). ``outage_retry=False`` raises instead (tests, one-shot runs).
        """
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        backoff = Backoff(first=1.0, cap=30.0)
        while True:
            try:
                self._run_once(resnapshot)
                self.stats.state = "stopped"
                return self.stats
            except Exception as exc:  # noqa: BLE001 - classified
                if not outage_retry or not is_transient(exc) or self.stop_event.is_set():
                    self.stats.state = "failed"
                    raise
                self.stats.state = "paused"
                # A new producer: one that met a fatal error (a replaced broker) never recovers;
                # what the old one held unacknowledged is produced again from the restart point.
                self._producer = producer(self.settings.kafka_bootstrap)
                delay = backoff.next()
                log.warning("capture paused: %s; starting again from the stored position in %.0fs",
                            exc if isinstance(exc, RetriableError) else type(exc).__name__, delay)
                self._errors.clear()
                self.stop_event.wait(delay)
                resnapshot = False
                if self.stop_event.is_set():
                    return self.stats

    def check_grants(self) -> None:
        """Every privilege capture needs (its role's, ``snapsync db grants --role capture``),
        before anything is written.

        Raises:
            ConfigError: naming each missing grant and the statement that gives it.
        """
        check_role(self.settings, "capture")

    def _run_once(self, resnapshot: bool) -> None:
        self.check_grants()
        ensure_topics(self.settings.kafka_bootstrap,
                      [*self.topics(), heartbeat_topic(self.prefix), transaction_topic(self.prefix),
                       dead_letter_topic(self.prefix)], self.partitions)
        ctl = connect_state(self.settings, autocommit=False)
        try:
            store = OffsetStore(ctl, self.connector)
            if resnapshot:
                store.reset()
            offset = store.load()
            if offset is None or not offset.snapshot_completed:
                offset = self.snapshot(store)
            else:
                with connect(self.settings.db) as source:
                    files = binlog_files(source)
                if offset.file not in files:
                    raise FatalError(
                        f"binlog file {offset.file} was purged on the server; the stored position is gone "
                        f"(oldest binlog now: {files[0] if files else 'none'}). Changes after it cannot be read. "
                        f"Run `snapsync capture --resnapshot` to take a new initial snapshot."
                    )
                log.info("resuming capture at %s:%d", offset.file, offset.pos)
            self.stream(store, offset)
        finally:
            ctl.close()

    # -- initial snapshot -------------------------------------------------------------------
    def snapshot(self, store: OffsetStore) -> StoredOffset:
        """Read every catalog table in one consistent-read transaction (``op`` = ``r``;
        ``connectors/capture_snapshot.py``)."""
        from snapsync.connectors.capture_snapshot import initial_snapshot

        return initial_snapshot(self, store)

    # -- streaming --------------------------------------------------------------------------
    def _binlog_encoders(self, event) -> list[tuple[str, dict[str, Any]]]:
        cache_key = (event.table, tuple((c.name, c.type) for c in event.columns))
        enc = self._encoders.get(cache_key)
        if enc is None:
            enc = self._encoders[cache_key] = column_encoders(event.columns)
        return enc

    def stream(self, store: OffsetStore, offset: StoredOffset) -> None:
        """Stream row events from ``offset`` until stopped."""
        reader = open_reader(self.decoder, self.settings.db, server_id=self.server_id, log_file=offset.file,
                             log_pos=offset.pos, schemas=[self.db, self.signal], tables=[*self._tables, HEARTBEAT_TABLE])
        self._stream(store, offset, reader)

    def _stream(self, store: OffsetStore, offset: StoredOffset, reader) -> None:
        """The streaming loop: heartbeats and restart points on their timers, each event to the
        handler of its type (Debezium's pattern: one handler per binlog event type)."""
        hb_conn = connect_source(self.settings) if self.heartbeat_interval > 0 else None
        st = _Streaming(store, reader, offset.file, offset, offset.events,
                        next_commit=time.monotonic() + self.commit_interval)
        next_heartbeat = time.monotonic()
        handlers = {RotateEvent: self._on_rotate, MariadbGtidEvent: self._on_gtid, GtidEvent: self._on_gtid,
                    XidEvent: self._on_commit, QueryEvent: self._on_query, HeartbeatLogEvent: None}
        self.stats.state = "streaming"
        try:
            while not self.stop_event.is_set():
                now = self.stats.loop_at = time.monotonic()
                if hb_conn is not None and now >= next_heartbeat:
                    write_heartbeat(hb_conn, self.connector)
                    next_heartbeat = now + self.heartbeat_interval
                if now >= st.next_commit:
                    self._commit(store, st.boundary)
                    st.next_commit = now + self.commit_interval
                ev = reader.fetchone()
                if ev is None:
                    continue
                self._poll(0)
                if ev.timestamp and ev.timestamp > (self.stats.source_ts or 0):
                    self.stats.source_ts = ev.timestamp
                handler = handlers.get(type(ev), self._on_rows)  # rows: mysql-replication's or native
                if handler is not None:
                    handler(st, ev)
            self._commit(store, st.boundary)
        finally:
            reader.close()
            if hb_conn is not None:
                hb_conn.close()

    @staticmethod
    def _forget_table_maps(st: _Streaming) -> None:
        # Every transaction maps its tables again before its rows. mysql-replication keeps no
        # map for a table it filters out, so a row event of such a table could find a stale map
        # under the same table id (ids restart with the server; a resumed reader has seen the
        # old ones): forget them at every boundary.
        st.reader.table_map.clear()

    def _on_rotate(self, st: _Streaming, ev) -> None:
        self._forget_table_maps(st)
        st.file = ev.next_binlog

    def _on_gtid(self, st: _Streaming, ev) -> None:
        self._forget_table_maps(st)
        st.txn = {"id": str(ev.gtid), "total": 0, "per_table": {}, "ts": ev.timestamp}

    def _on_query(self, st: _Streaming, ev) -> None:
        query = ev.query.strip().upper()
        if query == "BEGIN":
            self._forget_table_maps(st)
            return
        if query != "COMMIT":
            # DDL (ALTER TABLE ...): an implicit commit; later table maps carry the new shape.
            schema = ev.schema.decode() if isinstance(ev.schema, bytes) else ev.schema
            log.info("schema change at %s:%d in %s", st.file, ev.packet.log_pos, schema)
        self._on_commit(st, ev)

    def _on_commit(self, st: _Streaming, ev) -> None:
        """A transaction's end: its END record, and the next restart point (stored now when an
        exporter's probe was in it: the exporter waits for this very position)."""
        txn = st.txn
        if txn and txn["total"]:
            self._produce(transaction_topic(self.prefix), dumps({"id": txn["id"]}), dumps({
                "status": "END", "id": txn["id"], "ts_ms": ev.timestamp * 1000, "event_count": txn["total"],
                "data_collections": [{"data_collection": f"{self.db}.{t}", "event_count": n}
                                     for t, n in txn["per_table"].items()],
            }))
            self.stats.transactions += 1
        st.boundary = StoredOffset(st.file, ev.packet.log_pos, txn["id"] if txn else st.boundary.gtid, True,
                                   st.events_total)
        st.txn = None
        if self._probe_seen:
            self._probe_seen, st.next_commit = False, time.monotonic() + self.commit_interval
            self._commit(st.store, st.boundary)

    def _on_rows(self, st: _Streaming, ev) -> None:
        """One rows event: a change event per row of a catalog table (the heartbeat table's
        rows go to :meth:`_heartbeat_seen`)."""
        end_pos, table = ev.packet.log_pos, ev.table
        schema = ev.schema.decode() if isinstance(ev.schema, bytes) else ev.schema
        if schema != self.db:
            if schema == self.signal and table == HEARTBEAT_TABLE:
                self._heartbeat_seen(ev, st.file, end_pos, st.store, st.txn)
            return
        ds = self._tables.get(table)
        if ds is None:
            return
        if st.txn is None:  # a server without GTIDs: the transaction is file:pos
            st.txn = {"id": f"{st.file}:{end_pos}", "total": 0, "per_table": {}, "ts": ev.timestamp}
        txn = st.txn
        if txn["total"] == 0:
            self._produce(transaction_topic(self.prefix), dumps({"id": txn["id"]}),
                          dumps({"status": "BEGIN", "id": txn["id"], "ts_ms": ev.timestamp * 1000,
                                 "event_count": None, "data_collections": None}))
        # As Debezium: pos is where the rows event starts (its header's next-position minus its
        # full length; mysql-replication's event_size leaves out the 19-byte header and the
        # 4-byte checksum), server_id the originating server's.
        start = end_pos - ev.packet.event_size
        gtid = txn["id"] if ":" not in txn["id"] else None
        ts_ms, now_ns = ev.timestamp * 1000, time.time_ns()
        for i, (op, before, after) in enumerate(self._row_images(ev)):
            txn["total"] += 1
            per = txn["per_table"][table] = txn["per_table"].get(table, 0) + 1
            self._emit(ChangeEvent(
                op=op, db=self.db, table=table, before=before, after=after,
                position=SourcePosition(st.file, start, i, gtid), source_ts_ms=ts_ms, ts_ms=now_ns // 1_000_000,
                ts_ns=now_ns, connector_name=self.prefix, server_id=ev.packet.server_id,
                transaction={"id": txn["id"], "total_order": txn["total"], "data_collection_order": per},
            ), ds)
            st.events_total += 1
            self.stats.streamed_rows += 1
        self.stats.last_position = SourcePosition(st.file, start, len(ev.rows) - 1)

    def _row_images(self, ev):
        """(op, before, after) of each row, values in the change-event encoding: the native
        decoder's rows come encoded with their op; mysql-replication's are encoded here."""
        if getattr(ev, "encoded", False):
            for row in ev.rows:
                if ev.op == "c":
                    yield "c", None, row["values"]
                elif ev.op == "u":
                    yield "u", row["before_values"], row["after_values"]
                else:
                    yield "d", row["values"], None
            return
        enc = self._binlog_encoders(ev)
        kind = "c" if isinstance(ev, WriteRowsEvent) else "u" if isinstance(ev, UpdateRowsEvent) else "d"

        def encoded(values):
            return {n: encode_value(values.get(n), **kw) for n, kw in enc}

        for row in ev.rows:
            if kind == "c":
                yield "c", None, encoded(row["values"])
            elif kind == "u":
                yield "u", encoded(row["before_values"]), encoded(row["after_values"])
            else:
                yield "d", encoded(row["values"]), None

    def _commit(self, store: OffsetStore, boundary: StoredOffset) -> None:
        """Flush, then store the restart point (never the other way round)."""
        self._flush()
        store.save(boundary)
        self.stats.commits += 1
        self.stats.restart_point = boundary

    def _heartbeat_seen(self, ev, file: str, end_pos: int, store: OffsetStore, txn) -> None:
        for row in ev.rows:
            values = row.get("after_values") or row.get("values") or {}
            if values.get("connector") == WATERMARK_PROBE:
                self._probe_seen = True  # the restart point is stored at this transaction's end
            if values.get("connector") != self.connector:
                continue
            # Everything before this row in the binlog has been produced: make it durable,
            # then announce the watermark with the end offsets covering it.
            self._flush()
            position = SourcePosition(file, end_pos, 0, txn["id"] if txn else None)
            offsets = {t: {str(p): o for p, o in parts.items()} for t, parts in self._end_offsets.items()
                       if t.startswith(self.prefix + "." + self.db + ".")}
            value = Heartbeat.at(int(time.time() * 1000), position, int(values["ts_us"]), offsets)
            self.stats.source_ts = max(self.stats.source_ts or 0, int(values["ts_us"]) / 1e6)  # finer than the header
            self._produce(heartbeat_topic(self.prefix), dumps({"serverName": self.prefix}), value.to_json())
            # The row itself, as a Debezium connector with the same heartbeat.action.query emits it.
            row_ev = ChangeEvent(
                op="u" if "after_values" in row else "c", db=self.signal, table=HEARTBEAT_TABLE,
                before=row.get("before_values"), after=values, position=position,
                source_ts_ms=ev.timestamp * 1000, ts_ms=int(time.time() * 1000), connector_name=self.prefix,
                server_id=ev.packet.server_id)
            self._produce(change_topic(self.prefix, self.signal, HEARTBEAT_TABLE),
                          dumps({"connector": self.connector}), row_ev.to_json(), int(values["ts_us"]) // 1000)
            self.stats.heartbeats += 1
