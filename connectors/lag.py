"""Consumer lag that is right on Tansu too: committed offsets against the true end offsets.

A partition's end offset is what the broker reports as its high watermark, checked by
reading from the last message it reports on. Tansu 0.6 reports the base offset of the last
record *batch* plus one (measured: 91 for 108 messages produced in six batches of 18), so a
lag computed from the high watermark alone comes out short, or negative against a group that
read the whole batch. Reading from ``high watermark - 1`` to the end of the partition (the
consumer's end-of-partition event) costs one fetch per partition: on Kafka it reads one
message, on Tansu the last batch. The true end is the offset after the last message read.

The lag of a group on a partition is ``end - committed``; a partition the group never
committed counts from the low watermark (the workers start at the earliest offset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from snapsync.connectors.metrics import PeriodicMonitor
from snapsync.schemas.errors import RetriableError

log = logging.getLogger("snapsync.lag")

#: At most this many messages are read past a reported end per probe (a broker far behind
#: its own report gives a lower bound rather than a long read).
PROBE_LIMIT = 100_000


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end: int
    committed: int | None  # None: the group never committed this partition
    reported_end: int  # the broker's own high watermark, for comparison
    low: int = 0  # the earliest offset kept

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.low
        return max(0, self.end - start)

    def to_json(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "end": self.end, "committed": self.committed,
                "lag": self.lag, "reported_end": self.reported_end}


def _consumer(bootstrap: str, group: str) -> Consumer:
    # group.id is needed to read the group's committed offsets; the consumer never subscribes,
    # so it never joins the group (assign() only).
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "enable.partition.eof": True, "fetch.wait.max.ms": 50, "socket.timeout.ms": 10000,
                     "log_level": 3})


def _partitions(c: Consumer, topics: Iterable[str], timeout: float) -> list[TopicPartition]:
    try:
        md = c.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise RetriableError(f"cannot reach the Kafka broker ({exc.args[0].name() if exc.args else 'no answer'})") from None
    out = []
    for t in topics:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None:
            continue  # not created yet: nothing to lag behind
        out.extend(TopicPartition(t, p) for p in sorted(tm.partitions))
    return out


def true_end_offsets(c: Consumer, tps: list[TopicPartition], timeout: float = 10.0) -> dict[tuple[str, int], tuple[int, int, int]]:
    """{(topic, partition): (low, true end, reported end)} (see the module docstring)."""
    marks: dict[tuple[str, int], tuple[int, int]] = {}
    for tp in tps:
        try:
            lo, hi = c.get_watermark_offsets(tp, timeout=timeout)
        except KafkaException as exc:
            raise RetriableError(f"cannot read the end offsets of {tp.topic} "
                                 f"({exc.args[0].name() if exc.args else 'no answer'})") from None
        marks[(tp.topic, tp.partition)] = (max(lo, 0), max(hi, 0))
    ends = {k: hi for k, (_lo, hi) in marks.items()}
    probe = [TopicPartition(t, p, hi - 1) for (t, p), (lo, hi) in marks.items() if hi > lo]
    if probe:
        c.assign(probe)
        pending = {(tp.topic, tp.partition) for tp in probe}
        read = 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline and read < PROBE_LIMIT:
            for m in c.consume(10_000, 0.2):
                key = (m.topic(), m.partition())
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(key)
                    continue
                read += 1
                if m.offset() + 1 > ends[key]:
                    ends[key] = m.offset() + 1
        c.unassign()
        if pending:
            log.info("end offsets of %d partition(s) are lower bounds (the probe did not reach their end)",
                     len(pending))
    return {k: (marks[k][0], ends[k], marks[k][1]) for k in marks}


def end_offsets(bootstrap: str, topics: Iterable[str], timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The true end offset of every partition of ``topics`` (those that exist).

    Raises:
        RetriableError: the broker cannot be reached.
    """
    c = _consumer(bootstrap, f"snapsync-ends-{time.time_ns()}")
    try:
        tps = _partitions(c, topics, timeout)
        return {k: end for k, (_lo, end, _rep) in true_end_offsets(c, tps, timeout).items()} if tps else {}
    finally:
        c.close()


