"""Incremental packages (docs/contracts.md, contract 5): the package as of C1 with the incremental
package for (C1, C2] applied equals the database as of C2 (quiet), for every data set,
both formats, both packagings, over random histories placed on days with SET TIMESTAMP,
with the worker killed (-9) in the middle of the second window. Plus the watermark."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS, dataset
from snapsync.schemas.errors import RetriableError
from snapsync.schemas.schedule import parse_instant
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.formats.dat import LOAD_DATA_OPTIONS
from tests.integration.pipeline import (CAPTURES, capture_args, customer_rows, empty_database, running_pipeline,
                                       start_worker, stop)

C1 = dt.datetime(2026, 3, 8, 5, 0)  # 2026-03-08 00:00 New York
C2 = dt.datetime(2026, 3, 9, 4, 0)  # 2026-03-09 00:00 New York (after the 23-hour day)
COMBOS = [("dat", "combined"), ("dat", "per-customer"), ("mysql", "combined"), ("mysql", "per-customer")]
CHANGED = ("patient", "claim_professional", "claim_institutional", "charge", "credit", "activity")


def ts(text: str) -> int:
    return int(parse_instant(text).timestamp())


def history(s, rng: random.Random, day: str, n: int, on_half=None) -> None:
    """Random inserts, updates (some rows many times) and deletes, including rows created
    and deleted inside the window, at random times of ``day`` (New York)."""
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        for i in range(n):
            if on_half and i == n // 2:
                on_half()
            cur.execute("SET TIMESTAMP = %s", (ts(f"{day}T{rng.randrange(1, 23):02d}:{rng.randrange(60):02d}"),))
            table = rng.choice(CHANGED)
            ds = dataset(table)
            cur.execute(f"SELECT id FROM `{table}` ORDER BY id")
            ids = [r[0] for r in cur.fetchall()]
            kind = rng.random()
            hot = ids[: 3]  # rows changed many times
            if kind < 0.45:
                target = rng.choice(hot if rng.random() < 0.4 else ids)
                col = {"patient": "first_name", "claim_professional": "status", "claim_institutional": "status",
                       "charge": "modifiers", "credit": "adjustment_code", "activity": "username"}[table]
                cur.execute(f"UPDATE `{table}` SET `{col}` = %s WHERE id = %s", (f"v{i}\t✓"[:8], target))
            elif kind < 0.75:
                cols = ", ".join(f"`{c}`" for c in ds.column_names if c != "id")
                cur.execute(f"INSERT INTO `{table}` ({cols}) SELECT {cols} FROM `{table}` WHERE id = %s",
                            (rng.choice(ids),))
                if rng.random() < 0.3:  # created and deleted inside one window
                    cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (cur.lastrowid,))
            elif table != "patient":  # patients have children with foreign keys
                cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (rng.choice(ids[3:]),))
        cur.execute("SET TIMESTAMP = DEFAULT")
    # The heartbeats carry the real clock, already past these back-dated days: let one be
    # written after the history, so the watermark covers it (in production, commits after a
    # heartbeat are later than it).
    import time

    time.sleep(1.5)


def apply_package(target, folder) -> None:
    """Load (or apply on top) one package the way a user would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest["format"] == "mysql":
        db = target.db
        r = subprocess.run(["mariadb", f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP",
                            "--default-character-set=utf8mb4", db.database],
                           stdin=open(folder / "snapshot.sql", "rb"), capture_output=True)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        return
    with connect(target.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            path = folder / f"{ds.table}.DAT"
            cur.execute(ds.ddl(with_foreign_keys=False, if_not_exists=True))
            if path.read_bytes().startswith(b"_op\t"):  # changes: upserts and deletes
                cols = ", ".join(f"`{c}`" for c in ds.column_names)
                cur.execute(f"CREATE TABLE `tmp_{ds.table}` (`_op` CHAR(1), "
                            + ", ".join(c.ddl().replace(" NOT NULL", " NULL").replace(" AUTO_INCREMENT", "")
                                        for c in ds.columns) + ")")
                cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `tmp_{ds.table}` {LOAD_DATA_OPTIONS}", (str(path),))
                cur.execute(f"DELETE t FROM `{ds.table}` t JOIN `tmp_{ds.table}` x USING (id) WHERE x._op = 'D'")
                cur.execute(f"REPLACE INTO `{ds.table}` ({cols}) SELECT {cols} FROM `tmp_{ds.table}` WHERE _op = 'U'")
                cur.execute(f"DROP TABLE `tmp_{ds.table}`")
            else:  # full contents
                cur.execute(f"DELETE FROM `{ds.table}`")
                cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{ds.table}` {LOAD_DATA_OPTIONS}", (str(path),))
            cur.execute("SHOW COUNT(*) WARNINGS")
            assert cur.fetchone()[0] == 0, ds.table
        conn.commit()


@pytest.fixture(scope="module", params=CAPTURES)
def env(request, base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("inc"), f"incremental_{request.param}", customers=3,
                          seed_value=12, **capture_args(request)) as (s, log, workers):
        yield s, log, workers, tmp_path_factory.mktemp("deliveries")


def test_watermark_never_delivers_early(env):
    s, _log, workers, out = env
    future = dt.datetime.utcnow() + dt.timedelta(days=1)  # capture cannot have read that far
    with pytest.raises(RetriableError, match="never delivered early"):
        export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=future, watermark_timeout=2),
                        out / "early")
    assert not (out / "early" / "current").exists()
    # the deltas worker stopped: capture is past the cutoff, the staging is not
    stop(workers[0])
    with connect(s.db, autocommit=True) as conn:  # a change inside the window, not yet staged
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = %s", (ts("2026-03-07T20:00"),))
        cur.execute("UPDATE activity SET username = 'while the worker is down' WHERE id = 1")
    import time

    time.sleep(1.5)  # a heartbeat after it: capture has produced it, the worker has not staged it
    with pytest.raises(RetriableError, match="deltas worker is behind"):
        export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=C1, watermark_timeout=15),
                        out / "early")
    workers[0] = start_worker(s, _log)
    result = export_snapshot(s, ExportRequest([1], "dat", kind="incremental", cutoff=C1, watermark_timeout=60),
                             out / "early")
    assert json.loads((result.path / "customer-1" / "manifest.json").read_text())["kind"] == "incremental"


def test_full_as_of_c1_plus_incremental_equals_c2(env, base_settings):
    s, log, workers, out = env
    rng = random.Random(2026)
    history(s, rng, "2026-03-07", 120)
    first = {}
    for fmt, packaging in COMBOS:
        r = export_snapshot(s, ExportRequest([1, 2, 3], fmt, packaging, kind="incremental", cutoff=C1, keep=2),
                            out / f"{fmt}-{packaging}")
        first[(fmt, packaging)] = r.path
        m = json.loads(next(r.path.glob("*/manifest.json")).read_text())
        assert m["kind"] == "incremental" and sorted(m["full_for_customers"]) == [c for c in [1, 2, 3]
                                                                               if c in m["customers"]]

    def kill_and_restart():
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        workers[0] = start_worker(s, log)

    history(s, rng, "2026-03-08", 160, on_half=kill_and_restart)
    for fmt, packaging in COMBOS:
        second = export_snapshot(s, ExportRequest([1, 2, 3], fmt, packaging, kind="incremental", cutoff=C2, keep=2),
                                 out / f"{fmt}-{packaging}")
        manifests = [json.loads(p.read_text()) for p in second.path.glob("*/manifest.json")]
        assert all(m["full_for_customers"] == [] for m in manifests)  # only changes now
        changed = sum(d["rows"] + d.get("deletes", 0) for m in manifests for d in m["datasets"]
                      if d["table"] in CHANGED)
        assert 0 < changed < sum(len(customer_rows(s, t, [1, 2, 3])) for t in CHANGED)  # changes, not whole tables
        groups = {"combined": [1, 2, 3]} if packaging == "combined" else {f"customer-{c}": [c] for c in (1, 2, 3)}
        for pkg, members in groups.items():
            target = empty_database(base_settings, f"inc_{fmt}_{packaging.replace('-', '')}_{pkg.replace('-', '')}")
            apply_package(target, first[(fmt, packaging)] / pkg)
            apply_package(target, second.path / pkg)
            for ds in DATASETS:  # the database is quiet: its state is the state as of C2
                assert customer_rows(target, ds.table, members) == customer_rows(s, ds.table, members), (fmt, packaging, pkg, ds.table)


def test_scheduler_delivers_incremental_at_the_new_york_cutoff(env):
    from snapsync.control import snapshot_settings as settings_store
    from snapsync.sinks.scheduler import delivery_root, run_round

    s, _log, _workers, _out = env
    settings_store.configure(s, 1, customers=(1, 2, 3), format="dat", kind="incremental", packaging="combined")
    utc = dt.timezone.utc

    def current_manifest():
        return json.loads(next((delivery_root(s, 1) / "current").glob("*/manifest.json")).read_text())

    # 23:59 New York on 2026-10-31: that day's delivery (cutoff 00:00 EDT = 04:00 UTC) is due
    done = run_round(s, dt.datetime(2026, 11, 1, 3, 59, tzinfo=utc))
    assert [d["account_id"] for d in done] == [1] and done[0]["kind"] == "incremental"
    assert current_manifest()["cutoff_utc"] == "2026-10-31T04:00:00Z"
    assert sorted(current_manifest()["full_for_customers"]) == [1, 2, 3]  # the first incremental
    assert run_round(s, dt.datetime(2026, 11, 1, 3, 59, 30, tzinfo=utc)) == []  # once a day
    # 2026-11-01, the fall-back day: its cutoff is 00:00 EDT = 04:00 UTC
    done = run_round(s, dt.datetime(2026, 11, 1, 4, 0, tzinfo=utc))
    assert done and current_manifest()["cutoff_utc"] == "2026-11-01T04:00:00Z"
    assert current_manifest()["full_for_customers"] == []  # changes only now
    # 23:59 EST on 2026-11-01 (after the 25-hour day): nothing new is due
    assert run_round(s, dt.datetime(2026, 11, 2, 4, 59, tzinfo=utc)) == []
    done = run_round(s, dt.datetime(2026, 11, 2, 5, 0, tzinfo=utc))  # 00:00 EST = 05:00 UTC
    assert done and current_manifest()["cutoff_utc"] == "2026-11-02T05:00:00Z"


@pytest.mark.parametrize("fmt", ["mysql", "dat"])
def test_a_column_added_in_the_source_reaches_yesterdays_tables(env, base_settings, fmt):
    """Found by the soak: an incremental MySQL package after an ``ALTER TABLE ... ADD COLUMN``
    could not be applied on the tables of the package before (positional ``REPLACE ... VALUES``
    into a table without the column). Now ``schema.sql`` and the dump add a column the source
    added where it is missing, and changes go in by column name: both formats, loaded the
    loading guide's way, give the source's rows, the new column (added mid-table) included."""
    from snapsync.soak.oracle import Loader, source_rows

    s, _log, _workers, out = env
    c1, c2 = dt.datetime(2026, 5, 2, 4, 0), dt.datetime(2026, 5, 3, 4, 0)  # New York midnights (EDT)
    folder = out / f"added-column-{fmt}"
    first = export_snapshot(s, ExportRequest([1], fmt, kind="incremental", cutoff=c1), folder)
    target_db = empty_database(base_settings, f"inc_added_column_{fmt}").db
    loader = Loader(target_db)
    loader.apply(first.path / "customer-1")
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("ALTER TABLE activity ADD COLUMN soak_note VARCHAR(20) NULL AFTER username")
        try:
            cur.execute("SET TIMESTAMP = %s", (ts("2026-05-02T10:00"),))
            cur.execute("UPDATE activity SET soak_note = 'added', username = 'after the column' "
                        "WHERE customer_id = 1 ORDER BY id LIMIT 3")
            cur.execute("SET TIMESTAMP = DEFAULT")
            import time

            time.sleep(1.5)  # a heartbeat after the change
            second = export_snapshot(s, ExportRequest([1], fmt, kind="incremental", cutoff=c2), folder)
            manifest = json.loads((second.path / "customer-1" / "manifest.json").read_text())
            assert manifest["full_for_customers"] == []  # changes, on yesterday's tables
            loader.apply(second.path / "customer-1")
            assert loader.rows([1]) == source_rows(s.db, [1])
            cur.execute("SELECT id, soak_note FROM activity WHERE customer_id = 1 ORDER BY id")
            want = cur.fetchall()
        finally:
            cur.execute("ALTER TABLE activity DROP COLUMN soak_note")
    with connect(target_db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT id, soak_note FROM activity WHERE customer_id = 1 ORDER BY id")
        assert cur.fetchall() == want and sum(1 for _id, note in want if note == "added") == 3


def _fakes_of_customer_2(cur) -> dict[str, int]:
    counts = {}
    for table in CHANGED:
        cur.execute(f"SELECT COUNT(*) FROM `{table}` WHERE id > 1000000 AND customer_id = 2")
        counts[table] = cur.fetchone()[0]
    return counts


@pytest.mark.parametrize("fmt", ["mysql", "dat"])
def test_a_customer_sent_in_full_replaces_its_rows(env, base_settings, fmt):
    """Found by the soak: a customer in ``full_for_customers`` (the first package, or the first
    after the broker was lost) came as upserts only, so a row the user still had and the source
    no longer has stayed. The MySQL dump deletes the customer's rows first; the loading guide's
    way does the same for ``.DAT``; another customer's rows are left alone."""
    from snapsync.soak.oracle import Loader, source_rows

    s, _log, _workers, out = env
    target_db = empty_database(base_settings, f"inc_full_replaces_{fmt}").db
    loader = Loader(target_db)
    loader.apply(export_snapshot(s, ExportRequest([1, 2], fmt, "combined"), out / f"full-base-{fmt}").path
                 / "combined")
    with connect(target_db) as conn:  # rows the source does not have (deleted while the broker was gone)
        cur = conn.cursor()
        for table in CHANGED:
            cols = [c for c in dataset(table).column_names if c != "id"]
            for customer in (1, 2):
                cur.execute(f"INSERT INTO `{table}` (id, {', '.join(cols)}) SELECT id + 1000000, "
                            f"{', '.join(cols)} FROM `{table}` WHERE customer_id = %s ORDER BY id LIMIT 1", (customer,))
        conn.commit()
        kept = _fakes_of_customer_2(cur)
    result = export_snapshot(s, ExportRequest([1], fmt, "combined", kind="incremental",
                                              cutoff=dt.datetime(2026, 6, 1, 4, 0)), out / f"full-again-{fmt}")
    assert json.loads((result.path / "combined" / "manifest.json").read_text())["full_for_customers"] == [1]
    loader.apply(result.path / "combined")
    assert loader.rows([1]) == source_rows(s.db, [1])
    with connect(target_db) as conn:  # customer 2 is not in this package: its rows are left as they were
        cur = conn.cursor()
        assert _fakes_of_customer_2(cur) == kept
