"""The deltas stage of the worker: the change topics of the incremental data sets, read in
batches, staged in the state store's ``snapsync_delta`` (``streams/deltas.py``).

It runs in the worker process beside the faust agents, but reads with confluent-kafka
directly: faust's per-event path costs about 300 µs per event here (measured: 2,400
events/s), ten times the work itself, and staging needs none of faust's features. Per
batch: decode and check each event (a bad one is dead-lettered with a value-free reason),
stage the rows and the next offset of every partition in one database transaction, then
commit the same offsets to the consumer group (for lag; the database's progress is the one
the stage resumes from). While the database stages one batch, the next is decoded.

* **Partitions** are shared with other workers through the consumer group
  ``snapsync-deltas-<prefix>-<db>``; an assigned partition starts at its staged progress.
* **Crash safety**: rows and progress commit together, upserts keep the newest binlog
  order, so a batch staged twice (``kill -9``, a rebalance) changes nothing.
* **Outages** of the database or broker are waited out with back-off; a row the database
  refuses is found by staging the batch again row by row, and only it is dead-lettered.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from snapsync.connectors.kafka import producer
from snapsync.connectors.mysql import close_quietly
from snapsync.connectors.state import connect_state
from snapsync.schemas.config import Settings
from snapsync.schemas.topics import dead_letter_topic, deltas_group, deltas_topics
from snapsync.streams import metrics
from snapsync.streams.decode import decode_change
from snapsync.streams.deltas import delta_rows, stage
from snapsync.connectors.failures import Backoff, dead_letter, safe_reason, waits

log = logging.getLogger("snapsync.deltas")
BATCH = 5000


@dataclass
class StagerStats:
    """Counters for metrics and tests."""

    events: int = 0
    staged_rows: int = 0
    dead_letters: int = 0
    batches: int = 0
    progress: dict[tuple[str, int], int] = field(default_factory=dict)


class DeltaStager:
    """Stage the incremental data sets' changes until ``stop`` is set (see the module docstring)."""

    def __init__(self, settings: Settings, *, batch: int = BATCH) -> None:
        self.settings = settings
        self.batch = batch
        self.stats = StagerStats()
        prefix, db = settings.topic_prefix, settings.db.database
        self.topics = deltas_topics(prefix, db)
        self.group = deltas_group(prefix, db)
        self._conn = None
        self._dlq = producer(settings.kafka_bootstrap)
        self._dlq_topic = dead_letter_topic(prefix)

    # -- the database, waited for ---------------------------------------------------------
    def _db(self, fn, *args, stop: threading.Event):
        """``fn(conn, *args)``, retried on a new connection with back-off while the failure
        passes (or the database is not as expected); other failures are raised."""
        backoff = Backoff()
        while True:
            try:
                if self._conn is None:
                    self._conn = connect_state(self.settings)
                return fn(self._conn, *args)
            except Exception as exc:  # noqa: BLE001 - classified
                if not waits(exc) or stop.is_set():
                    raise
                delay = backoff.next()
                log.warning("deltas: database call failed (%s); retrying in %.1fs", safe_reason(exc), delay)
                close_quietly(self._conn)
                self._conn = None
                stop.wait(delay)

    @staticmethod
    def _progress(conn, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        cur = conn.cursor()
        cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
        found = {(t, int(p)): int(o) for t, p, o in cur.fetchall()}
        conn.commit()
        return {k: found[k] for k in keys if k in found}

    # -- dead letters ----------------------------------------------------------------------
    def _dead_letter(self, msg, reason: str) -> None:
        log.warning("dead letter from %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        letter = dead_letter(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), reason)
        self._dlq.produce(self._dlq_topic, key=letter.key, value=letter.value, headers=letter.headers)
        self.stats.dead_letters += 1

    def _flush_dead_letters(self, stop: threading.Event) -> None:
        backoff = Backoff(first=0.5)
        while self._dlq.flush(10) and not stop.is_set():
            delay = backoff.next()
            log.warning("the broker did not take the dead letters yet; retrying in %.1fs", delay)
            stop.wait(delay)

    # -- one batch -------------------------------------------------------------------------
    def _decode(self, msgs) -> tuple[list[tuple], dict[tuple[str, int], int]]:
        rows, progress = [], {}
        for msg in msgs:
            if msg.error():
                continue
            key = (msg.topic(), msg.partition())
            progress[key] = max(progress.get(key, 0), msg.offset() + 1)
            value = msg.value()
            if not value:
                continue  # tombstone
            self.stats.events += 1
            metrics.EVENTS.labels("deltas").inc()
            try:
                change, _ds = decode_change(msg.topic(), msg.key(), value)
                rows.extend((msg, r) for r in delta_rows(change))
            except Exception as exc:  # noqa: BLE001 - decoding is about this message only
                self._dead_letter(msg, f"cannot stage the event: {safe_reason(exc)}")
        return rows, progress

    def _stage(self, rows: list[tuple], progress: dict, stop: threading.Event) -> None:
        try:
            self._db(stage, [r for _m, r in rows], progress, stop=stop)
        except Exception:  # noqa: BLE001 - a row the database refuses: find it, row by row
            for msg, row in rows:
                try:
                    self._db(stage, [row], {}, stop=stop)
                except Exception as exc:  # noqa: BLE001 - that row only
                    self._dead_letter(msg, f"cannot stage the event: {safe_reason(exc)}")
            self._db(stage, [], progress, stop=stop)
        self.stats.staged_rows += len(rows)
        self.stats.batches += 1
        for _m, row in rows:
            metrics.STAGED.labels(row[1]).inc()
        for k, v in progress.items():
            self.stats.progress[k] = max(self.stats.progress.get(k, 0), v)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume and stage until ``stop`` is set."""
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka_bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 50,  # Tansu answers a waiting fetch only when the wait ends
            "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
        })

        def on_assign(c, partitions):
            # Start each partition where the database says it was staged up to.
            staged = self._db(self._progress, [(p.topic, p.partition) for p in partitions], stop=stop)
            for p in partitions:
                p.offset = staged.get((p.topic, p.partition), OFFSET_BEGINNING)
            c.assign(partitions)
            log.info("deltas: staging %d partition(s)", len(partitions))

        consumer.subscribe(self.topics, on_assign=on_assign)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deltas-db")
        pending: Future | None = None
        pending_offsets: list[TopicPartition] = []
        try:
            while not stop.is_set():
                try:
                    msgs = consumer.consume(self.batch, timeout=0.2)
                except KafkaException as exc:
                    log.warning("deltas: broker error (%s); retrying", exc.args[0].name() if exc.args else "?")
                    stop.wait(1.0)
                    continue
                if not msgs:
                    if pending is not None and pending.done():  # idle: the last batch's offsets too
                        pending.result()
                        self._commit(consumer, pending_offsets)
                        pending, pending_offsets = None, []
                    continue
                rows, progress = self._decode(msgs)
                self._flush_dead_letters(stop)  # dead letters before the offsets that skip them
                if pending is not None:  # one batch staged at a time, in order
                    pending.result()
                    self._commit(consumer, pending_offsets)
                pending = pool.submit(self._stage, rows, progress, stop)
                pending_offsets = [TopicPartition(t, p, o) for (t, p), o in progress.items()]
            if pending is not None:
                pending.result()
                self._commit(consumer, pending_offsets)
        finally:
            consumer.close()
            pool.shutdown(wait=True)
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @staticmethod
    def _commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException:
                pass  # lag visibility only: the stage resumes from the database's progress


def start_stager(settings: Settings, stop: threading.Event) -> tuple[DeltaStager, threading.Thread]:
    """The deltas stage in a thread of the calling (worker) process. An unexpected failure of
    the loop itself (not of a message) stops the process, so it never looks alive while
    nothing is staged."""
    import os

    stager = DeltaStager(settings)

    def run():
        backoff = Backoff(first=1.0, cap=30.0)
        while not stop.is_set():
            try:
                stager.run(stop)
                return
            except Exception as exc:  # noqa: BLE001 - the loop, not one message
                if waits(exc):
                    delay = backoff.next()
                    log.warning("deltas stage paused (%s); starting again in %.0fs", safe_reason(exc), delay)
                    stop.wait(delay)
                    continue
                log.critical("deltas stage failed (%s), stopping the worker (exit 70)", safe_reason(exc))
                logging.shutdown()
                os._exit(70)

    thread = threading.Thread(target=run, name="deltas-stage", daemon=True)
    thread.start()
    return stager, thread