def group_lag(bootstrap: str, group: str, topics: Iterable[str], timeout: float = 10.0) -> list[PartitionLag]:
    """The lag of consumer ``group`` on every partition of ``topics`` (those that exist).

    Raises:
        RetriableError: the broker cannot be reached.
    """
    c = _consumer(bootstrap, group)
    try:
        tps = _partitions(c, topics, timeout)
        if not tps:
            return []
        try:
            committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=timeout)}
        except KafkaException as exc:
            raise RetriableError(f"cannot read the committed offsets of group {group} "
                                 f"({exc.args[0].name() if exc.args else 'no answer'})") from None
        ends = true_end_offsets(c, tps, timeout)
    finally:
        c.close()
    out = []
    for (t, p), (lo, end, reported) in sorted(ends.items()):
        done = committed.get((t, p))  # librdkafka says -1001 for "never committed"
        out.append(PartitionLag(t, p, end, done if done is not None and done >= 0 else None, reported, lo))
    return out


class LagMonitor(PeriodicMonitor):
    """Measures a group's lag every ``interval`` seconds on a daemon thread and exposes it as
    ``snapsync_consumer_lag_messages`` (with ``..._end_offset`` and ``..._committed_offset``),
    labelled by group, topic and partition. The measure runs beside the consumers it watches,
    on its own connection, so a stuck agent still shows its lag growing."""

    def __init__(self, bootstrap: str, group: str, topics: Iterable[str], interval: float = 5.0) -> None:
        super().__init__(_COLLECTOR, f"lag-{group}", interval)
        self.bootstrap = bootstrap
        self.group = group
        self.topics = list(topics)
        self.lags: list[PartitionLag] = []
        self.measured_at: float | None = None  # monotonic
        self.error: str | None = None

    def measure(self) -> None:
        try:
            self.lags = group_lag(self.bootstrap, self.group, self.topics)
            self.measured_at = time.monotonic()
            self.error = None
        except Exception as exc:  # noqa: BLE001 - reported by the check; the next round tries again
            self.error = str(exc) if isinstance(exc, RetriableError) else type(exc).__name__

    tick = measure

    def check(self) -> tuple[bool, str]:
        """Readiness: the lag could be measured recently."""
        if self.measured_at is None or time.monotonic() - self.measured_at > 3 * self.interval + 10:
            return False, f"consumer lag not measured recently ({self.error or 'not yet'})"
        return True, f"lag {sum(p.lag for p in self.lags)} message(s) over {len(self.lags)} partition(s)"


class _LagCollector:
    def __init__(self) -> None:
        self.monitors: set[LagMonitor] = set()

    def collect(self):
        lag = GaugeMetricFamily("snapsync_consumer_lag_messages",
                                "Messages of the partition the group has not committed yet (true end - committed).",
                                labels=["group", "topic", "partition"])
        end = GaugeMetricFamily("snapsync_consumer_end_offset",
                                "The partition's true end offset (checked by reading; Tansu's high watermark can lag).",
                                labels=["group", "topic", "partition"])
        committed = GaugeMetricFamily("snapsync_consumer_committed_offset", "The group's committed offset.",
                                      labels=["group", "topic", "partition"])
        age = GaugeMetricFamily("snapsync_consumer_lag_age_seconds", "Seconds since the lag was last measured.",
                                labels=["group"])
        for m in list(self.monitors):
            for p in m.lags:
                labels = [m.group, p.topic, str(p.partition)]
                lag.add_metric(labels, p.lag)
                end.add_metric(labels, p.end)
                committed.add_metric(labels, p.committed if p.committed is not None else 0)
            if m.measured_at is not None:
                age.add_metric([m.group], time.monotonic() - m.measured_at)
        yield from (lag, end, committed, age)

    def describe(self):
        return []


_COLLECTOR = _LagCollector()
REGISTRY.register(_COLLECTOR)
