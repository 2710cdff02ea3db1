"""A package: one customer's (or the combined selection's) data sets in one format,
with its manifest; stored as a folder or a zip archive."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.catalog import DataSet
from sinks import sql_format
from sinks.dat_format import format_value, header_line

#: The first column of an incremental data set's .DAT file: U (upsert) or D (delete; only
#: the primary key columns carry values).
OP_COLUMN = "_op"
from sinks.delivery import FILE_MODE, open_private, private_dir

Format = Literal["dat", "mysql"]
Container = Literal["folder", "zip"]


class _HashingFile:
    """A private file that counts bytes and hashes what is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open_private(path)
        self.sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.sha.update(data)
        self.bytes += len(data)

    def close(self) -> None:
        self.f.close()  # made durable by Delivery.commit, before the delivery becomes current


@dataclass
class DataSetEntry:
    name: str
    table: str
    file: str
    rows: int = 0
    deletes: int = 0
    sha256: str = ""
    bytes: int = 0


@dataclass
class PackageWriter:
    """Writes one package's files into ``folder``; ``finish`` adds the manifest."""

    folder: Path
    name: str
    format: Format
    customers: list[int]
    entries: dict[str, DataSetEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        private_dir(self.folder)
        self._files: dict[str, _HashingFile] = {}
        self._sql: _HashingFile | None = None
        self._batcher: sql_format.InsertBatcher | None = None
        if self.format == "mysql":
            self._sql = _HashingFile(self.folder / "snapshot.sql")
            self._sql.write(sql_format.HEADER)

    # -- per data set --------------------------------------------------------------------
    def begin(self, ds: DataSet, *, changes: bool = False) -> None:
        """Start a data set. ``changes``: an incremental data set (upserts and deletes,
        applied on top of the previous load) instead of its full contents."""
        if self.format == "dat":
            fname = f"{ds.table}.DAT"
            f = self._files[ds.table] = _HashingFile(self.folder / fname)
            f.write((OP_COLUMN + "\t" if changes else "").encode() + header_line(ds.columns))
        else:
            fname = "snapshot.sql"
            assert self._sql is not None
            self._sql.write(sql_format.changes_preamble(ds) if changes else sql_format.table_preamble(ds))
            self._batcher = sql_format.InsertBatcher(self._sql, ds.table, verb="REPLACE" if changes else "INSERT")
        self.entries[ds.table] = DataSetEntry(ds.name, ds.table, fname)
        self._changes = changes

    def write_deletes(self, ds: DataSet, keys: list[dict]) -> None:
        """Deleted rows of an incremental data set, by primary key."""
        if not keys:
            return
        entry = self.entries[ds.table]
        entry.deletes += len(keys)
        if self.format == "dat":
            lines = []
            for k in keys:
                fields = [format_value(k[c]) if c in k else "\\N" for c in ds.column_names]
                lines.append("D\t" + "\t".join(fields) + "\n")
            self._files[ds.table].write("".join(lines).encode("utf-8"))
        else:
            assert self._sql is not None
            self._sql.write(sql_format.delete_statement(ds, keys))

    def write_lines(self, ds: DataSet, data: bytes) -> int:
        """Whole lines (each ending in LF), as the server formatted them; returns how many."""
        entry = self.entries[ds.table]
        n = data.count(b"\n")
        entry.rows += n
        if self.format == "dat":
            self._files[ds.table].write(data)
        else:
            assert self._batcher is not None
            self._batcher.add_chunk(data)
        return n

    def end(self, ds: DataSet) -> None:
        entry = self.entries[ds.table]
        if self.format == "dat":
            f = self._files.pop(ds.table)
            f.close()
            entry.sha256, entry.bytes = f.sha.hexdigest(), f.bytes
        else:
            assert self._batcher is not None and self._sql is not None
            self._batcher.close()
            self._sql.write(sql_format.table_postamble(ds, changes=self._changes))

    # -- package -------------------------------------------------------------------------
    def finish(self, meta: dict, container: Container = "folder") -> dict:
        """Close the files, write ``manifest.json``; zip the folder when asked. Returns the manifest."""
        files = []
        if self._sql is not None:
            self._sql.write(sql_format.FOOTER)
            self._sql.close()
            files.append({"file": "snapshot.sql", "sha256": self._sql.sha.hexdigest(), "bytes": self._sql.bytes})
        else:
            files = [{"file": e.file, "sha256": e.sha256, "bytes": e.bytes} for e in self.entries.values()]
        manifest = {
            **meta,
            "package": self.name,
            "format": self.format,
            "customers": self.customers,
            "datasets": [
                {"name": e.name, "table": e.table, "file": e.file, "rows": e.rows,
                 **({"deletes": e.deletes} if e.deletes else {})}
                for e in self.entries.values()
            ],
            "files": files,
        }
        with open_private(self.folder / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        if container == "zip":
            self._zip()
        return manifest

    def _zip(self) -> None:
        archive = self.folder.with_suffix(".zip")
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for p in sorted(self.folder.iterdir()):
                z.write(p, p.name)
        for p in self.folder.iterdir():
            p.unlink()
        self.folder.rmdir()
