"""Typed packages judged by the tools BI consumers use: a Parquet package read by pyarrow,
DuckDB and pandas equals the source rows value for value with the declared types; the DDL
of a .DAT package plus LOAD DATA reproduces the source tables; a schema change in the
source shows in the next manifests and travels in every format."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS, dataset
from snapsync.seed import HARD_MONEY, HARD_TEXTS
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.formats.dat import LOAD_DATA_OPTIONS
from snapsync.sinks.formats.parquet import arrow_schema
from tests.integration.pipeline import customer_rows, empty_database
from tests.conftest import db_env

BIN = str(Path(sys.executable).with_name("snapsync"))
CUSTOMERS = [1, 2, 3]
PATHS = pytest.mark.parametrize("server_side", [True, False], ids=["server-writes", "client-stream"])


def mariadb_client(target, sql_file: Path) -> None:
    """Load a .sql file with the command-line client, as a user would."""
    db = target.db
    r = subprocess.run(["mariadb", f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP",
                        "--default-character-set=utf8mb4", db.database], stdin=open(sql_file, "rb"),
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]


def _plain(v):
    """A value as Python compares it (pandas' missing markers are None)."""
    import pandas as pd

    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


@PATHS
def test_parquet_package_read_by_pyarrow_duckdb_and_pandas_equals_the_source(seeded_db, tmp_path, server_side):
    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    result = export_snapshot(seeded_db, ExportRequest(CUSTOMERS, "parquet", "combined", server_side=server_side),
                             tmp_path / "out")
    pkg = result.path / "combined"
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["format"] == "parquet" and manifest["ddl"] == "schema.sql"
    for ds in DATASETS:
        path = pkg / f"{ds.table}.parquet"
        want = customer_rows(seeded_db, ds.table, CUSTOMERS)
        # pyarrow: the declared schema, and every value equal to what the server holds
        table = pq.read_table(path)
        assert table.schema.equals(arrow_schema(ds)), ds.table
        assert [tuple(r.values()) for r in table.to_pylist()] == want, ds.table
        # DuckDB
        got = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY id").fetchall()
        assert got == want, ds.table
        # pandas with Arrow-backed types, as docs/loading.md says (its default turns a nullable
        # integer column into float64: exact only below 2**53)
        frame = pd.read_parquet(path, dtype_backend="pyarrow")
        assert [str(t.pyarrow_dtype) for t in frame.dtypes] == [str(f.type) for f in arrow_schema(ds)], ds.table
        assert [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False)] == want, ds.table
        assert manifest["datasets"][[d["table"] for d in manifest["datasets"]].index(ds.table)]["rows"] == len(want)
    # the hard cases, by name
    patients = pq.read_table(pkg / "patient.parquet").to_pylist()
    assert [p["notes"] for p in patients if p["customer_id"] == 1][: len(HARD_TEXTS)] == list(HARD_TEXTS)
    assert {str(p["balance"]) for p in patients} >= {m for m in HARD_MONEY}
    duck = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{pkg / 'patient.parquet'}')").fetchall()
    types = {name: t for name, t, *_ in duck}
    assert types["balance"] == "DECIMAL(12,2)" and types["date_of_birth"] == "DATE"
    assert types["created_at"] == "TIMESTAMP" and types["zip"] == "VARCHAR" and types["id"] == "UBIGINT"
    assert all(isinstance(p["balance"], Decimal) for p in patients)


def _column_types(s, table: str) -> list[tuple]:
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (table,))
        # the source's foreign keys bring indexes ('MUL') that packages leave out: compare the key
        return [(name, ctype, nullable, key == "PRI") for name, ctype, nullable, key in cur.fetchall()]


def test_the_live_schema_of_an_unchanged_source_is_the_catalog(seeded_db):
    """So the .DAT and .sql written from it are byte for byte what the catalog gave before."""
    from snapsync.sinks.source_schema import read_datasets

    with connect(seeded_db.db) as conn:
        assert read_datasets(conn, DATASETS) == DATASETS


