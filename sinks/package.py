"""A package: one customer's (or the combined selection's) data sets in one format, with
its manifest; stored as a folder or a zip archive.

Sealed for a receiver (``seal``: connectors/crypto.py), every file is encrypted as it is
written (``patient.DAT.gpg``, ``manifest.json.gpg``, ...) and the package also holds
``SHA256SUMS`` (the plaintext files' digests, as ``sha256sum -c`` reads them) with snapsync's
detached signature ``SHA256SUMS.sig``, both encrypted too. The manifest's hashes and sizes are
those of the plaintext: once decrypted, the package is the same bytes as an unsealed one.

The writer owns the files (private, hashed, counted) and the manifest; what goes into the
files is the format's business (``sinks/formats``): it never branches on a format's name.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from snapsync.connectors.crypto import Sealer, sign_detached
from snapsync.connectors.files import FILE_MODE, open_private, private_dir
from snapsync.schemas.catalog import DataSet
from snapsync.schemas.control import Container
from snapsync.sinks.formats import get_format
from snapsync.sinks.formats.base import OP_COLUMN, PackageFormat

__all__ = ["DDL_FILE", "OP_COLUMN", "PackageWriter", "DataSetEntry"]

#: Every package, whatever its format, holds the DDL of its data sets in this file: one
#: ``CREATE TABLE IF NOT EXISTS`` per data set, as the source has it (no foreign keys: each
#: data set loads alone), that the mysql/mariadb client loads into an empty database.
DDL_FILE = "schema.sql"
#: A sealed package's digest of its plaintext files, and snapsync's signature of it.
SUMS_FILE, SIGNATURE_FILE = "SHA256SUMS", "SHA256SUMS.sig"


def manifest_json(manifest: dict) -> str:
    """The manifest as JSON a person can read: one top-level key per line, one data set or
    file per line. (``json.dump(indent=...)`` runs in pure Python: 10 ms per manifest with
    typed schemas, a tenth of a per-customer export's own work.)"""
    lines = []
    for key, value in manifest.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n    ".join(json.dumps(v, ensure_ascii=False) for v in value)
            lines.append(f"  {json.dumps(key)}: [\n    {items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


class _HashingFile:
    """A private file that counts bytes and hashes what is written (the plaintext, when
    ``sealer`` encrypts it on its way to ``path`` + the recipient's suffix)."""

    def __init__(self, path: Path, sealer: Sealer | None = None) -> None:
        self.path = path if sealer is None else path.with_name(path.name + sealer.recipient.suffix)
        self.f = open_private(self.path) if sealer is None else sealer.open(self.path)
        self.sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> None:
        self.f.write(data)
        self.sha.update(data)
        self.bytes += len(data)

    def close(self) -> None:
        self.f.close()  # made durable by Delivery.commit, before the delivery becomes current

    def abort(self) -> None:
        getattr(self.f, "abort", self.f.close)()


@dataclass
class DataSetEntry:
    name: str
    table: str
    file: str
    rows: int = 0
    deletes: int = 0
    columns: list[dict] = field(default_factory=list)  # the typed schema (DataSet.typed_columns)
    quarantined: int = 0  # staged changes set aside (snapsync_delta_quarantine), not in the file


@dataclass
class PackageWriter:
    """Writes one package's files into ``folder``; ``finish`` adds the manifest."""

    folder: Path
    name: str
    format: str
    customers: list[int]
    entries: dict[str, DataSetEntry] = field(default_factory=dict)
    #: Encrypt every file to the receiver (``sign_home``: where snapsync's signing key lives).
    seal: Sealer | None = None
    sign_home: Path | None = None

    def __post_init__(self) -> None:
        private_dir(self.folder)
        self.fmt: PackageFormat = get_format(self.format)
        self._open: dict[str, _HashingFile] = {}  # file name -> the file being written
        self._closed: dict[str, _HashingFile] = {}
        self._changes: dict[str, bool] = {}
        self._datasets: dict[str, DataSet] = {}
        if self.fmt.package_file:
            self.fmt.start_package(self._file(self.fmt.package_file))

    def _file(self, name: str) -> _HashingFile:
        f = self._open.get(name)
        if f is None:
            f = self._open[name] = _HashingFile(self.folder / name, self.seal)
        return f

    def _close(self, name: str) -> None:
        f = self._open.pop(name)
        f.close()
        self._closed[name] = f

    # -- per data set --------------------------------------------------------------------
    def begin(self, ds: DataSet, *, changes: bool = False) -> None:
        """Start a data set. ``changes``: an incremental data set (upserts and deletes,
        applied on top of the previous load) instead of its full contents."""
        fname = self.fmt.file_name(ds)
        self.fmt.begin(ds, self._file(fname), changes=changes)
        self.entries[ds.table] = DataSetEntry(ds.name, ds.table, fname, columns=ds.typed_columns())
        self._changes[ds.table] = changes
        self._datasets[ds.table] = ds

    def replace_customers(self, ds: DataSet, customers: list[int]) -> None:
        """After :meth:`begin` of an incremental data set: ``customers``' rows come in full."""
        self.fmt.write_replaced(ds, customers, self._file(self.fmt.file_name(ds)))

    def write_lines(self, ds: DataSet, data, *, count: bool = True) -> int:
        """Whole lines (each ending in LF, a bytes-like object), as the server formatted them;
        returns how many (0 with ``count=False``: the reader reports them, :meth:`add_rows`)."""
        entry = self.entries[ds.table]
        n = bytes(data).count(b"\n") if count and not isinstance(data, bytes) else data.count(b"\n") if count else 0
        entry.rows += n
        self.fmt.write_rows(ds, data, self._file(entry.file))
        return n

    def add_rows(self, ds: DataSet, n: int) -> None:
        """Rows a reader counted for data set ``ds``."""
        self.entries[ds.table].rows += n

    def write_upserts(self, ds: DataSet, rows: list[dict[str, str | None]]) -> int:
        """Rows of an incremental data set as MySQL text values; returns how many."""
        entry = self.entries[ds.table]
        entry.rows += len(rows)
        if rows:
            self.fmt.write_upserts(ds, rows, self._file(entry.file))
        return len(rows)

    def write_deletes(self, ds: DataSet, keys: list[dict]) -> None:
        """Deleted rows of an incremental data set, by primary key."""
        if not keys:
            return
        entry = self.entries[ds.table]
        entry.deletes += len(keys)
        self.fmt.write_deletes(ds, keys, self._file(entry.file))

    def end(self, ds: DataSet) -> None:
        entry = self.entries[ds.table]
        self.fmt.end(ds, self._file(entry.file), changes=self._changes[ds.table])
        if entry.file != self.fmt.package_file:
            self._close(entry.file)

    # -- package -------------------------------------------------------------------------
    def finish(self, meta: dict, container: Container = "folder") -> dict:
        """Close the files, write ``manifest.json``; zip the folder when asked. Returns the manifest."""
        if self.fmt.package_file:
            self.fmt.finish_package(self._file(self.fmt.package_file))
        self._write_ddl()
        for name in list(self._open):
            self._close(name)
        manifest = {
            **meta,
            "package": self.name,
            "format": self.format,
            "customers": self.customers,
            "ddl": DDL_FILE,
            "datasets": [
                {"name": e.name, "table": e.table, "file": e.file, "rows": e.rows,
                 **({"deletes": e.deletes} if e.deletes else {}),
                 **({"quarantined": e.quarantined} if e.quarantined else {}), "columns": e.columns}
                for e in self.entries.values()
            ],
            "files": [{"file": name, "sha256": f.sha.hexdigest(), "bytes": f.bytes}
                      for name, f in self._closed.items()],
        }
        self._write_whole("manifest.json", manifest_json(manifest).encode())
        if self.seal is not None:
            self._write_sums()
            self.seal.close()
        if container == "zip":
            self._zip()
        return manifest

    def abort(self) -> None:
        """Stop the files being written (their encrypting tools, when sealed)."""
        for f in self._open.values():
            f.abort()
        self._open.clear()
        if self.seal is not None:
            self.seal.close()

    def _write_whole(self, name: str, data: bytes) -> None:
        f = self._file(name)
        f.write(data)
        self._close(name)

    def _write_sums(self) -> None:
        """``SHA256SUMS`` of the plaintext files (manifest included) and its detached signature."""
        assert self.sign_home is not None, "a sealed package needs the home of snapsync's signing key"
        sums = "".join(f"{f.sha.hexdigest()}  {name}\n" for name, f in sorted(self._closed.items())).encode()
        self._write_whole(SUMS_FILE, sums)
        self._write_whole(SIGNATURE_FILE, sign_detached(self.sign_home, sums))

    def _write_ddl(self) -> None:
        f = self._file(DDL_FILE)
        f.write(b"-- snapsync: the data sets of this package as the source has them\n"
                b"/*!40101 SET NAMES utf8mb4 */;\n")
        for ds in self._datasets.values():
            f.write(f"\n-- data set: {ds.name}\n{ds.ddl(with_foreign_keys=False, if_not_exists=True)};\n"
                    f"{ds.added_columns_ddl()}".encode())
        self._close(DDL_FILE)

    def _zip(self) -> None:
        archive = self.folder.with_suffix(".zip")
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        # Sealed members are ciphertext (gpg compressed them first): stored, not deflated.
        how = (zipfile.ZIP_STORED, None) if self.seal is not None else (zipfile.ZIP_DEFLATED, 1)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", how[0], compresslevel=how[1]) as z:
            for p in sorted(self.folder.iterdir()):
                z.write(p, p.name)
        for p in self.folder.iterdir():
            p.unlink()
        self.folder.rmdir()
