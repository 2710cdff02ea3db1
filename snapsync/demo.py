"""``snapsync demo``: the main job on the local default, end to end.

Starts the local stack, seeds a small practice database, and runs each stage of the
pipeline that exists, printing what it did and where the results are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from schemas.config import load_settings
from snapsync.db import connect, ensure_database
from snapsync.local import LocalStack
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
    say(f"stop the local stack with `snapsync local down` (data stays in {stack.root})")
    return summary
