"""The data sets as the source database has them at export time.

A package describes the columns its files really hold: their names, MySQL types,
nullability and primary key are read from the live source (``information_schema``), not
assumed from the catalog, so a schema change in the source (a new column, a wider
VARCHAR) travels into the files, the DDL and the typed manifest of the next delivery, and
comparing two manifests shows it. Types are spelled as the catalog spells them
(:func:`snapsync.schemas.types.canonical_type`): when nothing changed, the live data set
*is* the catalog's and every format writes exactly what it wrote before.
"""

from __future__ import annotations

import dataclasses
import logging

from snapsync.schemas.catalog import Column, DataSet
from snapsync.schemas.errors import FatalError
from snapsync.schemas.types import canonical_type

log = logging.getLogger("snapsync.export")


def read_datasets(conn, datasets: tuple[DataSet, ...]) -> tuple[DataSet, ...]:
    """``datasets`` with the columns and primary key the source's tables have now.

    Raises:
        FatalError: a table is missing, or lacks its primary key or tenant column (naming it).
    """
    tables = [d.table for d in datasets]
    marks = ",".join(["%s"] * len(tables))
    cur = conn.cursor()
    cur.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS "
                f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks}) ORDER BY TABLE_NAME, ORDINAL_POSITION",
                tables)
    columns: dict[str, list[Column]] = {}
    for table, name, ctype, nullable, extra in cur.fetchall():
        columns.setdefault(table, []).append(Column(name, canonical_type(ctype), nullable == "YES",
                                                    "auto_increment" in (extra or "").lower()))
    cur.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                f"AND INDEX_NAME = 'PRIMARY' AND TABLE_NAME IN ({marks}) ORDER BY TABLE_NAME, SEQ_IN_INDEX", tables)
    keys: dict[str, list[str]] = {}
    for table, name in cur.fetchall():
        keys.setdefault(table, []).append(name)
    conn.commit()
    return tuple(_live(ds, columns.get(ds.table), keys.get(ds.table)) for ds in datasets)


def _live(ds: DataSet, columns: list[Column] | None, key: list[str] | None) -> DataSet:
    if not columns:
        raise FatalError(f"the source has no table `{ds.table}` (data set {ds.name}): restore it, or run "
                         "`snapsync seed` to create the practice schema")
    if not key:
        raise FatalError(f"source table `{ds.table}` has no primary key: packages need one (incremental "
                         "deletes and the row order use it); restore it")
    names = {c.name for c in columns}
    if ds.tenant_column and ds.tenant_column not in names:
        raise FatalError(f"source table `{ds.table}` has no `{ds.tenant_column}` column: a package could not "
                         "be limited to its customers; restore the column")
    live = dataclasses.replace(
        ds, columns=tuple(columns), primary_key=tuple(key),
        natural_key=ds.natural_key if set(ds.natural_key) <= names else (),
        never_copied=tuple(c for c in ds.never_copied if c in names),
        indexes=tuple(i for i in ds.indexes if set(i) <= names),
        foreign_keys=tuple(f for f in ds.foreign_keys if set(f.columns) <= names))
    if live != ds:
        log.info("source table %s differs from the catalog; the package follows the source: %s", ds.table,
                 schema_diff(ds, live))
    return live


def schema_diff(old: DataSet, new: DataSet) -> str:
    """Column names added, removed or changed (type, nullability, key), for messages."""
    before = {c["name"]: c for c in old.typed_columns()}
    after = {c["name"]: c for c in new.typed_columns()}
    parts = [f"+{n}" for n in after if n not in before] + [f"-{n}" for n in before if n not in after]
    parts += [f"~{n}" for n in after if n in before and after[n] != before[n]]
    if [c for c in after if c in before] != [c for c in before if c in after]:
        parts.append("column order")
    return ", ".join(parts) or "indexes"
