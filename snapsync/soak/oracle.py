"""What the soak compares: the source's rows, a delivered package loaded the way a user loads
it, and what Data Sync's rules give.

* :func:`source_rows`: the catalog columns of every data set for some customers, ordered by
  primary key, values normalised so a MariaDB row and a Parquet row compare equal.
* :class:`Loader`: a package applied on a target schema as the loading guide says (``.DAT`` by
  ``LOAD DATA`` (full contents, or the ``_op`` changes on top), the MySQL dump by the
  ``mariadb`` client, Parquet read by pyarrow); incremental packages go on the one before.
* :func:`sync_violations`: per Data Sync group edge, the items the rules say the target must
  hold and does not (create-only: the item exists; override: it equals the source's, but for
  id, customer and the never-copied columns).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from decimal import Decimal
from pathlib import Path

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS, DataSet, dataset, sync_datasets
from snapsync.schemas.config import DatabaseTarget

Rows = dict[str, list[tuple]]  # table -> normalised rows, by primary key


def norm(value):
    """One spelling per value, whichever client read it."""
    if value is None or isinstance(value, (int, str, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def _select(cur, ds: DataSet, customers: list[int]) -> list[tuple]:
    cols = ", ".join(f"`{c}`" for c in ds.column_names)
    cur.execute(f"SELECT {cols} FROM `{ds.table}` WHERE customer_id IN ({','.join(['%s'] * len(customers))}) "
                f"ORDER BY {', '.join(f'`{c}`' for c in ds.primary_key)}", tuple(customers))
    return [tuple(norm(v) for v in row) for row in cur.fetchall()]


def source_rows(db: DatabaseTarget, customers: list[int]) -> Rows:
    """Every data set's rows of ``customers`` (one consistent read)."""
    with connect(db) as conn:
        cur = conn.cursor()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        rows = {ds.table: _select(cur, ds, customers) for ds in DATASETS}
        conn.commit()
    return rows


def differences(expected: Rows, got: Rows) -> list[str]:
    """The data sets whose rows differ, with counts (ids only: never values)."""
    out = []
    for table, want in expected.items():
        have = got.get(table, [])
        if want == have:
            continue
        pk = len(dataset(table).primary_key)
        w, h = {r[:pk]: r for r in want}, {r[:pk]: r for r in have}
        missing = [k for k in w if k not in h]
        extra = [k for k in h if k not in w]
        changed = [k for k in w if k in h and w[k] != h[k]]
        out.append(f"{table}: {len(missing)} missing, {len(extra)} extra, {len(changed)} different "
                   f"(e.g. ids {[k[0] for k in (missing + extra + changed)[:3]]})")
    return out


