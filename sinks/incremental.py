"""Incremental packages: the watermark check, the staged deltas of a window, and what each
delivery target has received.

* **Watermark**: the package for cutoff C is built only when capture has published a
  heartbeat whose watermark is at or after C (every change committed up to C has been
  produced) and the deltas agent has staged every change-topic partition up to the end
  offsets that heartbeat lists. Until then it waits (bounded) and says why; it never
  delivers early.
* **Deltas**: for each selected customer that received an incremental before, the newest
  staged image (or delete) of each changed row in the windows after its last cutoff up to
  C (missed nights included), plus any staged change later in the binlog than what its last
  delivery covered (a late event: a long transaction's change dated before a cutoff that
  was already delivered).
* **State** (``snapsync_incremental_state``): per delivery target (its folder) and customer,
  the last cutoff delivered and the binlog order its watermark covered. Staging is shared by
  every target and kept ``RETENTION``; a customer without state, or whose last delivery is
  older than that, gets its incremental data sets in full (the first delivery, or the first
  after joining a combined selection).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from snapsync.connectors.mysql import connect
from snapsync.control.tables import ensure_control_tables
from snapsync.schemas.catalog import dataset, incremental_datasets
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow
from snapsync.schemas.errors import DataError, RetriableError
from snapsync.schemas.messages import Heartbeat
from snapsync.schemas.topics import change_topic, heartbeat_topic
from snapsync.schemas.validation import check_image

log = logging.getLogger("snapsync.export")


def _latest_heartbeat(settings: Settings) -> Heartbeat | None:
    topic = heartbeat_topic(settings.topic_prefix)
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"snapsync-watermark-{time.time_ns()}",
                  "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})  # Tansu answers a waiting fetch only when the wait ends
    try:
        try:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            raise RetriableError(f"cannot reach the Kafka broker at {settings.kafka_bootstrap} "
                                 f"({exc.args[0].name() if exc.args else 'no answer'}): is it running? "
                                 "The incremental package needs the capture heartbeats it holds") from None
        if md is None or md.error is not None:
            return None
        best, want = None, {}
        for p in md.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                want[p] = (max(lo, hi - 5), hi)
        if not want:
            return None
        c.assign([TopicPartition(topic, p, start) for p, (start, _hi) in want.items()])
        done: set[int] = set()
        deadline = time.monotonic() + 10
        while len(done) < len(want) and time.monotonic() < deadline:
            for m in c.consume(100, 0.05):  # the messages are there: do not wait for a hundred
                if m.error() or m.value() is None:
                    continue
                try:
                    value = Heartbeat.model_validate_json(m.value())
                except ValueError:
                    continue  # not a heartbeat this pipeline can read: never a watermark
                if best is None or (value.watermark_us or 0) > (best.watermark_us or 0):
                    best = value
                if m.offset() + 1 >= want[m.partition()][1]:
                    done.add(m.partition())
        return best
    finally:
        c.close()


def _behind(conn, settings: Settings, heartbeat: Heartbeat) -> list[str]:
    """Partitions of the incremental topics the deltas agent has not staged up to the heartbeat."""
    topics = {change_topic(settings.topic_prefix, settings.db.database, d.table) for d in incremental_datasets()}
    cur = conn.cursor()
    cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
    done = {(t, p): o for t, p, o in cur.fetchall()}
    conn.commit()
    behind = []
    for topic, parts in (heartbeat.offsets or {}).items():
        if topic not in topics:
            continue
        for p, end in parts.items():
            if done.get((topic, int(p)), 0) < int(end):
                behind.append(f"{topic}[{p}] at {done.get((topic, int(p)), 0)} of {end}")
    return behind


def wait_for_watermark(settings: Settings, cutoff: dt.datetime, timeout: float) -> Heartbeat:
    """Block until the pipeline has processed every change committed up to ``cutoff`` (UTC).

    Raises:
        RetriableError: still not there after ``timeout`` seconds, saying what lags.
    """
    cutoff_us = int(cutoff.replace(tzinfo=dt.timezone.utc).timestamp() * 1_000_000)
    deadline = time.monotonic() + timeout
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        while True:
            hb = _latest_heartbeat(settings)
            if hb is None:
                reason = "no capture heartbeat yet (is `snapsync capture` running?)"
            elif (hb.watermark_us or 0) < cutoff_us:
                seen = dt.datetime.fromtimestamp((hb.watermark_us or 0) / 1e6, dt.timezone.utc)
                reason = f"capture has read changes up to {seen:%Y-%m-%d %H:%M:%S} UTC only"
            else:
                behind = _behind(conn, settings, hb)
                if not behind:
                    return hb
                reason = f"the deltas worker is behind: {', '.join(behind[:3])} (is `snapsync worker` running?)"
            if time.monotonic() >= deadline:
                raise RetriableError(f"incremental package for cutoff {cutoff:%Y-%m-%d %H:%M} UTC not built: "
                                     f"{reason}. It is never delivered early; try again once the pipeline caught up.")
            log.info("waiting for the watermark of %s: %s", cutoff, reason)
            time.sleep(1.0)


@dataclass
class Changes:
    """The changes one package carries for its existing customers."""

    upserts: dict[str, list[dict]] = field(default_factory=dict)  # table -> images
    deletes: dict[str, list[dict]] = field(default_factory=dict)  # table -> primary keys
    quarantined: dict[str, int] = field(default_factory=dict)  # table -> staged rows set aside


def delivery_key(out: Path) -> str:
    return str(Path(out).resolve())[:255]


RETENTION = dt.timedelta(days=30)


def covered_order(heartbeat: Heartbeat) -> int:
    """The binlog order of the watermark heartbeat: every staged change before it is covered."""
    position = heartbeat.position()
    return 0 if position is None else position.order()


def delivered_customers(conn, key: str, cutoff: dt.datetime) -> dict[int, tuple[dt.datetime, int]]:
    """Customers this target received an incremental for, within the staging retention:
    ``{customer: (last cutoff, covered binlog order)}``."""
    cur = conn.cursor()
    cur.execute("SELECT customer_id, last_cutoff, covered_order FROM snapsync_incremental_state "
                "WHERE delivery_key = %s AND last_cutoff >= %s", (key, cutoff - RETENTION))
    return {r[0]: (r[1], int(r[2])) for r in cur.fetchall()}


def staged_changes(conn, state: dict[int, tuple[dt.datetime, int]], cutoff: dt.datetime,
                   members: list[int] | None = None) -> Changes:
    """The newest staged change per (table, row) for one package, not yet delivered to this
    target.

    Args:
        state: the package's customers that received an incremental before, with their last
            cutoff and covered binlog order.
        members: every customer of the package. A row that moved between two of them has a
            delete for the one it left and an upsert for the other at the same binlog order:
            the upsert wins. A delete is dropped when the row belongs to a member now (it
            came back, or its new owner gets its rows in full).
    """
    changes = Changes()
    newest: dict[tuple, tuple] = {}
    cur = conn.cursor()
    by_state: dict[tuple, list[int]] = {}  # customers delivered together share one query
    for customer, (last_cutoff, covered) in sorted(state.items()):
        by_state.setdefault((last_cutoff, covered), []).append(customer)
    for (last_cutoff, covered), customers in by_state.items():
        cur.execute("SELECT customer_id, table_name, pk, window_cutoff, op, image, src_order FROM snapsync_delta "
                    f"WHERE customer_id IN ({','.join(['%s'] * len(customers))}) AND window_cutoff <= %s "
                    "AND (window_cutoff > %s OR src_order > %s) ORDER BY table_name, pk, src_order",
                    (*customers, cutoff, last_cutoff, covered))
        for row in cur.fetchall():
            key = (row[1], row[2])
            if key not in newest or (int(row[6]), row[4] == "U") >= (int(newest[key][6]), newest[key][4] == "U"):
                newest[key] = row
    deletes: dict[str, list[dict]] = {}
    for (table, pk), row in newest.items():
        if row[4] == "D":
            deletes.setdefault(table, []).append(orjson.loads(pk))
            continue
        try:
            image = orjson.loads(row[5])
            check_image(dataset(table), image)
        except (ValueError, DataError) as exc:  # a staged row that does not fit: out of the way
            _quarantine(cur, row, exc)
            changes.quarantined[table] = changes.quarantined.get(table, 0) + 1
            continue
        changes.upserts.setdefault(table, []).append(image)
    for table, keys in deletes.items():
        changes.deletes[table] = _not_owned(cur, table, keys, members or list(state))
    conn.commit()
    return changes


def _quarantine(cur, row: tuple, exc: BaseException) -> None:
    """Move one staged row to ``snapsync_delta_quarantine`` with the reason (no values)."""
    customer, table, pk, window, op, image, order = row
    reason = str(exc) if isinstance(exc, DataError) else f"the staged image is not JSON ({type(exc).__name__})"
    cur.execute("INSERT INTO snapsync_delta_quarantine (customer_id, table_name, pk, window_cutoff, op, image, "
                "src_order, reason, quarantined_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (customer, table, pk, window, op, image, order, reason[:500], utcnow()))
    cur.execute("DELETE FROM snapsync_delta WHERE customer_id = %s AND table_name = %s AND pk = %s "
                "AND window_cutoff = %s AND src_order = %s", (customer, table, pk, window, order))
    log.warning("staged change of %s %s quarantined: %s", table, pk, reason)  # pk: ids only


def _not_owned(cur, table: str, keys: list[dict], members: list[int]) -> list[dict]:
    """The deleted keys whose row does not belong to one of ``members`` now."""
    pk = dataset(table).primary_key
    if len(pk) != 1 or not keys or not members:
        return keys
    col = pk[0]
    owned: set = set()
    for start in range(0, len(keys), 1000):
        chunk = [k[col] for k in keys[start:start + 1000]]
        cur.execute(f"SELECT `{col}` FROM `{table}` WHERE `{col}` IN ({','.join(['%s'] * len(chunk))}) "
                    f"AND customer_id IN ({','.join(['%s'] * len(members))})", (*chunk, *members))
        owned.update(r[0] for r in cur.fetchall())
    return [k for k in keys if k[col] not in owned]


def record_delivered(conn, key: str, customers: list[int], cutoff: dt.datetime, covered: int) -> None:
    """After the delivery is durable: what this target now has, per customer. Staging older
    than the retention goes (every target that old gets a full delivery anyway)."""
    cur = conn.cursor()
    now = utcnow()
    cur.executemany("REPLACE INTO snapsync_incremental_state (delivery_key, customer_id, last_cutoff, covered_order, "
                    "updated_at) VALUES (%s, %s, %s, %s, %s)", [(key, c, cutoff, covered, now) for c in customers])
    cur.execute("DELETE FROM snapsync_delta WHERE window_cutoff < %s", (cutoff - RETENTION,))
    conn.commit()
