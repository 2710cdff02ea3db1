"""Deliveries under stress: two exports into one folder at once, folders the product did
not make, a reader still copying the replaced delivery, and bad --out values. On the main of
2026-11-24 two exports raced (FileNotFoundError, or `current` on a pruned folder), pruning
deleted foreign folders, keep 1 deleted the delivery a reader was copying, `--out ''` made
the working folder 0700, and a --out under a file gave a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.seed import seed
from snapsync.sinks.delivery import LEDGER, current_delivery
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.conftest import db_env, new_database, settings_for

BIN = str(Path(sys.executable).with_name("snapsync"))


@pytest.fixture(scope="module")
def db(base_settings):
    s = settings_for(base_settings, "hostile_deliveries")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.02, seed_value=8)
    return s


def test_two_exports_into_one_folder_both_deliver_whole(db, tmp_path):
    out = tmp_path / "out"
    results, errors = [], []

    def run(fmt):
        try:
            results.append(export_snapshot(db, ExportRequest([1, 2, 3], fmt, "per-customer", grace=3600), out))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in ("dat", "mysql", "dat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(results) == 3
    current = current_delivery(out)
    assert current in {r.path for r in results} and current.is_dir()
    for r in results:  # each delivery whole (the grace period keeps the replaced ones)
        for pkg in r.packages:
            for f in pkg["files"]:
                assert (r.path / pkg["package"] / f["file"]).stat().st_size == f["bytes"]
    assert not list(out.glob(".staging-*"))


def test_pruning_keeps_foreign_folders_and_the_grace_period(db, tmp_path):
    out = tmp_path / "out"
    foreign = out / "deliveries" / "my-own-notes"
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("not snapsync's")
    first = export_snapshot(db, ExportRequest([1], "dat", grace=3600), out)
    second = export_snapshot(db, ExportRequest([1], "dat", grace=3600), out)
    # replaced a moment ago: a reader who resolved `current` before the switch can finish
    assert current_delivery(out) == second.path and first.path.is_dir()
    third = export_snapshot(db, ExportRequest([1], "dat", grace=0), out)
    assert current_delivery(out) == third.path and not first.path.exists() and not second.path.exists()
    assert (foreign / "keep.txt").read_text() == "not snapsync's"  # never the product's to delete
    assert stat.S_IMODE((out / LEDGER).stat().st_mode) == 0o600


def test_server_written_files_are_private(db, tmp_path):
    out = tmp_path / "out"
    r = export_snapshot(db, ExportRequest([1], "dat"), out)
    for path in r.path.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


@pytest.mark.parametrize("case", ["empty", "a file", "under a file", "not writable"])
def test_bad_out_is_a_clear_error(db, tmp_path, cli_env, case):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    mode_before = stat.S_IMODE(cwd.stat().st_mode)
    afile = tmp_path / "afile"
    afile.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = {"empty": "", "a file": str(afile), "under a file": str(afile / "sub"),
           "not writable": str(locked / "sub")}[case]
    env = {**cli_env, **db_env(db)}
    if case == "not writable" and os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    r = subprocess.run([BIN, "snapshot", "export", "--customers", "1", "--out", out], cwd=cwd, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "delivery folder" in r.stderr
    assert stat.S_IMODE(cwd.stat().st_mode) == mode_before and not (cwd / "deliveries").exists()


def test_downloads_and_deliveries_never_follow_a_link_out_of_the_account(db, tmp_path, caplog):
    """Issue 24, case 6: on its main a link placed in a delivery put another account's package
    or a host file into the download, and a linked folder took another account's writes."""
    from snapsync.schemas.errors import ConfigError
    from snapsync.sinks.archive import package_files, read_current, zip_stream

    home = tmp_path / "home" / "deliveries"
    mine, theirs = home / "account-1", home / "account-2"
    export_snapshot(db, ExportRequest([1], "dat"), mine)
    export_snapshot(db, ExportRequest([2], "dat"), theirs)
    current, other = current_delivery(mine), current_delivery(theirs)
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOSTSECRET")
    os.symlink(other / "customer-2" / "patient.DAT", current / "customer-1" / "extra.DAT")
    os.symlink(secret, current / "customer-1" / "host.txt")
    os.symlink(other / "customer-2", current / "customer-1" / "more")
    os.symlink(other / "customer-2", current / "customer-2")  # a whole package that is a link
    (other / "customer-2" / "patient.DAT").read_bytes()  # (the link targets exist)
    caplog.set_level("WARNING")
    delivery = read_current(mine)
    assert [p.name for p in delivery.packages] == ["customer-1"]
    files = package_files(delivery.packages)
    names = [n for n, _fh in files]
    content = b"".join(zip_stream(files))
    assert names and all(n.startswith("customer-1/") for n in names)
    assert not {"customer-1/extra.DAT", "customer-1/host.txt"} & set(names)
    assert not any(n.startswith("customer-1/more/") for n in names)
    assert b"HOSTSECRET" not in content
    assert "refused" in caplog.text and "link" in caplog.text
    # `current` itself pointing out of the account's deliveries: no delivery at all
    (mine / "current").unlink()
    os.symlink(os.path.relpath(other, mine), mine / "current")
    assert read_current(mine) is None
    # a linked deliveries folder never takes an export's files
    third = home / "account-3"
    third.mkdir()
    os.symlink(theirs / "deliveries", third / "deliveries")
    before = sorted(p.name for p in (theirs / "deliveries").iterdir())
    with pytest.raises(ConfigError, match="symbolic link"):
        export_snapshot(db, ExportRequest([3], "dat"), third)
    assert sorted(p.name for p in (theirs / "deliveries").iterdir()) == before
