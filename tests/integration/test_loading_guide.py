"""docs/loading.md is executed: every fenced code block runs, in order, against real packages
(a full package and the next day's incremental one, in each format, made by the real
pipeline), and what each section leaves behind (MariaDB databases, DuckDB files, DataFrames,
Arrow tables, Spark output) must equal the source database. Plus the incremental invariant
for Parquet (contract 5): the first incremental package with the next one applied equals
the next full package, row for row and type for type."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS, dataset
from snapsync.schemas.schedule import parse_instant
from snapsync.seed import HARD_MONEY, HARD_TEXTS
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.conftest import settings_for
from tests.integration.pipeline import customer_rows, running_pipeline

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "loading.md"
ENCRYPTED_SECTION = "Encrypted packages"
C1 = dt.datetime(2026, 3, 8, 5, 0)  # 2026-03-08 00:00 New York
C2 = dt.datetime(2026, 3, 9, 4, 0)  # 2026-03-09 00:00 New York
CUSTOMERS = [1, 2, 3]
FORMATS = ("dat", "mysql", "parquet")
#: per incremental table: a text column changed to hard values (and whether it may be NULL / its length)
TEXT_COLUMN = {"patient": ("notes", True, 200), "activity": ("detail", True, 200), "charge": ("modifiers", True, 11),
               "credit": ("adjustment_code", True, 10), "claim_institutional": ("drg_code", True, 4),
               "claim_professional": ("status", False, 20)}
MONEY_COLUMN = {"patient": "balance", "charge": "amount", "credit": "amount", "claim_professional": "balance",
                "claim_institutional": "total_charge"}
HARD = [*HARD_TEXTS, "C:\\new\\temp", "C:\\\\new\\\\temp", "\\t", "\\"]


def history(s, rng: random.Random, day: str, n: int) -> None:
    """Updates to hard text and boundary decimals, inserts, rows inserted and deleted in the
    window, deletes: at random times of ``day`` (New York)."""
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        for i in range(n):
            at = parse_instant(f"{day}T{rng.randrange(1, 23):02d}:{rng.randrange(60):02d}")
            cur.execute("SET TIMESTAMP = %s", (int(at.timestamp()),))
            table = list(TEXT_COLUMN)[i % len(TEXT_COLUMN)]
            cur.execute(f"SELECT id FROM `{table}` ORDER BY id")
            ids = [r[0] for r in cur.fetchall()]
            kind = rng.random()
            if kind < 0.5:
                col, nullable, width = TEXT_COLUMN[table]
                value = rng.choice([v for v in HARD if (v is not None or nullable) and (v is None or len(v) <= width)])
                cur.execute(f"UPDATE `{table}` SET `{col}` = %s WHERE id = %s", (value, rng.choice(ids[:5])))
                if table in MONEY_COLUMN:
                    cur.execute(f"UPDATE `{table}` SET `{MONEY_COLUMN[table]}` = %s WHERE id = %s",
                                (rng.choice(HARD_MONEY), rng.choice(ids)))
            elif kind < 0.8:
                cols = ", ".join(f"`{c}`" for c in dataset(table).column_names if c != "id")
                cur.execute(f"INSERT INTO `{table}` ({cols}) SELECT {cols} FROM `{table}` WHERE id = %s",
                            (rng.choice(ids),))
                if rng.random() < 0.3:
                    cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (cur.lastrowid,))
            elif table != "patient":  # patients have children with foreign keys
                cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (rng.choice(ids[5:]),))
        cur.execute("SET TIMESTAMP = DEFAULT")
    time.sleep(1.5)  # a heartbeat after the history, so the watermark covers it


@pytest.fixture(scope="module")
def packages(base_settings, tmp_path_factory):
    """The pipeline's packages per format: day1 (full, as of C1), first (the first incremental
    delivery, C1), day2 (incremental, C2) and after (full, after day2's changes)."""
    root = tmp_path_factory.mktemp("guide")
    with running_pipeline(base_settings, root, "guide", customers=3, seed_value=21) as (s, _log, _workers):
        made: dict[tuple[str, str], Path] = {}

        def export(fmt, name, **kw):
            r = export_snapshot(s, ExportRequest(CUSTOMERS, fmt, "combined", watermark_timeout=120, **kw),
                                root / f"{fmt}-{name}")
            made[(fmt, name)] = r.path / "combined"

        for fmt in FORMATS:
            export(fmt, "day1")
            export(fmt, "first", kind="incremental", cutoff=C1, keep=2)  # the folder's first delivery
        history(s, random.Random(15), "2026-03-08", 150)
        for fmt in FORMATS:
            r = export_snapshot(s, ExportRequest(CUSTOMERS, fmt, "combined", kind="incremental", cutoff=C2,
                                                 watermark_timeout=120, keep=2), root / f"{fmt}-first")
            made[(fmt, "day2")] = r.path / "combined"
            export(fmt, "after")
        yield s, made, root


def _sorted(rows, key=lambda r: r[0]):
    return sorted(rows, key=key)


def _source(s, table: str) -> list[tuple]:
    return customer_rows(s, table, CUSTOMERS)


# --- the Parquet incremental invariant ---------------------------------------------------------
def _apply_arrow(tables: dict, folder: Path) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = json.loads((folder / "manifest.json").read_text())
    for d in manifest["datasets"]:
        new = pq.read_table(folder / d["file"])
        if "_op" not in new.column_names:
            tables[d["table"]] = new
            continue
        old = tables.get(d["table"])
        changed = set(new.column("id").to_pylist())
        kept = [] if old is None else [r for r in old.to_pylist() if r["id"] not in changed]
        upserts = new.filter(pc.equal(new["_op"], "U")).drop_columns(["_op"]).to_pylist()
        schema = old.schema if old is not None else pq.read_schema(folder / d["file"]).remove(0)
        tables[d["table"]] = pa.Table.from_pylist(_sorted(kept + upserts, lambda r: r["id"]), schema=schema)
    return tables


def test_parquet_first_incremental_plus_next_equals_the_next_full_package(packages):
    import pyarrow.parquet as pq

    s, made, _root = packages
    day2 = json.loads((made[("parquet", "day2")] / "manifest.json").read_text())
    changes = {d["table"]: d["rows"] + d.get("deletes", 0) for d in day2["datasets"] if d["table"] in TEXT_COLUMN}
    assert all(changes.values()) and any(d.get("deletes") for d in day2["datasets"]), changes
    applied = _apply_arrow(_apply_arrow({}, made[("parquet", "first")]), made[("parquet", "day2")])
    for ds in DATASETS:
        full = pq.read_table(made[("parquet", "after")] / f"{ds.table}.parquet")
        mine = applied[ds.table]
        assert [f.type for f in mine.schema] == [f.type for f in full.schema], ds.table
        assert _sorted(mine.to_pylist(), lambda r: r["id"]) == full.to_pylist(), ds.table
        assert [tuple(r.values()) for r in full.to_pylist()] == _source(s, ds.table), ds.table


# --- the guide --------------------------------------------------------------------------------
def guide_blocks(text: str) -> list[tuple[str, str, str]]:
    """(section, language, code) of every fenced block, in order; section = the ``##`` heading."""
    blocks, section, lang, code = [], "", None, []
    for line in text.splitlines():
        if lang is None and line.startswith("## "):
            section = line[3:].strip()
        elif lang is None and line.startswith("```"):
            lang, code = line[3:].strip(), []
        elif lang is not None and line.startswith("```"):
            blocks.append((section, lang, "\n".join(code) + "\n"))
            lang = None
        elif lang is not None:
            code.append(line)
    assert lang is None, "an unclosed code block in docs/loading.md"
    return blocks


def _plain(v):
    import pandas as pd

    if v is None or v is pd.NA:
        return None
    return v.to_pydatetime() if isinstance(v, pd.Timestamp) else v


def _frame_rows(df) -> list[tuple]:
    return _sorted([tuple(_plain(v) for v in row) for row in df.itertuples(index=False)])


def _duckdb_rows(path: Path, table: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def test_every_snippet_of_the_loading_guide_runs_and_loads_the_source_rows(packages, base_settings, tmp_path,
                                                                           monkeypatch):
    import pyarrow.parquet as pq

    s, made, _root = packages
    work = tmp_path / "work"
    for fmt in FORMATS:
        for day in ("day1", "day2"):
            shutil.copytree(made[(fmt, day)], work / fmt / day)
    home = tmp_path / "home"
    home.mkdir()
    db = base_settings.db
    (home / ".my.cnf").write_text(f"[client]\nhost={db.host}\nport={db.port}\nuser={db.user}\nprotocol=TCP\n"
                                  "default-character-set=utf8mb4\n")
    with connect(db, database=False, autocommit=True) as conn:
        for name in ("bi", "bi_mysql"):
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    # (its encrypted-package section runs against sealed packages: tests/integration/test_sealed_packages.py)
    blocks = [b for b in guide_blocks(GUIDE.read_text()) if b[0] != ENCRYPTED_SECTION]
    assert {lang for _s, lang, _c in blocks} == {"python", "sh", "sql"}, "a block this test cannot run"
    sessions: dict[str, dict] = {}
    for i, (section, lang, code) in enumerate(blocks):
        where = f"docs/loading.md block {i + 1} ({section}, {lang})"
        if lang == "sh":
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True)
            assert r.returncode == 0, f"{where}: {r.stderr[-2000:]}"
        elif lang == "sql":
            m = re.match(r"-- run with: (mariadb [^<]+) < this\.sql", code)
            assert m, f"{where}: an SQL block starts with '-- run with: mariadb ... < this.sql'"
            r = subprocess.run(m.group(1).split(), input=code, capture_output=True, text=True)
            assert r.returncode == 0, f"{where}: {r.stderr[-2000:]}"
        else:
            exec(compile(code, where, "exec"), sessions.setdefault(section, {"__name__": "guide"}))  # noqa: S102
    ran = {section for section, _l, _c in blocks}
    assert ran >= {"What a package holds", "MariaDB / MySQL", "DuckDB", "pandas", "pyarrow", "Spark"}

    assert sessions["What a package holds"]["changed"] == []
    sessions["DuckDB"]["con"].close()  # the guide's session keeps bi_dat.duckdb open
    for ds in DATASETS:
        want = _source(s, ds.table)
        for database in ("bi", "bi_mysql"):
            assert customer_rows(settings_for(base_settings, database), ds.table, CUSTOMERS) == want, (database, ds.table)
        for duck in ("bi.duckdb", "bi_dat.duckdb"):
            assert _duckdb_rows(work / duck, ds.table) == want, (duck, ds.table)
        for name in ("tables", "dat_tables"):
            assert _frame_rows(sessions["pandas"][name][ds.table]) == want, ("pandas", name, ds.table)
            arrow = sessions["pyarrow"][name][ds.table]
            assert _sorted(tuple(r.values()) for r in arrow.to_pylist()) == want, ("pyarrow", name, ds.table)
    for table in ("patient", "charge", "credit"):
        rows = pq.read_table(work / "spark-warehouse" / table).to_pylist()
        assert _sorted(tuple(r.values()) for r in rows) == _source(s, table), ("spark", table)
    # the types the guide promises
    frame = sessions["pandas"]["tables"]["patient"]
    assert str(frame.dtypes["balance"]) == "decimal128(12, 2)[pyarrow]" and str(frame.dtypes["zip"]) == "string[pyarrow]"
    assert str(sessions["pandas"]["dat_tables"]["patient"].dtypes["balance"]) == "decimal128(12, 2)[pyarrow]"
    sessions["Spark"]["spark"].stop()
    os.chdir(tmp_path)
