"""The web app's pure parts: streamed zips, live notices, audit summaries, redirects."""

from __future__ import annotations

import io
import json
import zipfile

from snapsync.sinks.archive import Package, package_files, zip_stream
from snapsync.web.live import parse
from snapsync.web.pages import describe
from snapsync.web.routers.signin import _safe_next
from snapsync.web.timefmt import day_start_utc, local


def test_a_streamed_zip_holds_every_file_and_reads_back(tmp_path):
    pkg = tmp_path / "customer-1"
    pkg.mkdir()
    (pkg / "manifest.json").write_text(json.dumps({"package": "customer-1"}))
    big = bytes(range(256)) * 20_000  # several chunks
    (pkg / "patient.DAT").write_bytes(big)
    inner = tmp_path / "customer-2.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("manifest.json", "{}")
    files = package_files([Package("customer-1", pkg), Package("customer-2", inner)])
    (pkg / "patient.DAT").unlink()  # replaced before sending: the opened file is still read whole
    chunks = list(zip_stream(files))
    assert len(chunks) > 1
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as z:
        assert sorted(z.namelist()) == ["customer-1/manifest.json", "customer-1/patient.DAT", "customer-2.zip"]
        assert z.read("customer-1/patient.DAT") == big
        assert z.getinfo("customer-2.zip").compress_type == zipfile.ZIP_STORED
        assert z.testzip() is None


def test_live_notices_keep_only_their_public_part():
    value = json.dumps({"event": "snapshot_ready", "account_id": 3, "message": "ready", "path": "/srv/x",
                        "packages": [{"files": []}]}).encode()
    assert parse(value) == {"account_id": 3, "event": "snapshot_ready", "message": "ready"}
    assert parse(b"not json") is None and parse(b'{"event": "x"}') is None


def test_audit_records_are_described_without_row_images():
    change = {"entity": "snapshot_settings", "before": {"format": "dat", "customers": [1]},
              "after": {"format": "mysql", "customers": [1]}, "detail": None}
    assert describe(change) == "format: dat → mysql"
    applied = {"entity": "sync_apply", "before": {"description": "secret"}, "after": {"description": "x"},
               "detail": {"table": "cpt_code", "target_customer": 3, "mode": "override"}}
    assert "secret" not in describe(applied) and "cpt_code" in describe(applied)


def test_only_local_paths_are_followed_after_sign_in():
    assert _safe_next("/accounts/1/sync") == "/accounts/1/sync"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert _safe_next(bad) is None


def test_times_are_new_york_times():
    import datetime as dt

    assert local("2026-03-08T06:30:00") == "2026-03-08 01:30 EST"
    assert local("2026-07-01T12:00:00Z") == "2026-07-01 08:00 EDT"
    assert day_start_utc(dt.date(2026, 7, 1)) == dt.datetime(2026, 7, 1, 4, 0)
