"""Full snapshot packages judged by real clients: LOAD DATA, the mariadb client,
INTO OUTFILE, DuckDB and pandas."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS, dataset
from snapsync.seed import HARD_TEXTS
from snapsync.sinks.delivery import current_delivery
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.formats.dat import LOAD_DATA_OPTIONS
from tests.conftest import db_env, new_database, settings_for
from tests.integration.pipeline import customer_rows, empty_database

BIN = str(Path(sys.executable).with_name("snapsync"))


PATHS = pytest.mark.parametrize("server_side", [True, False], ids=["server-writes", "client-stream"])


@PATHS
def test_dat_load_data_round_trip_is_exact_for_every_data_set(seeded_db, tmp_path, server_side):
    customers = [1, 2, 3]
    result = export_snapshot(seeded_db, ExportRequest(customers, "dat", "combined", server_side=server_side),
                             tmp_path / "out")
    pkg = result.path / "combined"
    target = empty_database(seeded_db, seeded_db.db.database + f"_load{int(server_side)}")
    with connect(target.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(ds.ddl(with_foreign_keys=False))
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{ds.table}` {LOAD_DATA_OPTIONS}",
                        (str(pkg / f"{ds.table}.DAT"),))
            cur.execute("SHOW COUNT(*) WARNINGS")
            assert cur.fetchone()[0] == 0, ds.table
        conn.commit()
    for ds in DATASETS:
        assert customer_rows(target, ds.table, customers) == customer_rows(seeded_db, ds.table, customers), ds.table
    notes = [r[-3] for r in customer_rows(target, "patient", [1])][: len(HARD_TEXTS)]
    assert notes == list(HARD_TEXTS)  # TAB, LF, CR, NUL, backslash, NULL vs '' and emoji all exact


def test_fast_path_is_used_on_the_local_server(seeded_db, tmp_path):
    from snapsync.sinks.server_side import server_can_write

    assert server_can_write(seeded_db.db, tmp_path)


def test_dat_is_what_into_outfile_prints_except_tab_and_newline(seeded_db, tmp_path):
    """Byte-identical to SELECT ... INTO OUTFILE, except where a value holds TAB, LF or CR
    (INTO OUTFILE writes those raw, splitting the row across lines; we escape them)."""
    result = export_snapshot(seeded_db, ExportRequest([2], "dat", "per-customer"), tmp_path / "out")
    identical = 0
    with connect(seeded_db.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            outfile = tmp_path / f"{ds.table}.outfile"
            os.chmod(tmp_path, 0o777)
            cur.execute(f"SELECT * FROM `{ds.table}` WHERE customer_id = 2 ORDER BY id INTO OUTFILE %s",
                        (str(outfile),))
            theirs = outfile.read_bytes()
            ours = (result.path / "customer-2" / f"{ds.table}.DAT").read_bytes().split(b"\n", 1)[1]
            if ours == theirs:
                identical += 1
                continue
            # Only a value with TAB, LF or CR may make them differ; ours stays one row per line.
            assert any(e in ours for e in (b"\\t", b"\\n", b"\\r")), ds.table
            assert len(ours.splitlines()) == len(customer_rows(seeded_db, ds.table, [2])), ds.table
    assert identical >= len(DATASETS) - 6


def test_duckdb_and_pandas_read_the_files(seeded_db, tmp_path):
    import duckdb
    import pandas as pd

    result = export_snapshot(seeded_db, ExportRequest([1, 2, 3], "dat", "combined"), tmp_path / "out")
    path = result.path / "combined" / "charge.DAT"
    expected = customer_rows(seeded_db, "charge", [1, 2, 3])
    # The one-liners documented in docs/snapshots.md:
    df = duckdb.sql(f"SELECT * FROM read_csv('{path}', delim='\\t', quote='', escape='', header=true, "
                    "nullstr='\\N', auto_detect=true)").df()
    pdf = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, na_values=["\\N"], keep_default_na=False,
                      dtype=str)
    for frame in (df, pdf):
        assert len(frame) == len(expected)
        assert list(frame.columns) == [d[0] for d in _description(seeded_db, "charge")]
    assert [str(x) for x in pdf["amount"]] == [str(r[10]) for r in expected]
    assert [int(x) for x in df["id"]] == [r[0] for r in expected]


def _description(settings, table):
    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{table}` LIMIT 0")
        return cur.description


@PATHS
def test_mysql_format_loads_with_the_mariadb_client(seeded_db, tmp_path, server_side):
    customers = [1, 3]
    result = export_snapshot(seeded_db, ExportRequest(customers, "mysql", "combined", server_side=server_side),
                             tmp_path / "out")
    sql = result.path / "combined" / "snapshot.sql"
    target = empty_database(seeded_db, seeded_db.db.database + f"_sql{int(server_side)}")
    db = target.db
    r = subprocess.run(["mariadb", f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP",
                        "--default-character-set=utf8mb4", db.database], stdin=open(sql, "rb"),
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    ref = empty_database(seeded_db, seeded_db.db.database + f"_ref{int(server_side)}")
    with connect(ref.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(ds.ddl(with_foreign_keys=False))
            cur.execute(f"INSERT INTO `{ds.table}` SELECT * FROM `{seeded_db.db.database}`.`{ds.table}` "
                        f"WHERE customer_id IN (1, 3)")
        conn.commit()
        names = ", ".join(f"`{d.table}`" for d in DATASETS)
        cur.execute(f"CHECKSUM TABLE {names}")
        want = {n.split(".")[-1]: v for n, v in cur.fetchall()}
    with connect(target.db) as conn:
        cur = conn.cursor()
        cur.execute(f"CHECKSUM TABLE {', '.join(f'`{d.table}`' for d in DATASETS)}")
        got = {n.split(".")[-1]: v for n, v in cur.fetchall()}
    assert got == want
    for ds in DATASETS:
        assert customer_rows(target, ds.table, customers) == customer_rows(seeded_db, ds.table, customers), ds.table


def _dat_customer_ids(path: Path) -> list[int]:
    lines = path.read_bytes().split(b"\n")[1:-1]
    return [int(line.split(b"\t", 2)[1]) for line in lines]


def test_tenant_isolation_over_random_selections(seeded_db, tmp_path):
    rng = random.Random(11)
    counts = {}
    with connect(seeded_db.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(f"SELECT customer_id, COUNT(*) FROM `{ds.table}` GROUP BY customer_id")
            counts[ds.table] = dict(cur.fetchall())
    for i in range(6):
        customers = sorted(rng.sample([1, 2, 3], rng.randint(1, 3)))
        packaging = rng.choice(["per-customer", "combined"])
        result = export_snapshot(seeded_db, ExportRequest(customers, "dat", packaging, server_side=i % 2 == 0),
                                 tmp_path / f"o{i}")
        groups = {"combined": customers} if packaging == "combined" else {f"customer-{c}": [c] for c in customers}
        assert sorted(p.name for p in result.path.iterdir()) == sorted(groups)
        for pkg, members in groups.items():
            for ds in DATASETS:
                ids = _dat_customer_ids(result.path / pkg / f"{ds.table}.DAT")
                assert set(ids) <= set(members), (pkg, ds.table)
                assert len(ids) == sum(counts[ds.table].get(c, 0) for c in members), (pkg, ds.table)


def test_manifest_checksums_permissions_and_zip(seeded_db, tmp_path):
    result = export_snapshot(seeded_db, ExportRequest([1, 2], "dat", "per-customer"), tmp_path / "out")
    for pkg in ("customer-1", "customer-2"):
        folder = result.path / pkg
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["customers"] == [int(pkg.split("-")[1])] and manifest["kind"] == "full"
        assert manifest["source_position"]["file"].startswith("binlog.") and manifest["as_of_utc"]
        assert {d["table"] for d in manifest["datasets"]} == {d.table for d in DATASETS}
        for f in manifest["files"]:
            assert hashlib.sha256((folder / f["file"]).read_bytes()).hexdigest() == f["sha256"]
        for p in folder.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    z = export_snapshot(seeded_db, ExportRequest([1], "mysql", "combined", container="zip"), tmp_path / "z")
    import zipfile

    archive = z.path / "combined.zip"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "schema.sql", "snapshot.sql"]


def test_sample_is_first_five_rows_of_each_data_set(seeded_db, tmp_path, cli_env):
    env = {**cli_env, **db_env(seeded_db)}
    r = subprocess.run([BIN, "snapshot", "sample", "--customers", "2", "--out", str(tmp_path / "s"), "--json"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    folder = Path(json.loads(r.stdout)["path"]) / "customer-2"
    for ds in DATASETS:
        ids = [int(line.split(b"\t", 1)[0]) for line in (folder / f"{ds.table}.DAT").read_bytes().split(b"\n")[1:-1]]
        want = [row[0] for row in customer_rows(seeded_db, ds.table, [2])[:5]]
        assert ids == want, ds.table
    assert json.loads((folder / "manifest.json").read_text())["kind"] == "sample"


def test_killed_delivery_leaves_the_previous_one_readable(base_settings, tmp_path, cli_env, monkeypatch):
    from snapsync.seed import seed

    monkeypatch.setattr("snapsync.sinks.delivery.GRACE", 0.0)  # no grace period: replaced means gone

    s = settings_for(base_settings, "killdelivery")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.05, seed_value=3)
    out = tmp_path / "out"
    first = export_snapshot(s, ExportRequest([1, 2, 3], "dat", "per-customer"), out)
    manifest = json.loads((out / "current" / "customer-1" / "manifest.json").read_text())
    env = {**cli_env, **db_env(s)}
    killed = False
    for _attempt in range(5):
        proc = subprocess.Popen([BIN, "snapshot", "export", "--customers", "1,2,3", "--out", str(out),
                                 "--format", "mysql"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            staging = list(out.glob(".staging-*/*/*"))
            if staging:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
        proc.wait()
        if killed:
            break
    assert killed, "the export finished before it could be killed"
    # the previous delivery is still current and whole
    assert current_delivery(out) == first.path
    for f in manifest["files"]:
        assert hashlib.sha256((out / "current" / "customer-1" / f["file"]).read_bytes()).hexdigest() == f["sha256"]
    # the next run cleans the half-written staging folder and replaces the delivery
    second = export_snapshot(s, ExportRequest([1, 2, 3], "dat", "per-customer"), out)
    assert current_delivery(out) == second.path and not list(out.glob(".staging-*"))
    assert [p.name for p in (out / "deliveries").iterdir()] == [second.path.name]  # keep=1 replaces


def test_bad_export_requests_are_refused(seeded_db, base_settings, tmp_path):
    from snapsync.schemas.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown customer"):
        export_snapshot(seeded_db, ExportRequest([1, 42]), tmp_path)
    with pytest.raises(ConfigError, match="no customers"):
        export_snapshot(seeded_db, ExportRequest([]), tmp_path)


@PATHS
def test_per_customer_reads_are_exact_when_customers_interleave(base_settings, tmp_path, server_side):
    """Customers whose rows form a key range of their own are read through the clustered
    index; others through their customer index. Interleave the rows (new rows of customer 1
    after customer 2's, a customer 3 row inside customer 2's range) and every package still
    holds exactly its customer's rows."""
    from snapsync.seed import seed

    s = settings_for(base_settings, f"interleave{int(server_side)}")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.01, seed_value=4)
        cur = conn.cursor()
        cols = ", ".join(f"`{c}`" for c in dataset("charge").column_names if c != "id")
        for customer in (1, 3, 1):
            cur.execute(f"INSERT INTO charge ({cols}) SELECT {cols.replace('`customer_id`', str(customer))} "
                        f"FROM charge WHERE customer_id = 2 ORDER BY id LIMIT 5")
        conn.commit()
    result = export_snapshot(s, ExportRequest([1, 2, 3], "dat", "per-customer", server_side=server_side),
                             tmp_path / "out")
    for customer in (1, 2, 3):
        for ds in DATASETS:
            lines = (result.path / f"customer-{customer}" / f"{ds.table}.DAT").read_bytes().split(b"\n")[1:-1]
            ids = [int(line.split(b"\t", 1)[0]) for line in lines]
            assert ids == [r[0] for r in customer_rows(s, ds.table, [customer])], (customer, ds.table)


