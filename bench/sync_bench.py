"""Data Sync benchmark.

1. Latency: one sync-from customer, 200 sync-to customers (codes, override). A code is
   edited in the source; the time from that commit until the row is visible with the new
   value in all 200 targets, p50/p99 over ``EDITS`` edits (the real capture, broker, worker).
2. Initial copy: 10,000 procedure codes copied to 10 new targets by ``initial_copy``
   (set-based, with before-images for undo), beside a plain ``INSERT ... SELECT`` of the
   same rows to 10 other customers. Goal: within 2x.

Run: ``.venv/bin/python -m bench.sync_bench``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench.common import BENCH_HOME, percentile, report, stack_settings
from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_source
from snapsync.control import sync_groups
from snapsync.control.data_sync import initial_copy
from snapsync.local import stop_pid
from snapsync.schemas.catalog import dataset
from snapsync.seed import seed
from snapsync.streams.app import spawn_worker

TARGETS = int(os.environ.get("SNAPSYNC_BENCH_TARGETS", "200"))
EDITS = int(os.environ.get("SNAPSYNC_BENCH_EDITS", "40"))


def main() -> None:
    s = stack_settings("benchsync", topic_prefix=f"benchsync{int(time.time())}")  # fresh topics: no earlier run's backlog
    with connect(s.db) as conn:
        seed(conn, customers=TARGETS + 1, scale=0.002, seed_value=5, accounts=1)
    sync_groups.set_service(s, 1, True)
    g = sync_groups.add_group(s, 1, tuple(range(2, TARGETS + 2)), ("codes",), "override")

    # --- 1. latency ------------------------------------------------------------------------
    cap = Capture(s, connector="benchsync", heartbeat_interval=1.0, commit_interval=0.5)
    th = threading.Thread(target=lambda: cap.run(resnapshot=True, install_signals=False), daemon=True)
    th.start()
    log = Path(BENCH_HOME) / "sync-worker.log"
    worker = spawn_worker(s, log)
    latencies = []
    try:
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("SELECT code FROM cpt_code WHERE customer_id = 1 ORDER BY id LIMIT 1")
            code = cur.fetchone()[0]
            for k in range(EDITS + 3):
                value = f"latency {k}"
                t0 = time.perf_counter()
                cur.execute("UPDATE cpt_code SET description = %s WHERE customer_id = 1 AND code = %s", (value, code))
                while True:
                    cur.execute("SELECT COUNT(*) FROM cpt_code WHERE code = %s AND description = %s", (code, value))
                    if cur.fetchone()[0] == TARGETS + 1:
                        break
                    if time.perf_counter() - t0 > 60:
                        raise TimeoutError("the edit did not reach every target in 60 s")
                    time.sleep(0.005)
                if k >= 3:  # the first edits warm the agents up
                    latencies.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.2)
    finally:
        stop_pid(worker.pid, grace=15)
        cap.stop_event.set()
        th.join(30)
    sync_groups.delete_group(s, g.group_id)

    # --- 2. initial copy ---------------------------------------------------------------------
    ds = dataset("cpt_code")
    cols = ", ".join(f"`{c}`" for c in ds.sync_columns)
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        base = 1000
        cur.executemany("INSERT INTO customer (customer_id, account_id, name, created_at) VALUES (%s, 1, %s, NOW())",
                        [(base + i, f"bench {i}") for i in range(21)])
        cur.execute("INSERT INTO cpt_code (customer_id, code, description, default_charge, default_units, "
                    "situational_modifiers, revenue_code, active, created_at, updated_at) SELECT %s, "
                    "CONCAT('B', LPAD(seq, 5, '0')), CONCAT('bench code ', seq), seq / 100, 1, 'GT', '0450', 1, "
                    "NOW(6), NOW(6) FROM seq_1_to_10000", (base,))
    with connect_source(s) as conn:
        t0 = time.perf_counter()
        for t in range(base + 1, base + 11):
            initial_copy(conn, 0, base, t, [ds], "create-only")
        ours = time.perf_counter() - t0
    with connect(s.db) as conn:
        cur = conn.cursor()
        t0 = time.perf_counter()
        for t in range(base + 11, base + 21):
            cur.execute(f"INSERT INTO cpt_code (customer_id, {cols}) SELECT %s, {cols} FROM cpt_code "
                        "WHERE customer_id = %s", (t, base))
            conn.commit()
        plain = time.perf_counter() - t0
    report("sync", {
        "targets": TARGETS, "edits": len(latencies),
        "latency_commit_to_all_targets_ms": {"p50": round(percentile(latencies, 50), 1),
                                             "p99": round(percentile(latencies, 99), 1),
                                             "max": round(max(latencies), 1)},
        "initial_copy_10000_codes_to_10_targets_s": round(ours, 2),
        "insert_select_same_rows_s": round(plain, 2),
        "ratio_initial_copy_over_insert_select": round(ours / plain, 2),
    })


if __name__ == "__main__":
    main()
