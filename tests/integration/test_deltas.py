"""The deltas stage: durable per-customer, per-window staging of the incremental data sets,
with SET TIMESTAMP placing changes on chosen days (real capture, broker and worker)."""

from __future__ import annotations

import datetime as dt
import json
import signal

import pytest

from snapsync.connectors.mysql import connect, encoded_rows
from snapsync.schemas.schedule import parse_instant
from snapsync.schemas.topics import change_topic, dead_letter_topic
from tests.integration.pipeline import CAPTURES, capture_args, q, running_pipeline, start_worker, wait_until
from tests.conftest import qs

W1 = dt.datetime(2026, 3, 8, 5, 0)   # closes 2026-03-07 (New York), the day before spring-forward
W2 = dt.datetime(2026, 3, 9, 4, 0)   # closes the 23-hour 2026-03-08


def at(text: str) -> int:
    return int(parse_instant(text).timestamp())


def staged(s, table: str, pk: int, window: dt.datetime):
    rows = qs(s, "SELECT op, image FROM snapsync_delta WHERE table_name = %s AND pk = %s AND window_cutoff = %s",
             (table, json.dumps({"id": pk}, separators=(",", ":")), window))
    return (rows[0][0], json.loads(rows[0][1]) if rows[0][1] else None) if rows else None


def current(s, table: str, pk: int) -> dict:
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{table}` WHERE id = %s", (pk,))
        return encoded_rows(cur)[0]


@pytest.fixture(scope="module", params=CAPTURES)
def env(request, base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("deltas"), f"deltas_{request.param}", customers=3,
                          seed_value=4, **capture_args(request)) as running:
        yield running


def test_windows_latest_image_and_deletes(env):
    s, _log, _w = env
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = %s", (at("2026-03-07T22:00"),))
        cur.execute("UPDATE patient SET first_name = 'w1' WHERE id = 1")
        cur.execute("SET TIMESTAMP = %s", (at("2026-03-08T12:00"),))
        cur.execute("UPDATE patient SET first_name = 'w2a' WHERE id = 1")
        cur.execute("UPDATE patient SET first_name = 'w2b' WHERE id = 1")
        cur.execute("INSERT INTO activity (customer_id, entity, entity_id, action, username, detail, occurred_at, "
                    "created_at, updated_at) VALUES (2, 'patient', 1, 'view', 'u', 'tab\there', NOW(6), NOW(6), NOW(6))")
        new_id = cur.lastrowid
        cur.execute("DELETE FROM activity WHERE id = %s", (new_id,))  # created and deleted inside one window
        cur.execute("DELETE FROM activity WHERE id = 2")
        cur.execute("SET TIMESTAMP = DEFAULT")
    wait_until(lambda: staged(s, "activity", 2, W2) is not None, what="the deltas staged")
    op1, img1 = staged(s, "patient", 1, W1)
    assert op1 == "U" and img1["first_name"] == "w1"
    op2, img2 = staged(s, "patient", 1, W2)
    assert op2 == "U" and img2 == current(s, "patient", 1) and img2["first_name"] == "w2b"
    assert staged(s, "activity", new_id, W2) == ("D", None)
    assert staged(s, "activity", 2, W2) == ("D", None)
    assert qs(s, "SELECT DISTINCT customer_id FROM snapsync_delta WHERE table_name = 'activity' AND pk = %s",
             (json.dumps({"id": new_id}, separators=(",", ":")),)) == ((2,),)


def test_kill_9_of_the_worker_changes_nothing_in_the_staging(env):
    s, log, workers = env
    ids = [r[0] for r in q(s, "SELECT id FROM charge ORDER BY id LIMIT 40")]
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = %s", (at("2026-03-08T15:00"),))
        for i in range(400):
            cur.execute("UPDATE charge SET modifiers = %s WHERE id = %s", (f"m{i}", ids[i % len(ids)]))
            if i == 150:
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
        cur.execute("SET TIMESTAMP = DEFAULT")
    workers[0] = start_worker(s, log)
    for pk in ids:
        wait_until(lambda: (staged(s, "charge", pk, W2) or (None, None))[1] == current(s, "charge", pk),
                   timeout=60, what=f"charge {pk} staged as it is now")
    # the progress table covers what was staged
    assert qs(s, "SELECT COUNT(*) FROM snapsync_delta_progress WHERE topic = %s",
             (change_topic(s.topic_prefix, s.db.database, "charge"),))[0][0] >= 1


def test_poison_events_are_dead_lettered_and_staging_goes_on(env):
    from snapsync.connectors.kafka import producer
    from tests.kafka_helpers import read_topic

    s, _log, _w = env
    p = producer(s.kafka_bootstrap)
    p.produce(change_topic(s.topic_prefix, s.db.database, "credit"), key=b'{"id":1}', value=b"{broken")
    p.flush(10)
    with connect(s.db, autocommit=True) as conn:
        conn.cursor().execute("UPDATE credit SET amount = 9.99 WHERE id = 3")
    wait_until(lambda: any((staged(s, "credit", 3, w) or (None, {}))[1] and
                           staged(s, "credit", 3, w)[1].get("amount") == "9.99"
                           for (w,) in qs(s, "SELECT DISTINCT window_cutoff FROM snapsync_delta")),
               what="a good event after the poison one")
    dlq = read_topic(s.kafka_bootstrap, dead_letter_topic(s.topic_prefix))
    assert any(m[0] == b'{"id":1}' for m in dlq)
