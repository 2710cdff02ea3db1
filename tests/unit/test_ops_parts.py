"""The pure parts of operations: the export job message, its decoding, lag arithmetic, the
health report, the metrics port, and capture's metrics read from its stats."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from snapsync.connectors.capture_metrics import CaptureMonitor
from snapsync.connectors.lag import PartitionLag
from snapsync.connectors.metrics import Health, Heartbeat, scrape, serve
from snapsync.connectors.offsets import StoredOffset
from snapsync.local import free_port
from snapsync.schemas.errors import ConfigError, DataError
from snapsync.schemas.events import SourcePosition
from snapsync.schemas.messages import ExportJob
from snapsync.schemas.topics import (
    deltas_group,
    deltas_topics,
    export_group,
    export_jobs_topic,
    worker_group,
    worker_topics,
)
from snapsync.sinks.export_worker import ExportWorker


def job(**kw) -> ExportJob:
    return ExportJob(**{"account_id": 7, "slot_date": dt.date(2026, 3, 8), "kind": "full",
                        "published_at": dt.datetime(2026, 3, 8, 6, tzinfo=dt.timezone.utc), **kw})


def test_export_job_round_trip_and_key():
    j = job()
    assert ExportJob.from_json(j.to_json()) == j
    assert j.key() == b'{"account_id":7}'
    assert export_jobs_topic("p") == "p.export.jobs"
    assert {worker_group("p", "d"), export_group("p", "d")} == {"snapsync-p-d", "snapsync-export-p-d"}
    assert "p.sync.commands" in worker_topics("p", "d") and "p.d.cpt_code" in worker_topics("p", "d")
    assert "p.d.patient" in deltas_topics("p", "d") and deltas_group("p", "d") == "snapsync-deltas-p-d"


@pytest.mark.parametrize("value, reason", [
    (b"not json Zebediah", "malformed export job"),
    (None, "malformed export job"),
    (b'{"account_id": 7, "slot_date": "2026-03-08", "kind": "full", "published_at": "2026-03-08T06:00:00Z", '
     b'"extra": "Zebediah"}', "malformed export job (fields: extra)"),
    (b'{"account_id": -1, "slot_date": "Zebediah", "kind": "weekly", "published_at": "2026-03-08T06:00:00Z"}',
     "malformed export job (fields: account_id, kind, slot_date)"),
])
def test_bad_jobs_give_value_free_reasons(value, reason):
    with pytest.raises(DataError) as e:
        ExportWorker.decode(b'{"account_id":7}', value)
    assert str(e.value) == reason and "Zebediah" not in str(e.value)


def test_a_job_under_another_accounts_key_is_refused():
    with pytest.raises(DataError, match="key is not its account"):
        ExportWorker.decode(b'{"account_id":8}', job().to_json())
    assert ExportWorker.decode(None, job().to_json()) == job()


def test_lag_counts_from_the_committed_offset_or_the_earliest_kept():
    assert PartitionLag("t", 0, end=108, committed=91, reported_end=91).lag == 17
    assert PartitionLag("t", 0, end=108, committed=None, reported_end=91, low=8).lag == 100
    assert PartitionLag("t", 0, end=5, committed=9, reported_end=5).lag == 0  # never negative


def test_health_report_names_each_check_and_survives_a_broken_one():
    def broken():
        raise RuntimeError("Zebediah")

    h = Health(live={"loop": lambda: (True, "fine")}, ready={"db": broken})
    assert h.report("live") == (True, {"status": "ok", "checks": {"loop": {"ok": True, "detail": "fine"}}})
    ok, report = h.report("ready")
    assert not ok and report["checks"]["db"] == {"ok": False, "detail": "the check failed (RuntimeError)"}
    beat = Heartbeat("the loop", stale_after=0.05)
    assert beat.check()[0]
    time.sleep(0.1)
    assert not beat.check()[0] and "has not turned" in beat.check()[1]


def _get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_metrics_port_serves_metrics_and_health():
    ready = {"ok": False}
    server = serve(free_port(), Health(live={"x": lambda: (True, "up")},
                                       ready={"y": lambda: (ready["ok"], "waiting")}))
    try:
        status, body = _get(server.port, "/metrics")
        assert status == 200 and "process_cpu_seconds_total" in body
        assert _get(server.port, "/healthz")[0] == 200
        status, body = _get(server.port, "/readyz")
        assert status == 503 and json.loads(body)["checks"]["y"] == {"ok": False, "detail": "waiting"}
        ready["ok"] = True
        assert _get(server.port, "/readyz")[0] == 200
        assert _get(server.port, "/metrics/other")[0] == 404
        with pytest.raises(ConfigError, match="--metrics-port"):
            serve(server.port, Health())
    finally:
        server.close()


def test_capture_metrics_come_from_its_stats():
    stats = SimpleNamespace(streamed_rows=0, snapshot_rows=12, heartbeats=3, state="streaming",
                            loop_at=time.monotonic(), source_ts=time.time() - 2.5, last_position=None,
                            restart_point=StoredOffset("binlog.000042", 900, None, True))
    cap = SimpleNamespace(connector="c1", stats=stats)
    mon = CaptureMonitor(cap).start()
    try:
        stats.streamed_rows = 40
        time.sleep(1.2)
        from prometheus_client import REGISTRY, generate_latest

        m = scrape(generate_latest(REGISTRY).decode())
        label = (("connector", "c1"),)
        assert 2.4 < m[("snapsync_capture_lag_seconds", label)] < 10
        assert m[("snapsync_capture_binlog_file_number", label)] == 42  # the restart point before any row
        assert m[("snapsync_capture_snapshot_rows_total", label)] == 12
        assert m[("snapsync_capture_state", (("connector", "c1"), ("state", "streaming")))] == 1
        stats.last_position = SourcePosition("binlog.000043", 1234, 0)
        m = scrape(generate_latest(REGISTRY).decode())
        assert (m[("snapsync_capture_binlog_file_number", label)], m[("snapsync_capture_binlog_position", label)]) \
            == (43, 1234)
        assert mon.health().report("ready")[0]
        stats.state = "paused"
        assert not mon.health().report("ready")[0] and mon.health().report("live")[0]
    finally:
        mon.stop()


def test_a_port_in_use_is_a_config_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            serve(s.getsockname()[1], Health())
