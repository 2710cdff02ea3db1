"""The incremental watermark is never early, whatever restarted or lags, on both captures.

On the main of 2026-11-24 (issue 11, case 2): with the worker stopped, a change dated the
next day and capture restarted, the export for that day succeeded without the change (the
watermark covered only partitions the new capture process had written), and the change,
staged later below the position already recorded, was never delivered. Here: the capture
restarts after the change (the embedded capture process killed with -9 and started again;
the Debezium connector restarted through Kafka Connect), the export for that day refuses
while the worker is down, and delivers the change once the worker staged it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal

import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.schemas.errors import RetriableError
from snapsync.schemas.schedule import parse_instant
from snapsync.seed import seed
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.status import pipeline_status
from tests.conftest import new_database, qs, settings_for
from tests.integration.capture_helpers import start_capture_process, wait_caught_up
from tests.integration.pipeline import (CAPTURES, DebeziumCapture, capture_args, q, start_worker, stop,
                                       wait_captured)

D1 = dt.datetime(2026, 4, 14, 4, 0)  # 2026-04-14 00:00 New York
D2 = dt.datetime(2026, 4, 15, 4, 0)
D3 = dt.datetime(2026, 4, 16, 4, 0)


@pytest.fixture(params=CAPTURES)
def pipeline(request, base_settings, tmp_path):
    name = f"wm_{request.param}"
    args = capture_args(request)
    extra = {} if args["capture"] == "embedded" else {"capture": "debezium", "connect_url": args["connect_url"]}
    s = settings_for(base_settings, name, topic_prefix=name, connector=name, **extra)
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=2, scale=0.004, seed_value=31)
    procs = {}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [stop(p) for p in procs.values()])
        if args["capture"] == "embedded":
            procs["capture"] = start_capture_process(s, name, tmp_path / "capture.log")
            wait_caught_up(s, name)
        else:
            stack.enter_context(DebeziumCapture(s))
        procs["worker"] = start_worker(s, tmp_path / "worker.log")
        yield s, procs, tmp_path


def restart_capture(s, procs, tmp_path) -> None:
    if s.capture == "embedded":
        procs["capture"].send_signal(signal.SIGKILL)
        procs["capture"].wait(10)
        procs["capture"] = start_capture_process(s, s.connector, tmp_path / "capture.log")
    else:
        r = requests.post(f"{s.connect_url}/connectors/{s.connector}/restart?includeTasks=true&onlyFailed=false",
                          timeout=30)
        assert r.status_code in (200, 202, 204), r.text


def patient_rows(folder, pk: int) -> list[list[str]]:
    lines = (folder / "customer-1" / "patient.DAT").read_text().split("\n")[1:-1]
    return [row for row in (line.split("\t") for line in lines) if row[1] == str(pk)]


def test_never_early_after_a_capture_restart_and_the_change_is_delivered(pipeline):
    s, procs, tmp_path = pipeline
    if s.capture == "debezium":  # `snapsync status` reports the connector the watermark reads
        st = pipeline_status(s)["capture"]
        assert st["kind"] == "debezium" and st["debezium"]["state"] == "RUNNING", st
        assert st["debezium"]["committed_position"]
    out = tmp_path / "out"
    export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=D1, watermark_timeout=60), out)
    stop(procs.pop("worker"))
    pk = q(s, "SELECT MIN(id) FROM patient WHERE customer_id = 1")[0][0]
    with connect(s.db, autocommit=True) as conn:  # noon of the next day, New York
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = %s", (int(parse_instant("2026-04-14T16:00").timestamp()),))
        cur.execute("UPDATE patient SET last_name = 'Restarted' WHERE id = %s", (pk,))
    wait_captured(s)
    restart_capture(s, procs, tmp_path)
    with pytest.raises(RetriableError, match="never delivered early"):
        export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=D2, watermark_timeout=10), out)
    assert not qs(s, "SELECT * FROM snapsync_incremental_state WHERE last_cutoff >= %s", (D2,))
    procs["worker"] = start_worker(s, tmp_path / "worker.log")
    second = export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=D2, watermark_timeout=120), out)
    rows = patient_rows(second.path, pk)
    assert [r[0] for r in rows] == ["U"] and "Restarted" in rows[0]
    third = export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=D3, watermark_timeout=120), out)
    assert patient_rows(third.path, pk) == []  # delivered once, not again
