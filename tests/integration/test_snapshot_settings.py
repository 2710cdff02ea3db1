"""Snapshot settings, audit history and the scheduler on the real database and broker."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from snapsync.connectors.kafka import producer
from snapsync.connectors.mysql import connect
from snapsync.control import snapshot_settings as settings_store
from snapsync.control.audit import audit_rows
from snapsync.schemas.errors import ConfigError
from snapsync.schemas.topics import notifications_topic
from snapsync.seed import seed
from snapsync.sinks.delivery import current_delivery
from snapsync.sinks.scheduler import delivery_root, run_round
from tests.kafka_helpers import read_topic
from tests.conftest import db_env

UTC = dt.timezone.utc


@pytest.fixture()
def two_accounts(fresh_db):
    """4 customers: 1 and 3 in account 1, 2 and 4 in account 2."""
    with connect(fresh_db.db) as conn:
        seed(conn, customers=4, scale=0.003, seed_value=2, accounts=2)
    return fresh_db


def test_bad_settings_are_refused_with_what_to_fix(two_accounts):
    s = two_accounts
    with pytest.raises(ConfigError, match="unknown customer.*9"):
        settings_store.configure(s, 1, customers=(1, 9))
    with pytest.raises(ConfigError, match="customer.*2.*another account"):
        settings_store.configure(s, 1, customers=(1, 2))
    with pytest.raises(ConfigError, match="customers: select at least one customer"):
        settings_store.configure(s, 1, customers=())
    with pytest.raises(ConfigError) as e:
        settings_store.configure(s, 1, customers=(1,), format="xml", packaging="zipped")
    assert "format" in str(e.value) and "use dat, mysql, parquet" in str(e.value) and "packaging" in str(e.value)
    with pytest.raises(ConfigError, match="unknown account 7"):
        settings_store.configure(s, 7, customers=(1,))


def test_changes_are_audited_with_before_and_after(two_accounts, monkeypatch):
    s = two_accounts
    monkeypatch.setenv("SNAPSYNC_ACTOR", "auth-rep@example.test")
    settings_store.configure(s, 1, customers=(1, 3), format="dat")
    settings_store.configure(s, 1, format="mysql", packaging="combined")
    settings_store.disable(s, 1)
    with connect(s.state) as conn:
        rows = audit_rows(conn, account_id=1, entity="snapshot_settings")
    assert [r["action"] for r in rows] == ["update", "update", "create"]
    assert rows[1]["before"]["format"] == "dat" and rows[1]["after"]["format"] == "mysql"
    assert rows[0]["after"]["enabled"] is False and rows[0]["actor"] == "auth-rep@example.test"
    assert rows[1]["after"]["customers"] == [1, 3]


def test_scheduler_delivers_at_0100_new_york_on_dst_days(two_accounts, tmp_path, monkeypatch):
    monkeypatch.setattr("snapsync.sinks.delivery.GRACE", 0.0)  # no grace period: replaced means gone
    s = two_accounts
    settings_store.configure(s, 1, customers=(1, 3), format="dat", packaging="combined")
    settings_store.configure(s, 2, customers=(2,), format="mysql")
    prod = producer(s.kafka_bootstrap)
    for day, before_utc, after_utc in (
        (dt.date(2026, 3, 8), dt.datetime(2026, 3, 8, 5, 59, tzinfo=UTC), dt.datetime(2026, 3, 8, 6, 0, tzinfo=UTC)),
        (dt.date(2026, 11, 1), dt.datetime(2026, 11, 1, 4, 59, tzinfo=UTC), dt.datetime(2026, 11, 1, 5, 0, tzinfo=UTC)),
    ):
        assert run_round(s, before_utc, producer=prod) == []  # 00:59 New York: not yet
        done = run_round(s, after_utc, producer=prod)  # 01:00 New York
        assert sorted(d["account_id"] for d in done) == [1, 2]
        assert all(d["slot_date"] == day.isoformat() for d in done)
        assert run_round(s, after_utc + dt.timedelta(hours=3), producer=prod) == []  # once a day
    root = delivery_root(s, 1)
    pkg = current_delivery(root) / "combined"
    assert json.loads((pkg / "manifest.json").read_text())["customers"] == [1, 3]
    assert [p.name for p in (root / "deliveries").iterdir()] == [current_delivery(root).name]  # replaced
    with connect(s.state) as conn:
        cur = conn.cursor()
        cur.execute("SELECT account_id, message, detail FROM snapsync_notification ORDER BY notification_id")
        notes = cur.fetchall()
        cur.execute("SELECT COUNT(*) FROM snapsync_delivery WHERE status='delivered'")
        assert cur.fetchone()[0] == 4
        deliveries = audit_rows(conn, entity="delivery")
    assert len(notes) == 4 and "is ready" in notes[0][1]
    detail = json.loads(notes[-1][2])
    assert detail["bytes"] > 0 and detail["packages"][0]["files"][0]["sha256"]
    assert len(deliveries) == 4 and deliveries[0]["action"] == "delivered"
    events = read_topic(s.kafka_bootstrap, notifications_topic(s.topic_prefix))
    assert len(events) >= 4 and all(e[1]["event"] == "snapshot_ready" for e in events)


def test_cli_configure_show_audit(two_accounts, cli_env):
    import subprocess
    import sys
    from pathlib import Path

    bin_ = str(Path(sys.executable).with_name("snapsync"))
    env = {**cli_env, **db_env(two_accounts)}
    r = subprocess.run([bin_, "snapshot", "configure", "--account", "2", "--customers", "2,4", "--json"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bin_, "snapshot", "show", "--account", "2", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(r.stdout)["customers"] == [2, 4]
    r = subprocess.run([bin_, "snapshot", "configure", "--account", "2", "--customers", "1"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "another account" in r.stderr
    r = subprocess.run([bin_, "audit", "--account", "2", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(r.stdout)[0]["entity"] == "snapshot_settings"
