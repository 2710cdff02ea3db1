"""The nightly round over export workers: 200 small accounts (one customer each, ~145 rows in
32 data sets), delivered by 1, 2 and 4 ``snapsync export-worker`` processes, each count in
the same run, beside the reference: the single-process ``snapshot scheduler`` exporting every
account in turn in one process (no broker on the path).

For each run: a fresh New York day (so every slot is due and unclaimed), the workers started
and settled in their group (every partition of the jobs topic assigned), then one scheduler
round publishes the 200 jobs; the time is from the publish to the 200th recorded delivery.
Printed: deliveries per minute, and the speed-up against one worker.

Run: ``.venv/bin/python -m bench.round_bench``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BENCH_HOME, report, stack_settings
from snapsync.connectors.kafka import producer
from snapsync.connectors.metrics import scrape
from snapsync.connectors.mysql import connect
from snapsync.control import snapshot_settings
from snapsync.local import free_port, stop_pid
from snapsync.schemas.schedule import local_to_utc
from snapsync.seed import seed
from snapsync.sinks.scheduler import JOB_PARTITIONS, run_round

ACCOUNTS = int(os.environ.get("SNAPSYNC_BENCH_ACCOUNTS", "200"))
WORKERS = (1, 2, 4)
BIN = str(Path(sys.executable).with_name("snapsync"))


def _get(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def _partitions(port: int) -> float:
    try:
        return scrape(_get(port, "/metrics")).get(("snapsync_export_worker_partitions", ()), 0.0)
    except OSError:
        return 0.0


def _cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _busy(before: tuple[float, float]) -> float:
    after = _cpu()
    return round(100 * (after[0] - before[0]) / max(1.0, after[1] - before[1]), 1)


def _delivered(s, day: dt.date) -> int:
    with connect(s.state, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM snapsync_export_claim WHERE slot_date=%s AND state='delivered'", (day,))
        return cur.fetchone()[0]


def _settle(ports: list[int], procs) -> None:
    """Until every partition is assigned, and stays so for 3 s (no rebalance under way)."""
    stable_since = None
    while True:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"an export worker exited ({p.returncode}); see {BENCH_HOME}/round-workers.log")
        if sum(_partitions(port) for port in ports) == JOB_PARTITIONS:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 3:
                return
        else:
            stable_since = None
        time.sleep(0.2)


def run_workers(s, n: int, day: dt.date) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env.update(SNAPSYNC_DATABASE_URL=s.database_url.get_secret_value(), SNAPSYNC_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
               SNAPSYNC_TOPIC_PREFIX=s.topic_prefix, SNAPSYNC_HOME=str(s.home))
    log = open(Path(BENCH_HOME) / "round-workers.log", "ab")
    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([BIN, "export-worker", "--metrics-port", str(p)], env=env, stdout=log,
                              stderr=subprocess.STDOUT) for p in ports]
    try:
        _settle(ports, procs)
        started, cpu = time.monotonic(), _cpu()
        run_round(s, local_to_utc(day, dt.time(2)), producer=producer(s.kafka_bootstrap), publish=True)
        while _delivered(s, day) < ACCOUNTS:
            time.sleep(0.1)
        return time.monotonic() - started, _busy(cpu)
    finally:
        for p in procs:
            stop_pid(p.pid, grace=15)


def main() -> None:
    s = stack_settings("benchround", topic_prefix=f"benchround{int(time.time())}")  # fresh topics: no earlier run's jobs
    with connect(s.db) as conn:
        seed(conn, customers=ACCOUNTS, scale=0.002, seed_value=3, accounts=ACCOUNTS)
        cur = conn.cursor()
        cur.execute("SELECT account_id, customer_id FROM customer ORDER BY account_id")
        owned = cur.fetchall()
        conn.commit()
    with connect(s.state, autocommit=True) as conn:
        conn.cursor().execute("DELETE FROM snapsync_export_claim")
    for account, customer in owned:
        snapshot_settings.configure(s, account, who="bench", enabled=True, customers=(customer,), format="dat",
                                    kind="full", packaging="per-customer")
    base = dt.date(2026, 1, 5)
    results: dict = {"accounts": ACCOUNTS, "rows_per_account": None, "cores": os.cpu_count(), "runs": []}
    # CPU busy: the whole machine's (the database server, the broker and the workers share it).
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM patient WHERE customer_id = 1")
        results["patients_per_account"] = cur.fetchone()[0]

    # the reference: one process, every account in turn (snapshot scheduler without --jobs)
    day = base
    started, cpu = time.monotonic(), _cpu()
    run_round(s, local_to_utc(day, dt.time(2)))
    ref, ref_busy = time.monotonic() - started, _busy(cpu)
    assert _delivered(s, day) == ACCOUNTS
    with connect(s.state) as conn:
        cur = conn.cursor()
        cur.execute("SELECT AVG(rows_total), AVG(bytes) FROM snapsync_delivery WHERE slot_date=%s", (day,))
        rows, size = cur.fetchone()
        conn.commit()
    results["rows_per_account"], results["bytes_per_account"] = int(rows), int(size)
    results["runs"].append({"path": "snapshot scheduler (one process, no broker)", "workers": 1,
                            "seconds": round(ref, 2), "deliveries_per_minute": round(ACCOUNTS / ref * 60, 1),
                            "machine_cpu_busy_percent": ref_busy})
    one = None
    for i, n in enumerate(WORKERS, start=1):
        day = base + dt.timedelta(days=i)
        secs, busy = run_workers(s, n, day)
        one = one or secs
        results["runs"].append({"path": "export-worker processes", "workers": n, "seconds": round(secs, 2),
                                "deliveries_per_minute": round(ACCOUNTS / secs * 60, 1),
                                "speedup_vs_one_worker": round(one / secs, 2), "machine_cpu_busy_percent": busy})
    print(f"\n{ACCOUNTS} accounts of ~{results['rows_per_account']} rows ({results['bytes_per_account']:,} bytes) "
          f"each, {results['cores']} cores")
    print(f"{'path':46} {'workers':>7} {'seconds':>8} {'per min':>8} {'speed-up':>8} {'CPU busy':>8}")
    for r in results["runs"]:
        print(f"{r['path']:46} {r['workers']:>7} {r['seconds']:>8.1f} {r['deliveries_per_minute']:>8.0f} "
              f"{r.get('speedup_vs_one_worker', ''):>8} {r['machine_cpu_busy_percent']:>7}%")
    report("round_bench", results)


if __name__ == "__main__":
    main()