def test_ddl_of_a_dat_package_plus_load_data_reproduces_the_source_tables(seeded_db, tmp_path):
    result = export_snapshot(seeded_db, ExportRequest(CUSTOMERS, "dat", "combined"), tmp_path / "out")
    pkg = result.path / "combined"
    target = empty_database(seeded_db, seeded_db.db.database + "_ddl")
    mariadb_client(target, pkg / "schema.sql")  # an empty database: the DDL alone creates every table
    with connect(target.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{ds.table}` {LOAD_DATA_OPTIONS}",
                        (str(pkg / f"{ds.table}.DAT"),))
            cur.execute("SHOW COUNT(*) WARNINGS")
            assert cur.fetchone()[0] == 0, ds.table
        conn.commit()
    for ds in DATASETS:
        assert _column_types(target, ds.table) == _column_types(seeded_db, ds.table), ds.table
        assert customer_rows(target, ds.table, CUSTOMERS) == customer_rows(seeded_db, ds.table, CUSTOMERS), ds.table
    manifest = json.loads((pkg / "manifest.json").read_text())
    for entry in manifest["datasets"]:
        assert entry["columns"] == dataset(entry["table"]).typed_columns()


def test_a_schema_change_in_the_source_shows_in_the_manifests_and_travels_in_every_format(seeded_db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    before = export_snapshot(seeded_db, ExportRequest([1], "parquet"), tmp_path / "before")
    photo = b"\x00\t\n\r\\\xff\xfe png"
    with connect(seeded_db.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("ALTER TABLE patient ADD COLUMN photo BLOB NULL, ADD COLUMN rating DECIMAL(5,1) NULL, "
                    "MODIFY middle_name VARCHAR(90) NULL")
        cur.execute("UPDATE patient SET photo = %s, rating = -12.5 WHERE id = 1", (photo,))
        cur.execute("UPDATE patient SET photo = '' WHERE id = 2")
    entries = {}
    for fmt in ("parquet", "dat", "mysql"):
        r = export_snapshot(seeded_db, ExportRequest([1], fmt), tmp_path / fmt)
        entries[fmt] = r.path / "customer-1"
    old = {d["table"]: d["columns"] for d in json.loads((before.path / "customer-1" / "manifest.json").read_text())
           ["datasets"]}
    for fmt, pkg in entries.items():
        new = {d["table"]: d["columns"] for d in json.loads((pkg / "manifest.json").read_text())["datasets"]}
        changed = {t for t in new if new[t] != old[t]}
        assert changed == {"patient"}, fmt
        added = [c for c in new["patient"] if c not in old["patient"]]
        assert added == [{"name": "middle_name", "type": "VARCHAR(90)", "nullable": True, "primary_key": False},
                         {"name": "photo", "type": "BLOB", "nullable": True, "primary_key": False},
                         {"name": "rating", "type": "DECIMAL(5,1)", "nullable": True, "primary_key": False}], fmt
    table = pq.read_table(entries["parquet"] / "patient.parquet")
    assert table.schema.field("photo").type == pa.binary() and table.schema.field("rating").type == pa.decimal128(5, 1)
    assert table.column("photo").to_pylist()[:3] == [photo, b"", None]
    assert [tuple(r.values()) for r in table.to_pylist()] == customer_rows(seeded_db, "patient", [1])
    # .DAT with its DDL, and the .sql, load into empty databases and give the source rows back
    for fmt in ("dat", "mysql"):
        target = empty_database(seeded_db, seeded_db.db.database + f"_alter_{fmt}")
        mariadb_client(target, entries[fmt] / ("schema.sql" if fmt == "dat" else "snapshot.sql"))
        if fmt == "dat":
            with connect(target.db) as conn:
                cur = conn.cursor()
                cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE patient {LOAD_DATA_OPTIONS}",
                            (str(entries[fmt] / "patient.DAT"),))
                conn.commit()
        assert customer_rows(target, "patient", [1]) == customer_rows(seeded_db, "patient", [1]), fmt


def test_parquet_sample_from_the_command_line(seeded_db, tmp_path, cli_env):
    import pyarrow.parquet as pq

    env = {**cli_env, **db_env(seeded_db)}
    r = subprocess.run([BIN, "snapshot", "sample", "--customers", "2", "--format", "parquet", "--out",
                        str(tmp_path / "s"), "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    folder = Path(json.loads(r.stdout)["path"]) / "customer-2"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "sample" and manifest["format"] == "parquet"
    for ds in DATASETS:
        rows = pq.read_table(folder / f"{ds.table}.parquet").to_pylist()
        assert [tuple(r.values()) for r in rows] == customer_rows(seeded_db, ds.table, [2])[:5], ds.table
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", "schema.sql", *(f"{d.table}.parquet" for d in DATASETS)])
    bad = subprocess.run([BIN, "snapshot", "sample", "--customers", "2", "--format", "xlsx", "--out",
                          str(tmp_path / "x")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "use dat, mysql, parquet" in bad.stderr
