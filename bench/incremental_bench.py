"""Incremental snapshots on the ~1M-row data set: 1% of the five incremental data sets
changed in the window.

1. Export time: the incremental package beside the full package (all data sets), and the
   five incremental data sets alone (changes) beside the same data sets in full. Goal: the
   changes cost at most 1/20 of the full data sets: cost follows the changes.
2. The deltas worker's sustained staging rate beside the broker's raw consume rate of the
   same topics (a confluent-kafka consumer reading them from the start).

Run: ``.venv/bin/python -m bench.incremental_bench``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.common import BENCH_HOME, CUSTOMERS, bench_settings, report
from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.mysql import connect
from snapsync.connectors.offsets import OffsetStore, StoredOffset
from snapsync.local import stop_pid
from snapsync.schemas.catalog import incremental_datasets
from snapsync.schemas.schedule import parse_instant
from snapsync.schemas.topics import change_topic
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.streams.app import spawn_worker

C1 = dt.datetime(2026, 3, 8, 5, 0)
C2 = dt.datetime(2026, 3, 9, 4, 0)
INCREMENTAL = tuple(d.table for d in incremental_datasets())


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    s = bench_settings(topic_prefix=f"benchinc{int(time.time())}", connector="benchinc")
    customers = list(range(1, CUSTOMERS + 1))
    out = Path(BENCH_HOME) / "incremental-out"
    shutil.rmtree(out, ignore_errors=True)  # a fresh folder: its first delivery is the full baseline
    with connect(s.db) as src, connect(s.state) as conn:
        cur = src.cursor()
        cur.execute("SHOW MASTER STATUS")
        f, p = cur.fetchone()[:2]
        OffsetStore(conn, "benchinc").save(StoredOffset(f, int(p), None, True))  # stream from here, no snapshot
    cap = Capture(s, connector="benchinc", heartbeat_interval=0.5, commit_interval=0.5)
    th = threading.Thread(target=lambda: cap.run(install_signals=False), daemon=True)
    th.start()
    log = Path(BENCH_HOME) / "incremental-worker.log"
    worker = spawn_worker(s, log)
    try:
        # The first delivery to a folder is full for its customers: the baseline (as of C1).
        first = timed(lambda: export_snapshot(s, ExportRequest(customers, "dat", "combined", kind="incremental",
                                                                cutoff=C1, keep=2), out))
        # 1% of the five data sets changed on 2026-03-08 (New York).
        changed = 0
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("SET TIMESTAMP = %s", (int(parse_instant("2026-03-08T12:00").timestamp()),))
            t0 = time.perf_counter()
            for table in INCREMENTAL:
                cur.execute(f"UPDATE `{table}` SET updated_at = updated_at + INTERVAL 1 MICROSECOND "
                            "WHERE id % 100 = 7")
                changed += cur.rowcount
            cur.execute("SET TIMESTAMP = DEFAULT")
        time.sleep(1.0)  # a heartbeat after the changes
        incremental = timed(lambda: export_snapshot(s, ExportRequest(
            customers, "dat", "combined", kind="incremental", cutoff=C2, keep=2, watermark_timeout=600), out))
        staged_by = time.perf_counter() - t0  # commit of the first change to the package delivered
        full = timed(lambda: export_snapshot(s, ExportRequest(customers, "dat", "combined"), out / "full"))
        # the five data sets alone: their changes, and the same data sets in full
        export_snapshot(s, ExportRequest(customers, "dat", "combined", kind="incremental", cutoff=C1, keep=2,
                                         only=INCREMENTAL), out / "changes-only")  # the baseline there
        changes_only = timed(lambda: export_snapshot(s, ExportRequest(
            customers, "dat", "combined", kind="incremental", cutoff=C2, keep=2, only=INCREMENTAL),
            out / "changes-only"))
        full_five = timed(lambda: export_snapshot(s, ExportRequest(customers, "dat", "combined", only=INCREMENTAL),
                                                  out / "full-five"))
        # The worker alone: a burst (10% of the five data sets) produced while it is stopped,
        # then staged by a fresh worker; timed from its "Ready" to the last offset staged.
        topics = [change_topic(s.topic_prefix, s.db.database, t) for t in INCREMENTAL]
        stop_pid(worker.pid, grace=15)
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            burst = 0
            for table in INCREMENTAL:
                cur.execute(f"UPDATE `{table}` SET updated_at = updated_at + INTERVAL 1 MICROSECOND "
                            "WHERE id % 10 = 3")
                burst += cur.rowcount
        while cap.stats.streamed_rows < changed + burst:  # capture has produced the burst
            time.sleep(0.1)
        cap._producer.flush(30)
        time.sleep(1.0)
        # The true ends: what the broker acknowledged to capture (Tansu's reported high
        # watermarks can lag what is readable: FIELD-NOTES).
        ends = {(t, p): o for t in topics for p, o in cap._end_offsets.get(t, {}).items()}
        with connect(s.state, autocommit=True) as conn:  # what was staged before the burst
            cur = conn.cursor()
            cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
            got = {(t, p): o for t, p, o in cur.fetchall()}
            base_progress = sum(min(got.get(k, 0), v) for k, v in ends.items())
        # The stage's own rate, sampled from its progress by a poller started before the
        # worker: from the first batch seen staged to the last (start-up and join excluded).
        samples: list[tuple[float, int]] = []
        finished = threading.Event()

        def poll():
            with connect(s.state, autocommit=True) as conn:
                cur = conn.cursor()
                while not finished.is_set():
                    cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
                    got = {(t, p): o for t, p, o in cur.fetchall()}
                    done = sum(min(got.get(k, 0), v) for k, v in ends.items())
                    samples.append((time.perf_counter(), done))
                    if all(got.get(k, 0) >= v for k, v in ends.items()):
                        finished.set()
                    time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        worker = spawn_worker(s, log)
        finished.wait(600)
        poller.join(5)
        start = next(i for i, (_t, d) in enumerate(samples) if d > base_progress)
        staged_between = samples[-1][1] - samples[start][1]
        staging = max(samples[-1][0] - samples[start][0], 1e-3)
        total = sum(ends.values())
        c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"raw-{time.time_ns()}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p), o in ends.items() if o])
        n, t0 = 0, time.perf_counter()
        while n < total:
            n += len(c.consume(10000, 1.0))
        raw = time.perf_counter() - t0
        c.close()
    finally:
        stop_pid(worker.pid, grace=15)
        cap.stop_event.set()
        th.join(30)
    report("incremental", {
        "rows_changed": changed, "customers": CUSTOMERS,
        "seconds": {"first_delivery_full": round(first, 2), "incremental_package": round(incremental, 2),
                    "full_package": round(full, 2), "five_data_sets_changes": round(changes_only, 2),
                    "five_data_sets_full": round(full_five, 2)},
        "ratio_incremental_package_over_full": round(incremental / full, 3),
        "ratio_changes_over_full_for_the_five_data_sets": round(changes_only / full_five, 3),
        "commit_to_incremental_package_delivered_s": round(staged_by, 2),
        "worker": {"burst_events": burst, "measured_events": staged_between, "measured_s": round(staging, 2),
                   "staged_events_per_s": round(staged_between / staging),
                   "raw_consume_events": total, "raw_consume_events_per_s": round(total / raw),
                   "ratio_staged_over_raw": round((staged_between / staging) / (total / raw), 3)},
    })


if __name__ == "__main__":
    main()
