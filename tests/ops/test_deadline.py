"""A delivery not made by its ready-by time (09:00 New York) raises one failure notification
per account and day, however many schedulers run, and shows in the scheduler's metrics."""

from __future__ import annotations

import datetime as dt
import threading

from prometheus_client import REGISTRY

from snapsync.connectors.kafka import producer
from snapsync.control import snapshot_settings
from snapsync.schemas.schedule import local_to_utc
from snapsync.schemas.topics import notifications_topic
from snapsync.sinks.scheduler import run_job, run_round
from tests.kafka_helpers import read_topic
from tests.ops.helpers import accounts_db, qs

DAY = dt.date(2026, 3, 10)


def missed() -> float:
    return REGISTRY.get_sample_value("snapsync_deliveries_missed_total") or 0.0


def test_a_missed_deadline_raises_one_notification_per_account(base_settings):
    s = accounts_db(base_settings, "ops_deadline", 3)
    prod = producer(s.kafka_bootstrap)
    # account 1 is delivered in time; 2 and 3 are published as jobs that no worker takes
    assert run_job(s, snapshot_settings.get(s, 1), DAY, "test-owner")["rows"] > 0
    before = missed()
    published = run_round(s, local_to_utc(DAY, dt.time(2)), producer=prod, publish=True)
    assert sorted(j["account_id"] for j in published) == [2, 3]
    assert run_round(s, local_to_utc(DAY, dt.time(8, 59)), producer=prod, publish=True) == []
    assert qs(s, "SELECT COUNT(*) FROM snapsync_notification WHERE kind='snapshot_late'") == [(0,)]

    # 09:01 New York: two schedulers at once, then another round: one notice per late account
    late = local_to_utc(DAY, dt.time(9, 1))
    rounds = [threading.Thread(target=run_round, args=(s, late), kwargs={"producer": prod, "publish": True})
              for _ in range(2)]
    for t in rounds:
        t.start()
    for t in rounds:
        t.join(60)
    run_round(s, late + dt.timedelta(minutes=30), producer=prod, publish=True)
    notes = qs(s, "SELECT account_id, message FROM snapsync_notification WHERE kind='snapshot_late' "
                 "ORDER BY account_id")
    assert [a for a, _m in notes] == [2, 3]
    assert "was not ready by 09:00 New York time" in notes[0][1] and DAY.isoformat() in notes[0][1]
    assert missed() - before == 2
    assert REGISTRY.get_sample_value("snapsync_round_late_accounts") == 2
    assert REGISTRY.get_sample_value("snapsync_round_slots", {"state": "delivered"}) == 1
    events = [v for _k, v, _p, _o in read_topic(s.kafka_bootstrap, notifications_topic(s.topic_prefix))
              if v and v.get("event") == "snapshot_late"]
    assert sorted(e["account_id"] for e in events) == [2, 3]

    # the late ones delivered later are delivered once, and not announced late again
    for a in (2, 3):
        run_job(s, snapshot_settings.get(s, a), DAY, "test-owner")
    run_round(s, late + dt.timedelta(hours=1), producer=prod, publish=True)
    assert qs(s, "SELECT COUNT(*) FROM snapsync_notification WHERE kind='snapshot_late'") == [(2,)]
    assert REGISTRY.get_sample_value("snapsync_round_late_accounts") == 0
