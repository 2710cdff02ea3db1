"""Atomic deliveries: write aside, fsync, rename, then switch ``current``.

Layout under a delivery root (folders 0700, files 0600)::

    root/current -> deliveries/<id>        the delivery readers use (a symlink)
    root/deliveries/<id>/...               complete deliveries, newest ``keep`` kept
    root/.staging-<id>/                    being written; never read

A reader that opens ``root/current/...`` sees either the previous delivery or the new
one, whole. A crash at any point leaves ``current`` on the previous delivery; the
staging folder is removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask; be explicit
    return path


def open_private(path: Path, mode: str = "wb"):
    """Open a new file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, mode)


def _syncfs(path: Path) -> bool:
    """Flush every dirty page of the filesystem holding ``path`` in one call (Linux
    ``syncfs``): one journal commit for a delivery instead of one fsync per file."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            return libc.syncfs(fd) == 0
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        return False


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Delivery:
    """One delivery being written under ``root``."""

    def __init__(self, root: Path, delivery_id: str, keep: int = 1) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = private_dir(Path(root))
        self.deliveries = private_dir(self.root / "deliveries")
        self.id = delivery_id
        self.keep = keep
        self._cleanup_stale()
        self.staging = private_dir(self.root / f".staging-{delivery_id}-{uuid.uuid4().hex[:8]}")
        self.final = self.deliveries / delivery_id

    def _cleanup_stale(self) -> None:
        for p in self.root.glob(".staging-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".current-*"):
            p.unlink(missing_ok=True)

    def commit(self) -> Path:
        """Make the staged delivery durable and current; prune old ones. Returns its path."""
        synced = _syncfs(self.staging)
        for dirpath, _dirs, files in os.walk(self.staging):
            if not synced:  # no syncfs here: one fsync per file
                for f in files:
                    fsync_path(Path(dirpath) / f)
            fsync_path(Path(dirpath))
        final = self.final
        if final.exists():  # the same id delivered again (a re-run): keep both, newest wins
            final = self.deliveries / f"{self.id}-{uuid.uuid4().hex[:6]}"
        os.rename(self.staging, final)
        fsync_path(self.deliveries)
        link = self.root / "current"
        tmp = self.root / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(final, self.root), tmp)
        os.replace(tmp, link)  # atomic switch
        fsync_path(self.root)
        self._prune(final)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def _prune(self, newest: Path) -> None:
        done = sorted((p for p in self.deliveries.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        keep = {newest.name, *(p.name for p in done[-self.keep:])}
        for p in done:
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)


def current_delivery(root: Path) -> Path | None:
    link = Path(root) / "current"
    return link.resolve() if link.is_symlink() else None
