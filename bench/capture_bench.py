"""Capture throughput: the embedded capture beside real Debezium through Kafka Connect, on the
same binlog, and both beside the raw binlog read rate (mysql-replication alone).

Method (docs/benchmarks.md, "Capture: embedded vs Debezium through Connect"):

1. A private Kafka Connect 3.9 worker with Debezium 3.0.7's ``MySqlConnector`` is started on
   the bench stack's broker; the connector is deployed with ``snapshot.mode=no_data`` (schema
   only: the snapshot is not what is timed) and is streaming once a probe row's event is on
   its topic. Then it is paused (``PUT /connectors/{name}/pause``).
2. ``ROWS`` row changes are committed (UPDATEs of ``charge``, 1,000 rows per transaction);
   the binlog position before them is kept.
3. Reference: a bare ``BinLogStreamReader`` reads those rows (what limits the embedded path).
4. Debezium: ``PUT /connectors/{name}/resume``; a consumer counts the events arriving on the
   change topic until all are there. CPU seconds of the Java worker from /proc (utime+stime).
5. Embedded: ``snapsync capture --connector X`` is started as a process with its stored
   position set to the position before the writes (so it reads exactly the same binlog span,
   from a cold start); the same count, and the process's CPU seconds.
   Debezium runs first and has stopped producing before the embedded capture starts: the two
   never compete for the cores.
6. Sustained load (embedded only): commit to broker acknowledgement of heartbeat rows while a
   writer commits batches at half the raw rate.

Both paths are timed twice: end to end (from resume / process start to the last event on the
broker) and steady (between the 10% and the 90% event: leaves out start-up, and the events a
paused Debezium had already read into its queue). The headline ratio is embedded / Debezium.

Run: ``.venv/bin/python -m bench.capture_bench`` (or ``make bench``). ``SNAPSYNC_BENCH_CAPTURE_ROWS``
changes the number of row changes (default 100,000); ``SNAPSYNC_BENCH_DECODER=native`` runs the
embedded capture with ``--decoder native`` (figures in ``bench/results/capture-native.json``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from confluent_kafka import Consumer, TopicPartition
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from bench.common import BENCH_HOME, bench_settings, percentile, report
from snapsync.connect_worker import ConnectWorker
from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.debezium import render
from snapsync.connectors.kafka import ensure_topics
from snapsync.connectors.mysql import connect
from snapsync.connectors.offsets import OffsetStore, StoredOffset
from snapsync.local import LocalStack, free_port, stop_pid
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import Settings, load_settings, settings_env
from snapsync.schemas.topics import change_topic

ROWS = int(os.environ.get("SNAPSYNC_BENCH_CAPTURE_ROWS", "100000"))
#: The embedded capture's binlog decoder (``--decoder``): python or native.
DECODER = os.environ.get("SNAPSYNC_BENCH_DECODER", "python")
BATCH = 1000
PARTITIONS = 3
#: The bench gives up on a path when no event arrived for this long (a guard, not a measure).
STALL_S = 120.0
TICK = os.sysconf("SC_CLK_TCK")


def master(conn) -> tuple[str, int]:
    cur = conn.cursor()
    cur.execute("SHOW MASTER STATUS")
    f, p = cur.fetchone()[:2]
    return f, int(p)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def make_backlog(s: Settings, rows: int) -> tuple[tuple[str, int], tuple[str, int], int]:
    """``rows`` UPDATEs of charge, ``BATCH`` per transaction; (start, end, rows changed)."""
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT MIN(id), MAX(id) FROM charge")
        lo, hi = cur.fetchone()
        if hi - lo + 1 < rows + 1:
            raise SystemExit(f"charge has {hi - lo + 1} rows; the bench needs {rows + 1} (raise SNAPSYNC_BENCH_SCALE)")
        start = master(conn)
        n = 0
        for a in range(lo, lo + rows, BATCH):
            cur.execute("UPDATE charge SET units = units + 0.001 WHERE id BETWEEN %s AND %s",
                        (a, min(a + BATCH, lo + rows) - 1))
            n += cur.rowcount
        return start, master(conn), n


def raw_read(s: Settings, start, end) -> tuple[int, float]:
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


@dataclass
class Arrivals:
    """When the events of one change topic arrive at a consumer (perf_counter seconds)."""

    topic: str
    bootstrap: str
    count: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"bench-count-{os.getpid()}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 20,
                                  "fetch.min.bytes": 1, "log_level": 3})
        # The topic was created beforehand (ensure_topics): read it from its start.
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(PARTITIONS)])

    def drain(self, seconds: float) -> int:
        """Read whatever arrives during ``seconds``; returns how many."""
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got += sum(1 for m in self.consumer.consume(10_000, 0.05) if m.error() is None)
        return got

    def wait_for(self, expected: int, t0: float, on_event=None) -> None:
        """Count events until ``expected`` arrived; mark first, 10%, 90% and last."""
        self.count = 0
        self.marks = {"start": t0}
        last_progress = time.monotonic()
        thresholds = [("first", 1), ("p10", max(1, expected // 10)), ("p90", max(1, expected * 9 // 10)),
                      ("last", expected)]
        while self.count < expected:
            msgs = self.consumer.consume(10_000, 0.02)
            now = time.perf_counter()
            n = sum(1 for m in msgs if m.error() is None and m.value() is not None)
            if n:
                self.count += n
                last_progress = time.monotonic()
                for name, at in thresholds:
                    if name not in self.marks and self.count >= at:
                        self.marks[name] = now
                        if on_event is not None:
                            on_event(name)
            elif time.monotonic() - last_progress > STALL_S:
                raise RuntimeError(f"{self.topic}: {self.count} of {expected} events, none for {STALL_S:.0f}s")

    def close(self) -> None:
        self.consumer.close()

    def result(self, expected: int, cpu: float, extra: dict | None = None) -> dict:
        m = self.marks
        end_to_end = m["last"] - m["start"]
        steady = m["p90"] - m["p10"]
        steady_rows = expected * 9 // 10 - max(1, expected // 10)
        return {"events": self.count, "seconds_end_to_end": round(end_to_end, 2),
                "rows_per_s": round(expected / end_to_end),
                "seconds_to_first_event": round(m["first"] - m["start"], 2),
                "steady_rows_per_s": round(steady_rows / steady) if steady > 0 else None,
                "cpu_s": round(cpu, 2), "cpu_ms_per_1000_rows": round(cpu / expected * 1e6, 1), **(extra or {})}


def rest(method: str, url: str, body=None) -> dict | None:
    for _ in range(40):  # 409: the worker is rebalancing
        r = requests.request(method, url, json=body, timeout=30)
        if r.status_code != 409:
            break
        time.sleep(0.5)
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {url}: HTTP {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def wait_state(url: str, name: str, state: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    st: dict = {}
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/connectors/{name}/status", timeout=10)
        if r.status_code == 200:
            st = r.json()
            states = [st["connector"]["state"], *(t["state"] for t in st.get("tasks", []))]
            if any(s == "FAILED" for s in states):
                raise RuntimeError(f"connector {name} failed: {st}")
            if len(states) > 1 and all(s == state for s in states):
                return
        time.sleep(0.25)
    raise RuntimeError(f"connector {name} not {state} after {timeout:.0f}s: {st}")


def stack_pids() -> tuple[int, int]:
    st = LocalStack(BENCH_HOME).state()
    return (st.db_pid, st.kafka_pid) if st else (0, 0)


def others_cpu() -> dict[str, float]:
    db_pid, kafka_pid = stack_pids()
    return {"mariadb": cpu_seconds(db_pid) if db_pid else 0.0, "broker": cpu_seconds(kafka_pid) if kafka_pid else 0.0}


def side_cpu(before: dict[str, float]) -> dict:
    after = others_cpu()
    return {f"{k}_cpu_s": round(after[k] - before[k], 2) for k in before}


def compare(base: Settings, run: str) -> dict:
    """Steps 1-5 of the module docstring."""
    same = {"state_url": base.state_url.get_secret_value() if base.state_url else None,
            "signal_schema": base.signal_schema}
    s_dbz = load_settings(None, database_url=base.database_url.get_secret_value(),
                          kafka_bootstrap=base.kafka_bootstrap, home=str(base.home), topic_prefix=f"bdbz{run}", **same)
    s_emb = load_settings(None, database_url=base.database_url.get_secret_value(),
                          kafka_bootstrap=base.kafka_bootstrap, home=str(base.home), topic_prefix=f"bemb{run}", **same)
    db = base.db.database
    dbz_topic, emb_topic = change_topic(s_dbz.topic_prefix, db, "charge"), change_topic(s_emb.topic_prefix, db, "charge")
    ensure_topics(base.kafka_bootstrap, [dbz_topic, emb_topic], PARTITIONS)
    with connect(base.db) as ctl:  # the heartbeat and signal tables are the migration's (bench_settings)
        cur = ctl.cursor()
        cur.execute("SELECT MAX(id) FROM charge")
        probe_id = cur.fetchone()[0]

    worker = ConnectWorker(Path(BENCH_HOME) / f"connect-{run}", free_port(), base.kafka_bootstrap,
                           name=f"bench-connect-{run}")
    name = f"bench-dbz-{run}"
    dbz_count = Arrivals(dbz_topic, base.kafka_bootstrap)
    emb_count = Arrivals(emb_topic, base.kafka_bootstrap)
    capture = None
    try:
        t = time.monotonic()
        worker.start()
        print(f"Kafka Connect worker ready in {time.monotonic() - t:.1f}s (pid {worker.pid})", file=sys.stderr)
        connector = render(s_dbz, name=name, server_id=180000 + int(run) % 10000, snapshot_mode="no_data",
                           partitions=PARTITIONS)
        rest("PUT", f"{worker.url}/connectors/{name}/config", connector["config"])
        wait_state(worker.url, name, "RUNNING")
        # Streaming once a probe row's event is on the topic (a probe committed before the
        # schema snapshot's position is never streamed: write one every 2 s).
        t = time.monotonic()
        with connect(base.db, autocommit=True) as conn:
            seen = 0
            while not seen:
                if time.monotonic() - t > STALL_S:
                    raise RuntimeError(f"Debezium streamed nothing for {STALL_S:.0f}s; see {worker.log_path}")
                conn.cursor().execute("UPDATE charge SET units = units + 0.001 WHERE id = %s", (probe_id,))
                seen = dbz_count.drain(2.0)
        print(f"Debezium streaming {time.monotonic() - t:.1f}s after RUNNING", file=sys.stderr)
        rest("PUT", f"{worker.url}/connectors/{name}/pause")
        wait_state(worker.url, name, "PAUSED")
        dbz_count.drain(1.0)  # late probes

        java_paused = cpu_seconds(worker.pid)
        t = time.perf_counter()
        start, end, n = make_backlog(base, ROWS)
        write_s = time.perf_counter() - t
        print(f"{n:,} row changes committed in {write_s:.1f}s ({start[0]}:{start[1]} to {end[0]}:{end[1]})",
              file=sys.stderr)
        raw_rows, raw_s = raw_read(base, start, end)
        leaked = dbz_count.drain(1.0)
        if leaked:
            raise RuntimeError(f"{leaked} events arrived while the connector was paused")
        java_before = cpu_seconds(worker.pid)
        before = others_cpu()

        # -- Debezium through Connect: resume, count --------------------------------------------
        t0 = time.perf_counter()
        rest("PUT", f"{worker.url}/connectors/{name}/resume")
        dbz_count.wait_for(n, t0)
        java_after = cpu_seconds(worker.pid)
        dbz = dbz_count.result(n, java_after - java_before, {
            "java_cpu_s_while_paused_and_writing": round(java_before - java_paused, 2), **side_cpu(before)})
        print(f"Debezium: {dbz['rows_per_s']:,} rows/s, {dbz['cpu_s']} CPU s", file=sys.stderr)
        rest("PUT", f"{worker.url}/connectors/{name}/pause")
        time.sleep(1.0)

        # -- embedded capture: a process from the stored position before the writes ---------
        with connect(base.state) as ctl:
            OffsetStore(ctl, "bench-embedded").save(StoredOffset(start[0], start[1], None, True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
        env.update(settings_env(s_emb))
        log = open(Path(BENCH_HOME) / f"capture-{run}.log", "ab")
        before = others_cpu()
        cpu_at: dict[str, float] = {}
        t0 = time.perf_counter()
        capture = subprocess.Popen(
            [str(Path(sys.executable).with_name("snapsync")), "capture", "--connector", "bench-embedded",
             "--partitions", str(PARTITIONS), "--decoder", DECODER], env=env, stdout=log, stderr=subprocess.STDOUT)
        emb_count.wait_for(n, t0, on_event=lambda mark: cpu_at.__setitem__(mark, cpu_seconds(capture.pid)))
        emb = emb_count.result(n, cpu_at["last"], {
            "cpu_s_from_first_event": round(cpu_at["last"] - cpu_at["first"], 2), **side_cpu(before)})
        print(f"embedded: {emb['rows_per_s']:,} rows/s, {emb['cpu_s']} CPU s", file=sys.stderr)
    finally:
        if capture is not None:
            stop_pid(capture.pid)
        dbz_count.close()
        emb_count.close()
        try:
            requests.delete(f"{worker.url}/connectors/{name}", timeout=10)
        except requests.RequestException:
            pass
        worker.stop()

    return {
        "row_changes": n, "rows_per_transaction": BATCH, "write_seconds": round(write_s, 2),
        "raw_binlog_read": {"rows": raw_rows, "seconds": round(raw_s, 2), "rows_per_s": round(raw_rows / raw_s)},
        "debezium_connect": dbz, "embedded": emb,
        "ratio_embedded_over_debezium": round(emb["rows_per_s"] / dbz["rows_per_s"], 2),
        "ratio_steady_embedded_over_debezium": round(emb["steady_rows_per_s"] / dbz["steady_rows_per_s"], 2),
        "cpu_ratio_embedded_over_debezium": round(emb["cpu_s"] / dbz["cpu_s"], 2) if dbz["cpu_s"] else None,
        "ratio_embedded_over_raw": round(emb["rows_per_s"] / (raw_rows / raw_s), 2),
    }


def sustained(s: Settings, rate: int, seconds: float) -> dict:
    cap = Capture(s, connector="bench-live", heartbeat_interval=0.1, commit_interval=0.5, measure_lag=True,
                  decoder=DECODER)
    with connect(s.db) as src, connect(s.state) as ctl:
        pos = master(src)
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
    deadline = time.monotonic() + 60.0  # let capture catch up (bounded: a guard, not a measure)
    while cap.stats.streamed_rows < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    cap.stop_event.set()
    th.join(30)
    lag = cap.stats.lag_ms[5:]  # skip the warm-up
    return {"target_rows_per_s": rate, "achieved_rows_per_s": round(sent / wrote), "rows": sent,
            "captured_rows": cap.stats.streamed_rows, "lag_p50_ms": round(percentile(lag, 50), 1),
            "lag_p99_ms": round(percentile(lag, 99), 1), "lag_samples": len(lag)}


def main() -> None:
    s = bench_settings(topic_prefix="benchcap")
    run = str(int(time.time()) % 1_000_000)
    load_before = os.getloadavg()[0]  # other work on the machine skews both paths: reported
    result = {"decoder": DECODER, **compare(s, run)}
    result["sustained_embedded"] = sustained(s, rate=int(result["raw_binlog_read"]["rows_per_s"] / 2), seconds=15)
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                         "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}
    report("capture" if DECODER == "python" else f"capture-{DECODER}", result)
    d, e = result["debezium_connect"], result["embedded"]
    print(f"capture of {result['row_changes']:,} row changes: embedded {e['rows_per_s']:,} rows/s ({e['cpu_s']} CPU s) "
          f"vs Debezium through Connect {d['rows_per_s']:,} rows/s ({d['cpu_s']} CPU s): "
          f"ratio {result['ratio_embedded_over_debezium']} (steady {result['ratio_steady_embedded_over_debezium']}), "
          f"CPU ratio {result['cpu_ratio_embedded_over_debezium']}")


if __name__ == "__main__":
    main()