class Loader:
    """Packages applied on a target schema of the soak's server (``db``: that schema)."""

    def __init__(self, db: DatabaseTarget) -> None:
        self.db = db
        with connect(db, database=False) as conn:
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{db.database}`")
            cur.execute(f"CREATE DATABASE `{db.database}` CHARACTER SET utf8mb4")
            conn.commit()

    def apply(self, folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest["format"] == "mysql":
            self._client(folder / "snapshot.sql")
        elif manifest["format"] == "dat":
            self._dat(folder)
        else:
            raise ValueError(f"{manifest['format']} packages are read, not loaded (parquet_rows)")

    def rows(self, customers: list[int]) -> Rows:
        with connect(self.db) as conn:
            cur = conn.cursor()
            cur.execute("SHOW TABLES")
            present = {r[0] for r in cur.fetchall()}
            return {ds.table: _select(cur, ds, customers) if ds.table in present else [] for ds in DATASETS}

    def _client(self, path: Path) -> None:
        """``mariadb DB < path``, as a user runs it."""
        db = self.db
        with open(path, "rb") as sql:
            r = subprocess.run(["mariadb", f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP",
                                "--default-character-set=utf8mb4", db.database], stdin=sql, capture_output=True,
                               env={"MYSQL_PWD": db.password, "PATH": "/usr/bin:/bin"})
        if r.returncode != 0:  # the client's message names the statement's line, and may quote values
            code = r.stderr.decode(errors="replace").split(":")[0].strip()[:60]
            raise RuntimeError(f"the mariadb client refused {path.name}: {code}")

    def _dat(self, folder: Path) -> None:
        """The loading guide's way: ``schema.sql``, then ``LOAD DATA`` of each file (changes
        through a scratch table with the target's columns, all nullable)."""
        from snapsync.sinks.formats.dat import LOAD_DATA_OPTIONS

        self._client(folder / "schema.sql")
        full = json.loads((folder / "manifest.json").read_text()).get("full_for_customers", [])
        with connect(self.db) as conn:
            cur = conn.cursor()
            for ds in DATASETS:
                path = folder / f"{ds.table}.DAT"
                with open(path, "rb") as f:
                    header = f.readline().decode().rstrip("\n").split("\t")
                names = ", ".join(f"`{c}`" for c in header)
                if header[0] == "_op":  # changes: upserts and deletes
                    if full:  # these customers' rows come in full
                        cur.execute(f"DELETE FROM `{ds.table}` WHERE customer_id IN "
                                    f"({','.join(['%s'] * len(full))})", tuple(full))
                    cols = ", ".join(f"`{c}`" for c in header[1:])
                    cur.execute(f"CREATE TEMPORARY TABLE x AS SELECT CAST(NULL AS CHAR(1)) AS _op, t.* "
                                f"FROM (SELECT 1) AS one LEFT JOIN `{ds.table}` AS t ON FALSE")
                    cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE x {LOAD_DATA_OPTIONS} ({names})", (str(path),))
                    key = " AND ".join(f"t.`{c}` = x.`{c}`" for c in ds.primary_key)
                    cur.execute(f"DELETE t FROM `{ds.table}` AS t JOIN x ON {key} WHERE x._op = 'D'")
                    cur.execute(f"REPLACE INTO `{ds.table}` ({cols}) SELECT {cols} FROM x WHERE x._op = 'U'")
                    cur.execute("DROP TEMPORARY TABLE x")
                else:
                    cur.execute(f"DELETE FROM `{ds.table}`")
                    cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{ds.table}` {LOAD_DATA_OPTIONS} ({names})",
                                (str(path),))
                cur.execute("SHOW COUNT(*) WARNINGS")
                if cur.fetchone()[0]:
                    raise RuntimeError(f"LOAD DATA of {path.name} gave warnings")
            conn.commit()


def parquet_rows(folder: Path) -> Rows:
    """A Parquet package's rows, as pyarrow reads them."""
    import pyarrow.parquet as pq

    out: Rows = {}
    for ds in DATASETS:
        table = pq.read_table(folder / f"{ds.table}.parquet", columns=list(ds.column_names))
        rows = zip(*(table.column(c).to_pylist() for c in ds.column_names)) if table.num_rows else []
        out[ds.table] = sorted((tuple(norm(v) for v in r) for r in rows),
                               key=lambda r: r[:len(ds.primary_key)])
    return out


def sync_violations(db: DatabaseTarget, groups) -> list[str]:
    """Items a Data Sync target lacks (create-only) or holds different (override); empty when
    every group's rule holds on the current data. ``groups``: the enabled groups."""
    problems = []
    with connect(db) as conn:
        cur = conn.cursor()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        for g in groups:
            for category in g.categories:
                for ds in sync_datasets(category):
                    copied = [c for c in ds.column_names if c not in ("id", "customer_id", *ds.never_copied)]
                    nk = [copied.index(c) for c in ds.natural_key]
                    cols = ", ".join(f"`{c}`" for c in copied)

                    def items(customer: int) -> dict:
                        cur.execute(f"SELECT {cols} FROM `{ds.table}` WHERE customer_id = %s", (customer,))
                        return {tuple(r[i] for i in nk): tuple(norm(v) for v in r) for r in cur.fetchall()}

                    source = items(g.source_customer)
                    for target in g.targets:
                        have = items(target)
                        if g.mode == "override":
                            bad = sum(1 for k, v in source.items() if have.get(k) != v)
                        else:
                            bad = sum(1 for k in source if k not in have)
                        if bad:
                            problems.append(f"group {g.group_id} ({g.mode}) {ds.table}: {bad} item(s) of customer "
                                            f"{g.source_customer} not right in customer {target}")
        conn.commit()
    return problems
