"""Embedded capture against the real MariaDB binlog and the real broker."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.events import ChangeEvent
from snapsync.schemas.topics import change_topic, heartbeat_topic, transaction_topic
from tests.conftest import new_database, settings_for
from tests.integration.capture_helpers import (
    CaptureThread,
    db_state,
    start_capture_process,
    stored_position,
    wait_caught_up,
)
from tests.kafka_helpers import final_state, read_topic

TABLES = ("patient", "charge", "cpt_code", "activity")


@pytest.fixture()
def cdc_db(seeded_db, request):
    """A seeded database with its own topic prefix (topics never collide between tests)."""
    prefix = "p" + seeded_db.db.database
    return settings_for(seeded_db, seeded_db.db.database, topic_prefix=prefix)


def _writer(settings, stop: threading.Event, seed: int, counts: dict) -> None:
    """Random inserts, updates and deletes on a few tables until told to stop."""
    rng = random.Random(seed)
    with connect(settings.db, autocommit=True) as conn:
        cur = conn.cursor()
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.4:
                cur.execute("UPDATE patient SET balance = %s, notes = %s WHERE id = %s",
                            (f"{rng.randrange(100000) / 100:.2f}", f"upd\t{rng.random()}", rng.randrange(1, 30)))
            elif kind < 0.7:
                cur.execute(
                    "INSERT INTO activity (customer_id, entity, entity_id, action, username, detail, occurred_at, "
                    "created_at, updated_at) VALUES (%s, 'patient', 1, 'view', 'u', 'line\\nbreak', NOW(6), NOW(6), NOW(6))",
                    (rng.randrange(1, 4),))
            elif kind < 0.85:
                cur.execute("DELETE FROM activity WHERE id = %s", (rng.randrange(1, 400),))
            else:
                cur.execute("UPDATE cpt_code SET default_charge = default_charge + 1 WHERE id = %s", (rng.randrange(1, 20),))
            counts["n"] = counts.get("n", 0) + 1
            time.sleep(0.002)


def test_snapshot_under_concurrent_writes_then_stream(cdc_db):
    stop = threading.Event()
    counts: dict = {}
    writer = threading.Thread(target=_writer, args=(cdc_db, stop, 1, counts))
    writer.start()
    try:
        with CaptureThread(cdc_db, "snap1") as cap:
            time.sleep(2.0)  # writes run during the snapshot and after it
            stop.set()
            writer.join()
            wait_caught_up(cdc_db, "snap1")
    finally:
        stop.set()
        writer.join()
    assert counts["n"] > 50
    assert cap.stats.snapshot_rows > 0 and cap.stats.streamed_rows > 0
    for table in TABLES:
        messages = read_topic(cdc_db.kafka_bootstrap, change_topic(cdc_db.topic_prefix, cdc_db.db.database, table))
        assert final_state(messages) == db_state(cdc_db, table), table
        # positions only ever grow along one key's history (duplicates only where the position says so)
        by_key: dict = {}
        for key, value, part, off in sorted(messages, key=lambda m: (m[2], m[3])):
            if value is None:
                continue
            ev = ChangeEvent.from_debezium(value)
            last = by_key.get(key)
            assert last is None or ev.position.key() >= last, (table, key)
            by_key[key] = ev.position.key()


def test_envelope_shape_deletes_tombstones_and_transactions(cdc_db):
    with CaptureThread(cdc_db, "shape1"):
        with connect(cdc_db.db, autocommit=False) as conn:
            cur = conn.cursor()
            cur.execute("UPDATE patient SET first_name = 'Zoë' WHERE id = 2")
            cur.execute("DELETE FROM activity WHERE id = 3")
            conn.commit()
        wait_caught_up(cdc_db, "shape1")
    prefix, db = cdc_db.topic_prefix, cdc_db.db.database
    patient = [m for m in read_topic(cdc_db.kafka_bootstrap, change_topic(prefix, db, "patient"))
               if m[1] and m[1]["op"] == "u"]
    assert len(patient) == 1
    v = patient[0][1]
    assert patient[0][0] == b'{"id":2}'
    assert v["before"]["first_name"] != "Zoë" and v["after"]["first_name"] == "Zoë"
    assert set(v) >= {"before", "after", "source", "op", "ts_ms", "transaction"}
    src = v["source"]
    for k in ("connector", "name", "ts_ms", "db", "table", "server_id", "file", "pos", "row", "gtid", "snapshot"):
        assert k in src
    assert src["db"] == db and src["table"] == "patient" and src["snapshot"] == "false" and src["gtid"]
    # encodings: DATE as epoch days, DATETIME(6) as epoch micros, DECIMAL as exact string
    assert isinstance(v["after"]["date_of_birth"], int) and isinstance(v["after"]["created_at"], int)
    assert isinstance(v["after"]["balance"], str)
    activity = read_topic(cdc_db.kafka_bootstrap, change_topic(prefix, db, "activity"))
    deletes = [i for i, m in enumerate(activity) if m[1] and m[1]["op"] == "d"]
    assert len(deletes) == 1
    d = activity[deletes[0]]
    assert d[1]["after"] is None and d[1]["before"]["id"] == 3
    assert activity[deletes[0] + 1][0] == d[0] and activity[deletes[0] + 1][1] is None  # tombstone follows
    txn = read_topic(cdc_db.kafka_bootstrap, transaction_topic(prefix))
    ends = [m[1] for m in txn if m[1]["status"] == "END" and m[1]["id"] == v["transaction"]["id"]]
    assert ends and ends[0]["event_count"] == 2
    beats = read_topic(cdc_db.kafka_bootstrap, heartbeat_topic(prefix))
    assert beats and beats[-1][1]["watermark_us"] > 0 and "offsets" in beats[-1][1]


def test_kill_9_and_restart_loses_no_change(cdc_db, tmp_path):
    log = tmp_path / "capture.log"
    proc = start_capture_process(cdc_db, "kill1", log)
    wait_caught_up(cdc_db, "kill1")  # snapshot done: every update below must stream
    n_updates = 600
    try:
        with connect(cdc_db.db, autocommit=True) as conn:
            cur = conn.cursor()
            for k in range(1, n_updates + 1):
                cur.execute("UPDATE patient SET account_number = %s WHERE id = %s", (f"v{k}", 1 + k % 5))
                if k == n_updates // 3:
                    time.sleep(1.0)
                    proc.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
                    proc.wait(10)
                if k == n_updates // 2:
                    proc = start_capture_process(cdc_db, "kill1", log)
                if k % 50 == 0:
                    time.sleep(0.05)
        wait_caught_up(cdc_db, "kill1")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except Exception:
            proc.kill()
    messages = read_topic(cdc_db.kafka_bootstrap,
                          change_topic(cdc_db.topic_prefix, cdc_db.db.database, "patient"))
    seen = {m[1]["after"]["account_number"] for m in messages if m[1] and m[1]["op"] == "u"}
    missing = {f"v{k}" for k in range(1, n_updates + 1)} - seen
    assert not missing, f"{len(missing)} changes lost, e.g. {sorted(missing)[:5]}"
    assert final_state(messages) == db_state(cdc_db, "patient")
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_alter_table_mid_stream(cdc_db):
    with CaptureThread(cdc_db, "ddl1"):
        with connect(cdc_db.db, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("UPDATE icd_code SET description = 'before alter' WHERE id = 1")
            cur.execute("ALTER TABLE icd_code ADD COLUMN chronic TINYINT(1) NULL, MODIFY description VARCHAR(400) NOT NULL")
            cur.execute("UPDATE icd_code SET chronic = 1, description = 'after add' WHERE id = 1")
            cur.execute("ALTER TABLE icd_code DROP COLUMN icd_version")
            cur.execute("UPDATE icd_code SET description = 'after drop' WHERE id = 1")
        wait_caught_up(cdc_db, "ddl1")
    msgs = [m[1] for m in read_topic(cdc_db.kafka_bootstrap,
                                     change_topic(cdc_db.topic_prefix, cdc_db.db.database, "icd_code"))
            if m[1] and m[1]["op"] == "u"]
    by_desc = {m["after"]["description"]: m["after"] for m in msgs}
    assert "chronic" not in by_desc["before alter"] and "icd_version" in by_desc["before alter"]
    assert by_desc["after add"]["chronic"] == 1
    assert "icd_version" not in by_desc["after drop"] and by_desc["after drop"]["chronic"] == 1


def test_purged_position_is_a_clear_error(stack_dir, broker, tmp_path):
    """On a server of its own: purging binlogs must not disturb the other tests."""
    from snapsync.local import MariaDB, free_port, stop_pid
    from snapsync.schemas.config import load_settings
    from snapsync.schemas.errors import FatalError
    from snapsync.seed import seed

    server = MariaDB(tmp_path / "purge" / "data", free_port())
    server.start()
    try:
        s = load_settings(None, database_url=server.url, kafka_bootstrap=broker.bootstrap, topic_prefix="purge",
                          home=str(tmp_path))
        new_database(s)
        with connect(s.db) as conn:
            seed(conn, customers=1, scale=0.002, seed_value=1)
        with CaptureThread(s, "purge1"):
            wait_caught_up(s, "purge1")
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            stored = stored_position(s, "purge1")[0]
            for _ in range(50):  # MariaDB keeps a binlog until its binlog checkpoint passed
                cur.execute("FLUSH BINARY LOGS")
                cur.execute("SHOW MASTER STATUS")
                cur.execute("PURGE BINARY LOGS TO %s", (cur.fetchone()[0],))
                cur.execute("SHOW BINARY LOGS")
                if stored not in [r[0] for r in cur.fetchall()]:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("the server kept the binlog file; cannot test purging")
        from snapsync.connectors.binlog_capture import Capture

        with pytest.raises(FatalError) as e:
            Capture(s, connector="purge1").run(install_signals=False)
        msg = str(e.value)
        assert "was purged" in msg and "--resnapshot" in msg and "binlog." in msg
    finally:
        stop_pid(server.pid or 0, grace=30)
