"""The metrics and health ports of capture and the worker, as processes: the lag metrics are
there, move when a lag is made, and come back when it is recovered; `snapsync status --json`
reports the pipeline, and a worker killed with -9 as not running."""

from __future__ import annotations

import json
import signal

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.topics import change_topic, deltas_group
from snapsync.seed import seed
from tests.conftest import new_database, settings_for
from tests.ops.helpers import free_port, get, metrics, spawn, status_json, stop, total, value, wait_ready, wait_until


@pytest.fixture(scope="module")
def pipeline(base_settings, tmp_path_factory):
    s = settings_for(base_settings, "ops_metrics", topic_prefix="ops_metrics", connector="ops_metrics")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.004, seed_value=9, accounts=1)
    log = tmp_path_factory.mktemp("ops_metrics") / "ops.log"
    cport, wport = free_port(), free_port()
    capture = spawn(s, ["capture", "--connector", "ops_metrics", "--commit-interval", "0.2", "--heartbeat-interval",
                        "0.3", "--metrics-port", str(cport)], log)
    procs = {"capture": capture}
    try:
        wait_ready(cport, capture, log)
        procs["worker"] = spawn(s, ["worker", "--metrics-port", str(wport)], log)
        wait_ready(wport, procs["worker"], log, timeout=90)
        yield s, log, cport, wport, procs
    finally:
        stop(*procs.values())


def patient_topic(s) -> str:
    return change_topic(s.topic_prefix, s.db.database, "patient")


def worker_lag(s, wport: int) -> float:
    return total(wport, "snapsync_consumer_lag_messages", group=deltas_group(s.topic_prefix, s.db.database),
                 topic=patient_topic(s))


def update_patients(s, n: int) -> None:
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute(f"UPDATE patient SET last_name = CONCAT(last_name, 'x') ORDER BY id LIMIT {int(n)}")
        conn.commit()


def test_health_endpoints_and_metric_names(pipeline):
    s, _log, cport, wport, _procs = pipeline
    for port in (cport, wport):
        code, body = get(port, "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        code, body = get(port, "/readyz")
        assert code == 200, body
        assert get(port, "/nothing")[0] == 404
    cap = metrics(cport)
    names = {n for n, _l in cap}
    assert {"snapsync_capture_lag_seconds", "snapsync_capture_events_per_second", "snapsync_capture_events_total",
            "snapsync_capture_binlog_position", "snapsync_capture_binlog_file_number",
            "snapsync_capture_restart_position"} <= names
    assert value(cport, "snapsync_capture_state", connector="ops_metrics", state="streaming") == 1
    wrk = metrics(wport)
    names = {n for n, _l in wrk}
    assert {"snapsync_consumer_lag_messages", "snapsync_consumer_end_offset", "snapsync_consumer_committed_offset",
            "snapsync_sync_commit_to_apply_seconds_bucket"} <= names
    # per topic and partition, for every topic the agents read
    parts = {dict(l)["partition"] for n, l in wrk if n == "snapsync_consumer_lag_messages"
             and dict(l)["topic"] == patient_topic(s)}
    assert parts == {"0", "1", "2"}


def test_capture_lag_moves_when_capture_stalls_and_recovers(pipeline):
    s, _log, cport, _wport, _procs = pipeline
    wait_until(lambda: (value(cport, "snapsync_capture_lag_seconds", connector="ops_metrics") or 99) < 3,
               what="capture caught up")
    events_before = value(cport, "snapsync_capture_events_total", connector="ops_metrics")
    # Hold the restart-point table: capture blocks storing its position, the source goes on.
    holder = connect(s.state, autocommit=True)
    try:
        holder.cursor().execute("LOCK TABLES snapsync_capture_offset WRITE")
        update_patients(s, 20)
        wait_until(lambda: value(cport, "snapsync_capture_lag_seconds", connector="ops_metrics") > 4,
                   what="capture lag above 4 s")
        assert get(cport, "/healthz")[0] == 200  # stalled for seconds only: still alive
    finally:
        holder.cursor().execute("UNLOCK TABLES")
        holder.close()
    wait_until(lambda: value(cport, "snapsync_capture_lag_seconds", connector="ops_metrics") < 3,
               what="capture lag back under 3 s")
    wait_until(lambda: value(cport, "snapsync_capture_events_total", connector="ops_metrics") >= events_before + 20,
               what="the 20 updates captured")
    assert value(cport, "snapsync_capture_binlog_position", connector="ops_metrics") > 0


def test_worker_lag_moves_when_the_deltas_agent_is_held_and_recovers(pipeline):
    s, _log, _cport, wport, _procs = pipeline
    wait_until(lambda: worker_lag(s, wport) == 0, timeout=60, what="worker caught up")
    # Hold the staging progress table: the deltas stage waits, capture and the source go on.
    holder = connect(s.state, autocommit=True)
    try:
        holder.cursor().execute("LOCK TABLES snapsync_delta_progress WRITE")
        update_patients(s, 30)
        wait_until(lambda: worker_lag(s, wport) >= 30, timeout=60, what="worker lag of the 30 updates")
        ends = total(wport, "snapsync_consumer_end_offset", topic=patient_topic(s))
        committed = total(wport, "snapsync_consumer_committed_offset", topic=patient_topic(s))
        assert ends - committed >= 30  # never negative: the end is read, not taken from the broker's report
    finally:
        holder.cursor().execute("UNLOCK TABLES")
        holder.close()
    wait_until(lambda: worker_lag(s, wport) == 0, timeout=60, what="worker lag back to 0")
    assert total(wport, "snapsync_deltas_staged_total", table="patient") >= 30
    assert total(wport, "snapsync_worker_events_total", agent="deltas") >= 30


def test_status_json_reports_the_pipeline_and_a_killed_worker(pipeline):
    s, log, _cport, _wport, procs = pipeline
    st = status_json(s)
    assert st["processes"]["worker"][0]["state"] == "running" and st["worker"]["running"] == 1
    assert st["capture"]["connectors"][0]["connector"] == "ops_metrics"
    assert st["capture"]["watermark"]["lag_s"] < 10
    assert any(p["topic"] == patient_topic(s) for p in st["worker"]["lag"])
    assert not [p for p in st["problems"] if p.startswith(("worker", "capture"))], st["problems"]
    worker = procs.pop("worker")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    update_patients(s, 5)  # a lag builds up behind the dead worker
    st = wait_until(lambda: (lambda st: st if st["worker"]["running"] == 0 else None)(status_json(s)),
                    timeout=60, what="status reporting the worker stopped", every=2.0)
    assert st["processes"]["worker"][0]["state"] == "not seen"
    assert any(p.startswith("worker: no running process") for p in st["problems"])
    wait_until(lambda: status_json(s)["worker"]["lag_total"] >= 5, timeout=30, what="lag behind the dead worker")
