"""Deliveries read back as zip archives, streamed: what the web app's downloads send.

A download of the current delivery (contract 7) resolves ``current`` once and opens every
file it will send before the first byte goes out, so a new delivery that replaces it
during the download (and prunes the old one) changes nothing in what this reader gets:
open files stay readable after they are unlinked.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from snapsync.sinks.delivery import current_delivery

CHUNK = 1 << 20


@dataclass
class Package:
    """One package of a delivery: a folder, or a zip made by ``--container zip``."""

    name: str
    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def is_zip(self) -> bool:
        return self.path.suffix == ".zip"


@dataclass
class CurrentDelivery:
    path: Path
    packages: list[Package]

    @property
    def id(self) -> str:
        return self.path.name

    def package(self, name: str) -> Package | None:
        return next((p for p in self.packages if p.name == name), None)


def _manifest(p: Path) -> dict:
    try:
        if p.suffix == ".zip":
            with zipfile.ZipFile(p) as z:
                return json.loads(z.read("manifest.json"))
        return json.loads((p / "manifest.json").read_text())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def read_current(root: Path) -> CurrentDelivery | None:
    """The current delivery under ``root`` and its packages (None when there is none)."""
    path = current_delivery(root)
    if path is None or not path.is_dir():
        return None
    packages = [Package(p.stem if p.suffix == ".zip" else p.name, p, _manifest(p))
                for p in sorted(path.iterdir())
                if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".zip")]
    return CurrentDelivery(path, packages)


def package_files(packages: list[Package], *, prefix: str = "") -> list[tuple[str, BinaryIO]]:
    """(name in the archive, open file) for every file of the packages, opened now."""
    opened: list[tuple[str, BinaryIO]] = []
    try:
        for pkg in packages:
            if pkg.is_zip:
                opened.append((f"{prefix}{pkg.path.name}", open(pkg.path, "rb")))
                continue
            for f in sorted(pkg.path.rglob("*")):
                if f.is_file():
                    opened.append((f"{prefix}{pkg.name}/{f.relative_to(pkg.path)}", open(f, "rb")))
    except BaseException:
        for _n, fh in opened:
            fh.close()
        raise
    return opened


class _Buffer:
    """A write-only, non-seekable sink that ``zipfile`` writes into and we drain."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.written = 0

    def write(self, b) -> int:
        self.data += b
        self.written += len(b)
        return len(b)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def zip_stream(files: list[tuple[str, BinaryIO]], *, compress: bool = True) -> Iterator[bytes]:
    """Yield a zip archive of ``files`` chunk by chunk (no temporary file, constant memory);
    closes the files."""
    buf = _Buffer()
    try:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                             compresslevel=1) as z:
            for name, fh in files:
                # Archives stored inside (--container zip) are not compressed twice.
                mtime = time.localtime(os.fstat(fh.fileno()).st_mtime)
                stamp = tuple(max(v, lo) for v, lo in zip(mtime[:6], (1980, 1, 1, 0, 0, 0)))  # zip starts in 1980
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_STORED if name.endswith(".zip") or not compress \
                    else zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                with z.open(info, "w", force_zip64=True) as out:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        if len(buf.data) >= CHUNK:
                            yield buf.take()
                fh.close()
                if buf.data:
                    yield buf.take()
        if buf.data:
            yield buf.take()
    finally:
        for _n, fh in files:
            fh.close()


def file_stream(fh: BinaryIO) -> Iterator[bytes]:
    """Yield one open file chunk by chunk; closes it."""
    try:
        while chunk := fh.read(CHUNK):
            yield chunk
    finally:
        fh.close()
