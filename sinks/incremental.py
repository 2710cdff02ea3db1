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
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from schemas.catalog import DataSet, incremental_datasets
from schemas.config import Settings
from schemas.control import utcnow
from schemas.errors import RetriableError
from schemas.events import change_topic, heartbeat_topic, to_mysql_text
from snapsync.control import ensure_control_tables
from snapsync.db import connect

log = logging.getLogger("snapsync.export")


def _latest_heartbeat(settings: Settings) -> dict | None:
    topic = heartbeat_topic(settings.topic_prefix)
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"snapsync-watermark-{time.time_ns()}",
                  "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})  # Tansu answers a waiting fetch only when the wait ends
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
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
            for m in c.consume(100, 0.5):
                if m.error() or m.value() is None:
                    continue
                value = json.loads(m.value())
                if best is None or (value.get("watermark_us") or 0) > (best.get("watermark_us") or 0):
                    best = value
                if m.offset() + 1 >= want[m.partition()][1]:
                    done.add(m.partition())
        return best
    finally:
        c.close()


def _behind(conn, settings: Settings, heartbeat: dict) -> list[str]:
    """Partitions of the incremental topics the deltas agent has not staged up to the heartbeat."""
    topics = {change_topic(settings.topic_prefix, settings.db.database, d.table) for d in incremental_datasets()}
    cur = conn.cursor()
    cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
    done = {(t, p): o for t, p, o in cur.fetchall()}
    conn.commit()
    behind = []
    for topic, parts in (heartbeat.get("offsets") or {}).items():
        if topic not in topics:
            continue
        for p, end in parts.items():
            if done.get((topic, int(p)), 0) < int(end):
                behind.append(f"{topic}[{p}] at {done.get((topic, int(p)), 0)} of {end}")
    return behind


def wait_for_watermark(settings: Settings, cutoff: dt.datetime, timeout: float) -> dict:
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
            elif (hb.get("watermark_us") or 0) < cutoff_us:
                seen = dt.datetime.fromtimestamp(hb["watermark_us"] / 1e6, dt.timezone.utc)
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


def delivery_key(out: Path) -> str:
    return str(Path(out).resolve())[:255]


RETENTION = dt.timedelta(days=30)


def covered_order(heartbeat: dict) -> int:
    """The binlog order of the watermark heartbeat: every staged change before it is covered."""
    from streams.deltas import ORDER_FILE, ORDER_POS

    src = heartbeat.get("source") or {}
    suffix = str(src.get("file", "")).rsplit(".", 1)[-1]
    return (int(suffix) if suffix.isdigit() else 0) * ORDER_FILE + int(src.get("pos") or 0) * ORDER_POS


def delivered_customers(conn, key: str, cutoff: dt.datetime) -> dict[int, tuple[dt.datetime, int]]:
    """Customers this target received an incremental for, within the staging retention:
    ``{customer: (last cutoff, covered binlog order)}``."""
    cur = conn.cursor()
    cur.execute("SELECT customer_id, last_cutoff, covered_order FROM snapsync_incremental_state "
                "WHERE delivery_key = %s AND last_cutoff >= %s", (key, cutoff - RETENTION))
    return {r[0]: (r[1], int(r[2])) for r in cur.fetchall()}


def staged_changes(conn, state: dict[int, tuple[dt.datetime, int]], cutoff: dt.datetime) -> Changes:
    """Newest staged change per (customer, table, row) not yet delivered to this target."""
    changes = Changes()
    newest: dict[tuple, tuple] = {}
    cur = conn.cursor()
    for customer, (last_cutoff, covered) in sorted(state.items()):
        cur.execute("SELECT customer_id, table_name, pk, window_cutoff, op, image, src_order FROM snapsync_delta "
                    "WHERE customer_id = %s AND window_cutoff <= %s AND (window_cutoff > %s OR src_order > %s) "
                    "ORDER BY table_name, pk, src_order", (customer, cutoff, last_cutoff, covered))
        for row in cur.fetchall():
            newest[(row[1], row[0], row[2])] = row  # ordered by src_order: the last one wins
    conn.commit()
    for (table, _customer, pk), row in newest.items():
        if row[4] == "D":
            changes.deletes.setdefault(table, []).append(json.loads(pk))
        else:
            changes.upserts.setdefault(table, []).append(json.loads(row[5]))
    return changes


def mysql_texts(ds: DataSet, image: dict) -> dict[str, str | None]:
    return {c.name: to_mysql_text(image.get(c.name), c.type) for c in ds.columns}


def record_delivered(conn, key: str, customers: list[int], cutoff: dt.datetime, covered: int) -> None:
    """After the delivery is durable: what this target now has, per customer. Staging older
    than the retention goes (every target that old gets a full delivery anyway)."""
    cur = conn.cursor()
    now = utcnow()
    cur.executemany("REPLACE INTO snapsync_incremental_state (delivery_key, customer_id, last_cutoff, covered_order, "
                    "updated_at) VALUES (%s, %s, %s, %s, %s)", [(key, c, cutoff, covered, now) for c in customers])
    cur.execute("DELETE FROM snapsync_delta WHERE window_cutoff < %s", (cutoff - RETENTION,))
    conn.commit()
