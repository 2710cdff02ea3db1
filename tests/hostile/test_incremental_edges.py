"""Incremental packages at their edges, on the real pipeline (capture + worker):

* a row that moves to another customer (`UPDATE patient SET customer_id = ...`) is a delete
  for the customer it left and an upsert for the one it joined, per customer and combined,
  in .DAT and SQL (on the main of 2026-11-24 the old customer's copy kept the row);
* a staged row whose value does not fit its column (staged by hand, or by an older version)
  is quarantined with its reason and never blocks the export nor shows in its messages (on
  that main the export printed a traceback quoting the value, at every run)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.schedule import parse_instant
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.integration.pipeline import q, running_pipeline, wait_until
from tests.conftest import db_env, qs

C1 = dt.datetime(2026, 3, 8, 5, 0)
C2 = dt.datetime(2026, 3, 9, 4, 0)
C3 = dt.datetime(2026, 3, 10, 4, 0)
MARK = "PHILEAK Jane Roe 078-05-1120"
BIN = str(Path(sys.executable).with_name("snapsync"))


@pytest.fixture(scope="module")
def env(base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("incedge"), "incedge", customers=3,
                          seed_value=14, accounts=1) as (s, log, workers):
        yield s, log, tmp_path_factory.mktemp("out")


def staged(s, pk: int) -> list:
    return qs(s, "SELECT customer_id, op FROM snapsync_delta WHERE table_name = 'patient' AND pk = %s ORDER BY 1",
             (json.dumps({"id": pk}, separators=(",", ":")),))


def dat_rows(folder: Path, table: str) -> list[list[str]]:
    return [line.split("\t") for line in (folder / f"{table}.DAT").read_text().split("\n")[1:-1]]


def test_a_moved_row_is_deleted_for_the_customer_it_left(env):
    s, _log, out = env
    for fmt, packaging in (("dat", "per-customer"), ("dat", "combined"), ("mysql", "per-customer"),
                           ("mysql", "combined")):
        export_snapshot(s, ExportRequest([1, 2], fmt, packaging, kind="incremental", cutoff=C1), out / f"{fmt}{packaging}")
    pk = q(s, "SELECT id FROM patient WHERE customer_id = 1 AND id NOT IN (SELECT patient_id FROM charge) "
              "ORDER BY id DESC LIMIT 1")[0][0]
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = %s", (int(parse_instant("2026-03-08T10:00").timestamp()),))
        cur.execute("UPDATE patient SET customer_id = 2 WHERE id = %s", (pk,))
    wait_until(lambda: staged(s, pk) == ((1, "D"), (2, "U")), what="the move staged for both customers")
    time.sleep(1.0)  # a heartbeat after it
    for fmt, packaging in (("dat", "per-customer"), ("dat", "combined"), ("mysql", "per-customer"),
                           ("mysql", "combined")):
        r = export_snapshot(s, ExportRequest([1, 2], fmt, packaging, kind="incremental", cutoff=C2,
                                             watermark_timeout=60), out / f"{fmt}{packaging}")
        if fmt == "dat":
            if packaging == "per-customer":
                old = [row for row in dat_rows(r.path / "customer-1", "patient") if row[1] == str(pk)]
                new = [row for row in dat_rows(r.path / "customer-2", "patient") if row[1] == str(pk)]
                assert [row[0] for row in old] == ["D"] and [row[0] for row in new] == ["U"]
            else:
                both = [row for row in dat_rows(r.path / "combined", "patient") if row[1] == str(pk)]
                assert [row[0] for row in both] == ["U"] and both[0][2] == "2"  # moved inside the package
        else:
            sql = {p.name: (p / "snapshot.sql").read_text() for p in r.path.iterdir() if p.is_dir()}
            if packaging == "per-customer":
                assert f"DELETE FROM `patient` WHERE `id` IN ({pk}" in sql["customer-1"] or \
                    f",{pk})" in sql["customer-1"].split("DELETE FROM `patient`")[1].split(";")[0]
                assert f"({pk},2," in sql["customer-2"]
            else:
                assert f"({pk},2," in sql["combined"]
                assert "DELETE FROM `patient`" not in sql["combined"] or \
                    str(pk) not in sql["combined"].split("DELETE FROM `patient`")[1].split(";")[0]


def test_a_staged_row_that_does_not_fit_is_quarantined_not_a_blocker(env, cli_env):
    s, _log, out = env
    pk = q(s, "SELECT id FROM patient WHERE customer_id = 3 ORDER BY id LIMIT 1")[0][0]
    image = json.loads(qs(s, "SELECT image FROM snapsync_delta WHERE image IS NOT NULL LIMIT 1")[0][0] or "{}") \
        if qs(s, "SELECT COUNT(*) FROM snapsync_delta WHERE image IS NOT NULL")[0][0] else {}
    image.update({"id": pk, "customer_id": 3, "date_of_birth": MARK})
    qs(s, "INSERT INTO snapsync_delta (customer_id, table_name, pk, window_cutoff, op, image, src_order, "
         "source_ts_ms) VALUES (3, 'patient', %s, %s, 'U', %s, 1, 0)",
      (json.dumps({"id": pk}, separators=(",", ":")), C3, json.dumps(image)))
    folder = out / "quarantine"
    env_vars = {**cli_env, **db_env(s),
                "SNAPSYNC_TOPIC_PREFIX": s.topic_prefix, "SNAPSYNC_CONNECTOR": s.connector}
    for cutoff in ("2026-03-09T00:00", "2026-03-10T00:00", "2026-03-10T00:00"):
        r = subprocess.run([BIN, "snapshot", "export", "--customers", "3", "--out", str(folder), "--kind",
                            "incremental", "--cutoff", cutoff, "--watermark-timeout", "60"],
                           env=env_vars, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert MARK not in r.stdout + r.stderr and "Traceback" not in r.stderr
    rows = qs(s, "SELECT table_name, reason FROM snapsync_delta_quarantine WHERE customer_id = 3")
    assert rows and rows[0][0] == "patient" and "date_of_birth" in rows[0][1] and MARK not in rows[0][1]
    manifest = json.loads(next((folder / "current").glob("*/manifest.json")).read_text())
    assert MARK not in json.dumps(manifest)
