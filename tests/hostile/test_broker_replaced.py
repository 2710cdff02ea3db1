"""A broker that comes back empty (replaced, or the local Tansu restarted: memory storage):
noticed by its cluster id, recovered from in one transaction, and nothing recorded on the old
one (``control/broker.py``). The whole pipeline through a broker restart, checked delivery by
delivery, is the soak's (``tests/soak``)."""

from __future__ import annotations

import datetime as dt

import pytest

from snapsync.connectors.kafka import cluster_id
from snapsync.connectors.state import connect_state
from snapsync.control import broker, data_sync, snapshot_settings
from snapsync.schemas.errors import RetriableError
from snapsync.sinks import incremental as inc
from tests.conftest import qs


def test_a_replaced_broker_is_recovered_from_once(seeded_db):
    s = seeded_db
    prefix = s.topic_prefix
    snapshot_settings.configure(s, 1, customers=[1, 2], kind="incremental", format="dat", enabled=True)
    data_sync.enable_service(s, 1)
    data_sync.create_group(s, 1, (2,), ("codes",), "override")
    tasks_before = qs(s, "SELECT COUNT(*) FROM snapsync_sync_task")[0][0]
    qs(s, "INSERT INTO snapsync_delta_progress (topic, partition_id, next_offset, updated_at) VALUES "
          f"('{prefix}.x.charge', 0, 500, UTC_TIMESTAMP(6)), ('other.x.charge', 0, 7, UTC_TIMESTAMP(6))")
    with connect_state(s) as conn:
        inc.record_delivered(conn, "/deliveries/a", [1, 2], dt.datetime(2026, 1, 5, 5), 123)
    qs(s, "INSERT INTO snapsync_export_claim (account_id, slot_date, kind, state, published_at, created_at, "
          "updated_at) VALUES (1, '2026-01-05', 'incremental', 'queued', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
          "UTC_TIMESTAMP(6))")

    assert broker.observe(s, "cluster-a", who="test") == broker.Generation("cluster-a", 1)
    assert broker.observe(s, "cluster-a", who="test") == broker.Generation("cluster-a", 1)  # same broker
    assert broker.observe(s, "cluster-b", who="test") == broker.Generation("cluster-b", 2, replaced=True)
    assert broker.observe(s, "cluster-b", who="another process") == broker.Generation("cluster-b", 2)  # once

    # the deltas stage starts the new topics from their beginning (another prefix's progress kept)
    assert qs(s, "SELECT topic FROM snapsync_delta_progress") == (("other.x.charge",),)
    # every incremental target goes full once; the queued job is published again
    assert qs(s, "SELECT COUNT(*) FROM snapsync_incremental_state")[0][0] == 0
    assert qs(s, "SELECT published_at FROM snapsync_export_claim") == ((None,),)
    # Data Sync copies the group again; the account is told, without a value in the message
    assert qs(s, "SELECT COUNT(*) FROM snapsync_sync_task")[0][0] == tasks_before + 1
    [(kind, message)] = qs(s, "SELECT kind, message FROM snapsync_notification WHERE kind = 'broker_replaced'")
    assert "in full" in message

    # an export whose watermark was taken on the old broker records nothing
    with connect_state(s) as conn:
        inc.record_delivered(conn, "/deliveries/a", [1], dt.datetime(2026, 1, 6, 5), 456, broker=(prefix, 1))
    assert qs(s, "SELECT COUNT(*) FROM snapsync_incremental_state")[0][0] == 0
    with connect_state(s) as conn:
        inc.record_delivered(conn, "/deliveries/a", [1], dt.datetime(2026, 1, 6, 5), 456, broker=(prefix, 2))
    assert qs(s, "SELECT customer_id FROM snapsync_incremental_state") == ((1,),)


def test_a_watermark_on_a_replaced_broker_is_refused_and_status_says_so(seeded_db):
    from snapsync.status import pipeline_status

    s = seeded_db
    broker.observe(s, "a-broker-that-is-gone", who="test")
    st = pipeline_status(s)
    assert any("not the one the pipeline last used" in p for p in st["problems"])
    with pytest.raises(RetriableError, match="broker was replaced"):
        inc.check_same_broker(s)  # the stage's progress was counted in topics that are gone
    gen = inc.check_same_broker(s)  # recovered: the next watermark goes on, on the new broker
    assert gen.cluster_id == cluster_id(s.kafka_bootstrap) and gen.number == 2
    st = pipeline_status(s)
    assert st["broker"]["generation"] == 2 and st["broker"]["replaced"]
    assert not any("not the one" in p for p in st["problems"])
