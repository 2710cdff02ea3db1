"""``snapsync demo``: the main job on the local default, end to end.

Starts the local stack, seeds a small practice database, and runs each stage of the
pipeline that exists, printing what it did and where the results are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from schemas.config import load_settings
from snapsync.db import connect, ensure_database
from snapsync.local import LocalStack, stop_pid
from snapsync.seed import seed


def _wait(cond, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo pipeline did not make progress in time; see the logs above")
        time.sleep(0.1)


def run_demo(home: Path, say: Callable[[str], None], customers: int = 3, scale: float = 0.01) -> dict:
    """Run the demo; returns a summary (paths, counts)."""
    stack = LocalStack(home)
    st = stack.up()
    say(f"1. local stack up: MariaDB {st.database_url} (binlog ROW/FULL), Tansu broker {st.kafka_bootstrap}")
    settings = load_settings(None, database_url=st.database_url, kafka_bootstrap=st.kafka_bootstrap, home=str(home))
    ensure_database(settings.db)
    with connect(settings.db) as conn:
        p = seed(conn, customers=customers, scale=scale, seed_value=1)
    say(f"2. seeded {p.total_rows:,} rows of synthetic practice data for {customers} customers "
        f"in {len(p.counts)} data sets (`snapsync catalog` lists them)")
    summary = {"database_url": st.database_url, "kafka_bootstrap": st.kafka_bootstrap, "rows": p.total_rows}

    # 3. Change capture: initial snapshot into Kafka, then a few edits streamed.
    import threading

    from connectors.binlog_capture import Capture
    from schemas.events import change_topic

    cap = Capture(settings, connector="demo", heartbeat_interval=0.2, commit_interval=0.2)
    cap_thread = threading.Thread(target=lambda: cap.run(resnapshot=True, install_signals=False), daemon=True)
    cap_thread.start()
    _wait(lambda: cap.stats.snapshot_rows > 0 and cap.stats.heartbeats > 0, 120)
    with connect(settings.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE patient SET city = 'Albany' WHERE customer_id = 1 ORDER BY id LIMIT 3")
        edited = cur.rowcount
    _wait(lambda: cap.stats.streamed_rows >= edited, 60)
    cap.stop_event.set()
    cap_thread.join(30)
    say(f"3. captured {cap.stats.snapshot_rows:,} rows (initial snapshot) and {cap.stats.streamed_rows} "
        f"streamed change(s) into topics {change_topic(settings.topic_prefix, settings.db.database, '<table>')}")
    summary["captured"] = cap.stats.snapshot_rows + cap.stats.streamed_rows

    # 4. A full snapshot delivery per customer of account 1, as .DAT files.
    from sinks.export import ExportRequest, export_snapshot

    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT customer_id FROM customer WHERE account_id = 1 ORDER BY customer_id")
        customers = [r[0] for r in cur.fetchall()]
    result = export_snapshot(settings, ExportRequest(customers, "dat", "per-customer"), home / "deliveries" / "demo")
    say(f"4. delivered a full .DAT snapshot of {result.rows:,} rows for customers {customers}: "
        f"{home.resolve() / 'deliveries' / 'demo' / 'current'}")
    summary["package"] = str(result.path)

    # 5. Data Sync: customer 1's codes follow into customer 2 (override), through capture,
    #    the broker and the worker.
    import os
    import subprocess
    import sys
    from pathlib import Path

    from streams import sync_groups

    sync_groups.set_service(settings, 1, True)
    for g in sync_groups.load_groups_for(settings, 1):
        sync_groups.delete_group(settings, g.group_id)
    group = sync_groups.add_group(settings, customers[0], tuple(customers[1:2]), ("codes",), "override")
    cap = Capture(settings, connector="demo", heartbeat_interval=0.2, commit_interval=0.2)
    cap_thread = threading.Thread(target=lambda: cap.run(install_signals=False), daemon=True)
    cap_thread.start()
    log = (home / "demo-worker.log").resolve()
    env = {**os.environ, "SNAPSYNC_DATABASE_URL": st.database_url, "SNAPSYNC_KAFKA_BOOTSTRAP": st.kafka_bootstrap,
           "SNAPSYNC_HOME": str(home)}
    worker = subprocess.Popen([str(Path(sys.executable).with_name("snapsync")), "worker"], env=env,
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        _wait(lambda: b"Worker]: Ready" in log.read_bytes() or worker.poll() is not None, 120)
        with connect(settings.db, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("SELECT code FROM cpt_code WHERE customer_id = %s ORDER BY id LIMIT 1", (customers[0],))
            code = cur.fetchone()[0]
            cur.execute("UPDATE cpt_code SET description = 'Office visit, established (demo edit)' "
                        "WHERE customer_id = %s AND code = %s", (customers[0], code))

            def arrived() -> bool:
                cur.execute("SELECT description FROM cpt_code WHERE customer_id = %s AND code = %s",
                            (customers[1], code))
                return cur.fetchone()[0] == "Office visit, established (demo edit)"

            _wait(arrived, 60)
        say(f"5. Data Sync group {group.group_id}: an edit of procedure code {code} in customer {customers[0]} "
            f"appeared in customer {customers[1]} (worker log: {log})")
        summary["synced_code"] = code
    finally:
        stop_pid(worker.pid, grace=20)
        cap.stop_event.set()
        cap_thread.join(30)
    say(f"stop the local stack with `snapsync local down` (data stays in {stack.root})")
    return summary
