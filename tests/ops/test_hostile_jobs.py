"""Hostile input on the jobs topic and in the claims table: malformed jobs, jobs for an
unknown account or a day to come, a key that is not the job's account; a slot whose claim
is held by a worker that died, and one held by a claimant whose lease is about to run out.
The worker dead-letters the bad jobs with value-free reasons, goes on, and delivers each
real slot once."""

from __future__ import annotations

import datetime as dt
import json

from snapsync.connectors.kafka import ensure_topics, producer
from snapsync.connectors.mysql import connect
from snapsync.control import deliveries
from snapsync.schemas.messages import ExportJob
from snapsync.schemas.topics import dead_letter_topic, export_jobs_topic
from snapsync.sinks.scheduler import JOB_PARTITIONS
from tests.kafka_helpers import read_topic
from tests.ops.helpers import accounts_db, free_port, qs, spawn, stop, total, value, wait_ready, wait_until

DAY = dt.date(2026, 3, 11)
SECRET = "Zebediah-4471"  # stands for a value that must never reach a reason or a log


def job(account: int, day: dt.date = DAY) -> ExportJob:
    return ExportJob(account_id=account, slot_date=day, kind="full", published_at=dt.datetime.now(dt.timezone.utc),
                     publisher="test")


def test_bad_jobs_are_dead_lettered_and_dead_claims_taken_over(base_settings, tmp_path):
    s = accounts_db(base_settings, "ops_hostile", 3)
    topic = export_jobs_topic(s.topic_prefix)
    ensure_topics(s.kafka_bootstrap, [topic], JOB_PARTITIONS)
    # account 1: a worker died holding the claim (lease run out), its delivery record left running
    with connect(s.state) as conn:
        dead_delivery = deliveries.start(conn, 1, DAY, "full")
        cur = conn.cursor()
        cur.execute("INSERT INTO snapsync_export_claim (account_id, slot_date, kind, state, owner, lease_until, "
                    "attempts, delivery_id, created_at, updated_at) VALUES (1, %s, 'full', 'running', "
                    "'export-worker:gone:1:dead', UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE, 1, %s, UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6))", (DAY, dead_delivery))
        # account 2: held by a claimant whose lease runs out in 3 s and who never renews it
        cur.execute("INSERT INTO snapsync_export_claim (account_id, slot_date, kind, state, owner, lease_until, "
                    "attempts, created_at, updated_at) VALUES (2, %s, 'full', 'running', 'export-worker:slow:2:x', "
                    "UTC_TIMESTAMP(6) + INTERVAL 3 SECOND, 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", (DAY,))
        conn.commit()
    prod = producer(s.kafka_bootstrap)
    bad = [
        (b'{"account_id":1}', f"not json {SECRET}".encode()),
        (b'{"account_id":1}', json.dumps({"account_id": 1, "slot_date": DAY.isoformat(), "note": SECRET}).encode()),
        (job(999).key(), job(999).to_json()),  # an account without snapshots
        (job(3).key(), job(3, dt.date.today() + dt.timedelta(days=3)).to_json()),  # a day to come
        (job(2).key(), job(3).to_json()),  # the key is not the job's account
        (job(1).key(), None),  # a tombstone
    ]
    for key, val in bad:
        prod.produce(topic, key=key, value=val)
    for a in (1, 2, 3, 1):  # account 1's job twice: the second finds it delivered
        prod.produce(topic, key=job(a).key(), value=job(a).to_json())
    assert prod.flush(10) == 0

    log = tmp_path / "worker.log"
    port = free_port()
    worker = spawn(s, ["export-worker", "--lease", "5", "--metrics-port", str(port)], log)
    try:
        wait_ready(port, worker, log)
        wait_until(lambda: qs(s, "SELECT COUNT(*) FROM snapsync_export_claim WHERE slot_date=%s AND "
                                "state='delivered'", (DAY,))[0][0] == 3, timeout=90, what="three deliveries")
        wait_until(lambda: total(port, "snapsync_export_jobs_total") == len(bad) + 4, timeout=30,
                   what="every job handled")
        letters = [m for m in read_topic(s.kafka_bootstrap, dead_letter_topic(s.topic_prefix))]
        assert len(letters) == len(bad)
        assert value(port, "snapsync_dead_letters_total", topic=topic) == len(bad)
        assert value(port, "snapsync_export_jobs_total", result="dead_letter") == len(bad)
        assert value(port, "snapsync_export_jobs_total", result="skipped") == 1
        assert value(port, "snapsync_export_jobs_total", result="done") == 3
    finally:
        stop(worker)
    reasons = read_reasons(s)
    assert sorted(reasons) == sorted([
        "malformed export job", "malformed export job (fields: kind, note, published_at)",
        "account 999 has no enabled snapshot settings",
        f"the job's slot ({dt.date.today() + dt.timedelta(days=3)}) has not come yet",
        "the job's key is not its account", "malformed export job"])
    assert SECRET not in log.read_text() and not any(SECRET in r for r in reasons)
    # each slot delivered once; the dead worker's record abandoned, the slow claimant's taken over
    assert dict(qs(s, "SELECT account_id, COUNT(*) FROM snapsync_delivery WHERE slot_date=%s AND status='delivered' "
                     "GROUP BY account_id", (DAY,))) == {1: 1, 2: 1, 3: 1}
    assert qs(s, "SELECT status FROM snapsync_delivery WHERE delivery_id=%s", (dead_delivery,)) == [("abandoned",)]
    assert qs(s, "SELECT account_id, attempts FROM snapsync_export_claim WHERE slot_date=%s ORDER BY account_id",
             (DAY,)) == [(1, 2), (2, 2), (3, 1)]
    assert "took over the claim" in log.read_text()


def read_reasons(s) -> list[str]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = dead_letter_topic(s.topic_prefix)
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "reasons", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 50})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        reasons, eof = [], set()
        while len(eof) < len(parts):
            for m in c.consume(100, 0.5):
                if m.error():
                    eof.add(m.partition())
                    continue
                reasons.append(dict(m.headers())["reason"].decode())
        return reasons
    finally:
        c.close()


def test_an_incremental_slot_whose_watermark_is_not_reached_is_queued_again_not_failed(base_settings):
    """A passing failure (no capture has reached the cutoff yet) releases the claim for the
    next round instead of recording a failed delivery (on the main of 2026-11-24 this path
    raised NameError and the slot was marked failed)."""
    import pytest

    from snapsync.control import claims, snapshot_settings
    from snapsync.schemas.errors import RetriableError
    from snapsync.sinks.scheduler import run_job

    s = accounts_db(base_settings, "ops_transient", 1)
    cfg = snapshot_settings.configure(s, 1, who="test-setup", kind="incremental")
    with pytest.raises(RetriableError, match="never delivered early"):
        run_job(s, cfg, DAY, "test-owner")
    with connect(s.state) as conn:
        assert claims.states(conn, DAY)[(1, "incremental")]["state"] == "queued"
    assert qs(s, "SELECT COUNT(*) FROM snapsync_delivery WHERE status = 'delivered'")[0][0] == 0
