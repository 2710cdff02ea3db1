"""Usage metering on the real database: manual, sample (free) and nightly deliveries, Data
Sync items applied, each counted once where it is recorded; `snapsync usage` for the invoice
run; the Prometheus counter."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from snapsync.connectors.mysql import connect, encoded_rows
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control import data_sync, snapshot_settings, sync_groups, sync_tasks, usage
from snapsync.control.audit import flush_outbox
from snapsync.schemas.messages import SyncCommand
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.scheduler import deliver
from snapsync.streams.sync_apply import apply_command
from tests.conftest import env_for, qs, sig

BIN = str(Path(sys.executable).with_name("snapsync"))


def counter(kind: str, measure: str) -> float:
    return REGISTRY.get_sample_value("snapsync_usage_total", {"kind": kind, "measure": measure}) or 0.0


def run(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], env=env_for(s), capture_output=True, text=True, timeout=120)


def test_deliveries_are_counted_once_each_and_the_sample_is_free(seeded_db, tmp_path):
    s = seeded_db
    before = {m: counter("manual", m) for m in usage.MEASURES}
    manual = export_snapshot(s, ExportRequest([1, 2], "dat", "per-customer"), tmp_path / "manual")
    export_snapshot(s, ExportRequest([1], "dat", sample_rows=5), tmp_path / "sample")
    snapshot_settings.configure(s, 1, who="test", enabled=True, customers=(1, 3), format="mysql", kind="full",
                                packaging="combined")
    night = deliver(s, snapshot_settings.get(s, 1), dt.date(2026, 3, 9))

    now = usage.account_usage(s, 1)
    m = now["by_kind"]["manual"]
    size = sum(f["bytes"] for p in manual.packages for f in p["files"])
    assert m == {"deliveries": 1, "rows": manual.rows, "bytes": size,
                 "data_sets": sum(len(p["datasets"]) for p in manual.packages), "sync_items": 0}
    assert now["by_kind"]["sample"]["deliveries"] == 1 and now["free"]["samples"] == 1
    assert now["billable"]["deliveries"] == (1 if usage.this_month() != dt.date(2026, 3, 1) else 2)
    march = usage.account_usage(s, 1, dt.date(2026, 3, 1))["by_kind"]["nightly"]
    assert march["deliveries"] == 1 and march["rows"] == night["rows"] and march["bytes"] == night["bytes"]
    assert march["data_sets"] == 32  # one combined package: every data set once
    # the counter of this process saw the manual delivery once
    assert counter("manual", "deliveries") - before["deliveries"] == 1
    assert counter("manual", "rows") - before["rows"] == manual.rows
    # every event is keyed by what it counts: one row each
    assert qs(s, "SELECT kind, COUNT(*) FROM snapsync_usage_event GROUP BY kind ORDER BY kind") == (
        ("manual", 1), ("nightly", 1), ("sample", 1))


def test_sync_items_are_counted_once_even_when_an_audit_record_is_moved_twice(seeded_db):
    s = seeded_db
    sync_groups.set_service(s, 1, True)
    group, tasks = data_sync.create_group(s, 1, (2,), ("payers",), "override")
    with connect_state(s) as state:
        assert sync_tasks.work_once(s, "test-runner", state).task_id == tasks[2]
    (made,) = sync_tasks.wait_for(s, list(tasks.values()), 0)
    items = sum(c["created"] + c["overridden"] for c in made.result["tables"].values())
    assert items > 0
    assert usage.account_usage(s, 1)["by_kind"]["sync"]["sync_items"] == items

    # one command of the stream applier: an override of an item customer 2 has
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM payor WHERE customer_id = 1 ORDER BY id LIMIT 1")
        values = {**encoded_rows(cur)[0], "name": "Renamed payer"}  # the change event's encoding
    cmd = SyncCommand(command_id="usage-test:1", group_id=group.group_id, mode="override", table="payor",
                      source_customer=1, target_customer=2, values=values, path=(1,), source_ts_ms=0)
    with connect_source(s) as conn, connect_state(s) as state:
        assert apply_command(conn, state, cmd, mark=False) == "overridden"
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {sig(s, 'snapsync_audit_outbox')}")
        pending = cur.fetchall()
        conn.commit()
        assert flush_outbox(conn, state) == 1
        # a flush that died between its two commits: the record is still in the outbox
        cur.executemany(f"INSERT INTO {sig(s, 'snapsync_audit_outbox')} VALUES ({','.join(['%s'] * len(pending[0]))})",
                        pending)
        conn.commit()
        assert flush_outbox(conn, state) == 1
    assert usage.account_usage(s, 1)["by_kind"]["sync"]["sync_items"] == items + 1
    assert qs(s, "SELECT COUNT(*) FROM snapsync_audit WHERE entity_id = 'usage-test:1'")[0][0] == 1


def test_the_usage_command_for_the_invoice_run(seeded_db, tmp_path):
    s = seeded_db
    snapshot_settings.configure(s, 1, who="test", enabled=True, customers=(1,), format="dat", kind="full",
                                packaging="per-customer")
    night = deliver(s, snapshot_settings.get(s, 1), dt.date(2026, 2, 27))
    r = run(s, "usage", "--account", "1", "--month", "2026-02", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["month"] == "2026-02" and got["billable"]["deliveries"] == 1 and got["billable"]["rows"] == night["rows"]
    r = run(s, "usage", "--month", "2026-02", "--csv")
    assert r.returncode == 0, r.stderr
    lines = list(csv.DictReader(io.StringIO(r.stdout)))
    total = [x for x in lines if x["kind"] == "total"]
    assert [(x["account_id"], x["deliveries"], x["rows"]) for x in total] == [("1", "1", str(night["rows"]))]
    assert {x["kind"] for x in lines} == {*usage.KINDS, "total"}
    assert [x["billable"] for x in lines if x["kind"] == "sample"] == ["0"]
    r = run(s, "usage", "--account", "1", "--month", "2026-02")
    assert r.returncode == 0 and "1 delivery(ies)" in r.stdout and "0 sample(s) (free)" in r.stdout
    # a month with nothing: zeros, not an error
    assert json.loads(run(s, "usage", "--account", "1", "--month", "2025-01", "--json").stdout)["billable"][
        "deliveries"] == 0
    # bad input: exit 2, naming the fix
    for args, text in ((["--month", "02/2026"], "YYYY-MM"), (["--month", "2026-13"], "YYYY-MM"),
                       (["--account", "77"], "unknown account 77"), (["--json", "--csv"], "choose one")):
        r = run(s, "usage", *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
