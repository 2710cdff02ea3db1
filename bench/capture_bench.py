"""Capture throughput and lag beside the raw binlog read rate (mysql-replication alone).

1. Backlog: N row updates are committed while capture is stopped; then (a) a bare
   ``BinLogStreamReader`` reads them (the reference), (b) ``Capture`` streams them from the
   same position into the broker until every event is acknowledged. Rows/s of each and
   the ratio.
2. Lag under sustained load: a writer commits batches at a fixed rate while capture runs;
   heartbeat rows (written every 0.1 s with the server's microsecond clock) measure commit
   to broker acknowledgement, p50/p99.

Run: ``.venv/bin/python -m bench.capture_bench`` (or ``make bench``).
"""

from __future__ import annotations

import threading
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from bench.common import bench_settings, percentile, report
from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.mysql import connect
from snapsync.connectors.offsets import OffsetStore, StoredOffset
from snapsync.schemas.catalog import DATASETS

ROWS = 200_000
BATCH = 1000


def master(conn) -> tuple[str, int]:
    cur = conn.cursor()
    cur.execute("SHOW MASTER STATUS")
    f, p = cur.fetchone()[:2]
    return f, int(p)


def make_backlog(s) -> tuple[tuple[str, int], tuple[str, int], int]:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT MIN(id), MAX(id) FROM charge")
        lo, hi = cur.fetchone()
        start = master(conn)
        n = 0
        for a in range(lo, hi + 1, BATCH):
            cur.execute("UPDATE charge SET units = units + 0.001 WHERE id BETWEEN %s AND %s", (a, a + BATCH - 1))
            n += cur.rowcount
            if n >= ROWS:
                break
        return start, master(conn), n


def raw_read(s, start, end) -> tuple[int, float]:
    db = s.db
    reader = BinLogStreamReader(
        connection_settings={"host": db.host, "port": db.port, "user": db.user, "password": db.password},
        server_id=777001, log_file=start[0], log_pos=start[1], resume_stream=True, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[db.database],
        only_tables=[d.table for d in DATASETS], enable_logging=False)
    t = time.perf_counter()
    rows = 0
    for ev in reader:
        rows += len(ev.rows)
        if (reader.log_file, reader.log_pos) >= end:
            break
    elapsed = time.perf_counter() - t
    reader.close()
    return rows, elapsed


def capture_backlog(s, start, end, expected: int) -> tuple[int, float]:
    cap = Capture(s, connector="bench-backlog", heartbeat_interval=0, commit_interval=1.0)
    with connect(s.db) as ctl:
        OffsetStore(ctl, "bench-backlog").save(StoredOffset(start[0], start[1], None, True))
    # Start from the stored position (no snapshot): stop once everything is acknowledged.
    t = time.perf_counter()
    th = threading.Thread(target=lambda: cap.run(install_signals=False), daemon=True)
    th.start()
    while cap.stats.streamed_rows < expected and th.is_alive():
        time.sleep(0.01)
    cap._producer.flush(60)
    elapsed = time.perf_counter() - t
    cap.stop_event.set()
    th.join(30)
    return cap.stats.streamed_rows, elapsed


def sustained(s, rate: int, seconds: float) -> dict:
    cap = Capture(s, connector="bench-live", heartbeat_interval=0.1, commit_interval=0.5, measure_lag=True)
    with connect(s.db) as ctl:
        pos = master(ctl)
        OffsetStore(ctl, "bench-live").save(StoredOffset(pos[0], pos[1], None, True))
    th = threading.Thread(target=lambda: cap.run(install_signals=False), daemon=True)
    th.start()
    time.sleep(1.0)
    per_batch = 100
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT MIN(id) FROM patient")
        lo = cur.fetchone()[0]
        t0 = time.perf_counter()
        sent = 0
        i = 0
        while time.perf_counter() - t0 < seconds:
            a = lo + (i * per_batch) % 40000
            cur.execute("UPDATE patient SET updated_at = NOW(6) WHERE id BETWEEN %s AND %s", (a, a + per_batch - 1))
            sent += cur.rowcount
            i += 1
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
        wrote = time.perf_counter() - t0
    time.sleep(2.0)
    cap.stop_event.set()
    th.join(30)
    lag = cap.stats.lag_ms[5:]  # skip the warm-up
    return {"target_rows_per_s": rate, "achieved_rows_per_s": round(sent / wrote), "rows": sent,
            "captured_rows": cap.stats.streamed_rows, "lag_p50_ms": round(percentile(lag, 50), 1),
            "lag_p99_ms": round(percentile(lag, 99), 1), "lag_samples": len(lag)}


def main() -> None:
    s = bench_settings(topic_prefix="benchcap")
    start, end, n = make_backlog(s)
    raw_rows, raw_s = raw_read(s, start, end)
    cap_rows, cap_s = capture_backlog(s, start, end, n)
    live = sustained(s, rate=int(raw_rows / raw_s / 2), seconds=15)
    report("capture", {
        "row_changes": n,
        "raw_binlog_read": {"rows": raw_rows, "seconds": round(raw_s, 2), "rows_per_s": round(raw_rows / raw_s)},
        "capture_to_broker_ack": {"rows": cap_rows, "seconds": round(cap_s, 2), "rows_per_s": round(cap_rows / cap_s)},
        "ratio_capture_over_raw": round((cap_rows / cap_s) / (raw_rows / raw_s), 2),
        "sustained": live,
    })


if __name__ == "__main__":
    main()
