"""``snapsync demo``: the main job on the local default, end to end.

Starts the local stack, seeds a small practice database, and runs each stage of the
pipeline that exists, printing what it did and where the results are. With ``debezium``,
capture is done by Debezium on a local Kafka Connect worker (``snapsync/demo_debezium.py``)
instead of the embedded capture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.mysql import connect, ensure_database
from snapsync.control import data_sync, sync_groups
from snapsync.control.migrate import migrate
from snapsync.local import LocalStack, stop_pid
from snapsync.schemas.config import load_settings, settings_env
from snapsync.schemas.topics import change_topic
from snapsync.seed import seed
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.streams.app import spawn_worker


def _wait(cond, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo pipeline did not make progress in time; see the logs above")
        time.sleep(0.1)


def _edit_patients(settings) -> int:
    with connect(settings.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE patient SET city = 'Albany' WHERE customer_id = 1 ORDER BY id LIMIT 3")
        return cur.rowcount


def run_demo(home: Path, say: Callable[[str], None], customers: int = 3, scale: float = 0.01,
             debezium: bool = False) -> dict:
    """Run the demo; returns a summary (paths, counts). ``debezium``: capture by Debezium on the
    local Kafka Connect worker (started with the stack) instead of the embedded capture."""
    stack = LocalStack(home)
    st = stack.up(connect=debezium)
    say(f"1. local stack up: MariaDB {st.database_url} (binlog ROW/FULL), Tansu broker {st.kafka_bootstrap}"
        + (f", Kafka Connect {st.connect_url}" if debezium else ""))
    settings = load_settings(None, database_url=st.database_url, kafka_bootstrap=st.kafka_bootstrap, home=str(home))
    ensure_database(settings.db)
    with connect(settings.db) as conn:
        p = seed(conn, customers=customers, scale=scale, seed_value=1)
    migrate(settings)
    say(f"2. seeded {p.total_rows:,} rows of synthetic practice data for {customers} customers "
        f"in {len(p.counts)} data sets (`snapsync catalog` lists them); snapsync's own tables are in schemas "
        f"`{settings.state.database}` and `{settings.signal_schema}` (`snapsync db migrate`)")
    summary = {"database_url": st.database_url, "kafka_bootstrap": st.kafka_bootstrap, "rows": p.total_rows}

    # 3. Change capture: initial snapshot into Kafka, then a few edits streamed.
    import threading

    topics = change_topic(settings.topic_prefix, settings.db.database, '<table>')
    dbz = None
    if debezium:
        from snapsync.demo_debezium import DebeziumCapture

        dbz = DebeziumCapture(settings, st.connect_url or "")
        dbz.start()
        snapshot_rows = dbz.wait_snapshot()
        streamed = dbz.wait_changes("patient", "u", _edit_patients(settings))
        say(f"3. Debezium (connector {dbz.name} on Kafka Connect {st.connect_url}) captured {snapshot_rows:,} rows "
            f"(initial snapshot) and {streamed} streamed change(s) into topics {topics}; it keeps running "
            f"(`snapsync connector status --name {dbz.name}`)")
        summary.update(captured=snapshot_rows + streamed, connector=dbz.name, connect_url=st.connect_url)
    else:
        cap = Capture(settings, connector="demo", heartbeat_interval=0.2, commit_interval=0.2)
        cap_thread = threading.Thread(target=lambda: cap.run(resnapshot=True, install_signals=False), daemon=True)
        cap_thread.start()
        _wait(lambda: cap.stats.snapshot_rows > 0 and cap.stats.heartbeats > 0, 120)
        edited = _edit_patients(settings)
        _wait(lambda: cap.stats.streamed_rows >= edited, 60)
        cap.stop_event.set()
        cap_thread.join(30)
        say(f"3. captured {cap.stats.snapshot_rows:,} rows (initial snapshot) and {cap.stats.streamed_rows} "
            f"streamed change(s) into topics {topics}")
        summary["captured"] = cap.stats.snapshot_rows + cap.stats.streamed_rows

    # 4. A full snapshot delivery per customer of account 1, as .DAT files.

    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT customer_id FROM customer WHERE account_id = 1 ORDER BY customer_id")
        customers = [r[0] for r in cur.fetchall()]
    result = export_snapshot(settings, ExportRequest(customers, "dat", "per-customer"), home / "deliveries" / "demo")
    say(f"4. delivered a full .DAT snapshot of {result.rows:,} rows for customers {customers}: "
        f"{home.resolve() / 'deliveries' / 'demo' / 'current'}")
    summary["package"] = str(result.path)

    # 5. Data Sync: customer 1's codes follow into customer 2 (override), through capture,
    #    the broker and the worker: the group is made as `snapsync sync add` makes it.
    data_sync.enable_service(settings, 1)
    for g in sync_groups.load_groups_for(settings, 1):
        sync_groups.delete_group(settings, g.group_id)
    group, _copied = data_sync.create_group(settings, customers[0], tuple(customers[1:2]), ("codes",), "override")
    if dbz is None:  # Debezium keeps running; the embedded capture starts again from its position
        cap = Capture(settings, connector="demo", heartbeat_interval=0.2, commit_interval=0.2)
        cap_thread = threading.Thread(target=lambda: cap.run(install_signals=False), daemon=True)
        cap_thread.start()
    log = (home / "demo-worker.log").resolve()
    worker = spawn_worker(settings, log, timeout=120)
    try:
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
        if dbz is None:
            cap.stop_event.set()
            cap_thread.join(30)
        else:
            dbz.close()

    # 6. The Services web app, in the background: account 1's Auth Rep signs in there.
    web = start_services_web(stack, settings, customers)
    say(f"6. Services web app: {web['url']}/ - sign in as {DEMO_EMAIL} / {DEMO_PASSWORD} (Auth Rep of account 1; "
        f"its snapshot delivery is in Messages and Downloads). Log: {stack.root / 'web.log'}")
    summary["web_url"] = web["url"]
    say(f"stop the local stack and the web app with `snapsync local down` (data stays in {stack.root})")
    return summary


DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "snapsync-demo-2026"


def start_services_web(stack: LocalStack, settings, customers: list[int]) -> dict:
    """The demo's Auth Rep (account 1), a snapshot delivery announced in Messages, and
    ``snapsync web`` started in the background."""
    import datetime as dt

    from snapsync.control import snapshot_settings, users
    from snapsync.schemas.errors import ConfigError
    from snapsync.schemas.schedule import local_day
    from snapsync.sinks.scheduler import deliver

    try:
        users.add_user(settings, 1, DEMO_EMAIL, "auth-rep", DEMO_PASSWORD, who="snapsync-demo")
    except ConfigError:  # a second demo run: the user is there, make the printed password right
        users.set_password(settings, DEMO_EMAIL, DEMO_PASSWORD, who="snapsync-demo")
        users.set_disabled(settings, DEMO_EMAIL, False, who="snapsync-demo")
    cfg = snapshot_settings.configure(settings, 1, who="snapsync-demo", enabled=True, customers=tuple(customers),
                                      format="dat", kind="full", packaging="per-customer")
    deliver(settings, cfg, local_day(dt.datetime.now(dt.timezone.utc)))
    return stack.start_web({**settings_env(settings), "SNAPSYNC_HOME": str(Path(settings.home).resolve())})