def test_the_remote_paths_sessions_read_one_snapshot_while_writers_commit(seeded_db, tmp_path):
    """The client path reads in two sessions; a writer commits all the time, each transaction
    changing a row of two tables that different sessions read. Every package must show both
    rows from the same transaction: the sessions saw one snapshot (or, when a commit kept
    landing between them, one session read everything)."""
    import threading

    s = seeded_db
    stop = threading.Event()
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT MIN(id) FROM patient WHERE customer_id = 1")
        patient = cur.fetchone()[0]
        cur.execute("SELECT MIN(id) FROM cpt_code WHERE customer_id = 1")
        code = cur.fetchone()[0]

    def writer():
        n = 0
        with connect(s.db) as conn:
            cur = conn.cursor()
            while not stop.is_set():
                n += 1
                cur.execute("UPDATE patient SET city = %s WHERE id = %s", (f"n{n}", patient))
                cur.execute("UPDATE cpt_code SET description = %s WHERE id = %s", (f"n{n}", code))
                conn.commit()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for i in range(6):
            result = export_snapshot(s, ExportRequest([1], "dat", "combined", server_side=False), tmp_path / f"o{i}")
            pkg = result.path / "combined"
            city = next(line.split("\t") for line in (pkg / "patient.DAT").read_text().splitlines()
                        if line.split("\t")[0] == str(patient))
            desc = next(line.split("\t") for line in (pkg / "cpt_code.DAT").read_text().splitlines()
                        if line.split("\t")[0] == str(code))
            assert f"\t{[c for c in city if c.startswith('n') and c[1:].isdigit()][0]}" in "\t" + "\t".join(desc)
    finally:
        stop.set()
        t.join(10)
