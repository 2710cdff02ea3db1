"""Deliveries read back as zip archives, streamed: what the web app's downloads send.

A download of the current delivery (contract 7) resolves ``current`` once and opens every
file it will send before the first byte goes out, so a new delivery that replaces it
during the download (and prunes the old one) changes nothing in what this reader gets:
open files stay readable after they are unlinked.

Nothing is read through a symbolic link: ``current`` must name a delivery of the account's own
``deliveries/`` folder, and a link found inside a delivery (a file, a folder, a whole package)
is refused and logged, never followed. A link placed there would otherwise put another
account's package, or any file of the host, into the download.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from snapsync.sinks.delivery import current_delivery

log = logging.getLogger("snapsync.archive")

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

    @property
    def customers(self) -> list[int]:
        """The customers whose rows the package holds, from its manifest ([] when unreadable)."""
        try:
            return [int(c) for c in self.manifest.get("customers", [])]
        except (TypeError, ValueError):
            return []


@dataclass
class CurrentDelivery:
    path: Path
    packages: list[Package]

    @property
    def id(self) -> str:
        return self.path.name

    def package(self, name: str) -> Package | None:
        return next((p for p in self.packages if p.name == name), None)


def open_no_link(path: Path) -> BinaryIO:
    """Open a regular file for reading, refusing a symbolic link in its last component.

    Raises:
        OSError: it is a link (``ELOOP``) or not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def _refuse(path: Path, where: Path) -> None:
    log.warning("refused %s in delivery %s: a symbolic link (downloads never follow links)",
                path.relative_to(where) if path.is_relative_to(where) else path.name, where.name)


def _manifest(p: Path) -> dict:
    try:
        if p.suffix == ".zip":
            with open_no_link(p) as fh, zipfile.ZipFile(fh) as z:
                return json.loads(z.read("manifest.json"))
        with open_no_link(p / "manifest.json") as fh:
            return json.loads(fh.read())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def read_current(root: Path) -> CurrentDelivery | None:
    """The current delivery under ``root`` and its packages (None when there is none, or when
    ``current`` leads out of ``root/deliveries``: refused and logged)."""
    root = Path(root)
    deliveries = root / "deliveries"
    if root.is_symlink() or deliveries.is_symlink():
        log.warning("refused the deliveries of %s: a symbolic link (downloads never follow links)", root.name)
        return None
    path = current_delivery(root)
    if path is None:
        return None
    if path.parent != deliveries.resolve() or not path.is_dir():
        log.warning("refused `current` of %s: it does not name one of its own deliveries", root.name)
        return None
    packages = []
    for p in sorted(path.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink():
            _refuse(p, path)
            continue
        mode = p.lstat().st_mode
        if stat.S_ISDIR(mode) or (p.suffix == ".zip" and stat.S_ISREG(mode)):
            packages.append(Package(p.stem if p.suffix == ".zip" else p.name, p, _manifest(p)))
    return CurrentDelivery(path, packages)


def _files_of(pkg: Package) -> list[Path]:
    """Every regular file of a package folder; links are refused (logged), never followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(pkg.path, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():
                _refuse(here / name, pkg.path.parent)
                dirnames.remove(name)
        for name in filenames:
            f = here / name
            if f.is_symlink():
                _refuse(f, pkg.path.parent)
            elif stat.S_ISREG(f.lstat().st_mode):
                found.append(f)
    return sorted(found)


def package_files(packages: list[Package], *, prefix: str = "") -> list[tuple[str, BinaryIO]]:
    """(name in the archive, open file) for every file of the packages, opened now (links
    refused and logged)."""
    opened: list[tuple[str, BinaryIO]] = []
    try:
        for pkg in packages:
            if pkg.is_zip:
                opened.append((f"{prefix}{pkg.path.name}", open_no_link(pkg.path)))
                continue
            for f in _files_of(pkg):
                opened.append((f"{prefix}{pkg.name}/{f.relative_to(pkg.path)}", open_no_link(f)))
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
