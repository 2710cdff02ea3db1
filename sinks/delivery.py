"""Atomic deliveries: write aside, fsync, rename, then switch ``current``.

Layout under a delivery root (folders 0700, files 0600)::

    root/current -> deliveries/<id>        the delivery readers use (a symlink)
    root/deliveries/<id>/...               complete deliveries
    root/.staging-<id>/                    being written; never read
    root/.snapsync.lock                    held by the one export writing into root
    root/.snapsync-deliveries.json         the deliveries snapsync made here, and when each was replaced

A reader that opens ``root/current/...`` sees either the previous delivery or the new
one, whole. A crash at any point leaves ``current`` on the previous delivery; the
staging folder is removed by the next run.

* **One writer at a time.** An export holds an exclusive lock on ``root`` from its first
  file to its last rename; a second export into the same root waits for it (up to
  ``lock_timeout``), then refuses with a clear error.
* **Only its own.** Pruning removes deliveries listed in the ledger, never anything else
  found in ``deliveries/``.
* **A grace period.** A replaced delivery stays readable for ``grace`` seconds, so that a
  reader who resolved ``current`` just before the switch can finish copying it; the
  newest ``keep`` deliveries are kept in any case.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from snapsync.connectors.files import DIR_MODE, fsync_path, open_private, private_dir, syncfs
from snapsync.schemas.errors import ConfigError, RetriableError

log = logging.getLogger("snapsync.delivery")

#: Seconds a replaced delivery stays readable (``SNAPSYNC_DELIVERY_GRACE`` overrides).
GRACE = float(os.environ.get("SNAPSYNC_DELIVERY_GRACE", "900"))
LOCK_FILE = ".snapsync.lock"
LEDGER = ".snapsync-deliveries.json"


def check_root(root: str | os.PathLike[str]) -> Path:
    """A usable delivery root: a folder, or a path where one can be made.

    Raises:
        ConfigError: the path is empty, is a file, lies under a file, or cannot be made.
    """
    if str(root).strip() == "":
        raise ConfigError("the delivery folder (--out) is empty: give a folder path, e.g. --out deliveries/account-1")
    path = Path(root).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the delivery folder {path} is a file: give a folder path (--out)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"the delivery folder {path} lies under the file {parent}: give another path")
            if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"the delivery folder {path} cannot be made: {parent} is not writable by this user")
            break
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the delivery folder {path} is not writable by this user")
    return path


def check_account_root(root: Path) -> Path:
    """An account's own delivery folder (``<home>/deliveries/account-N``): never a symbolic link,
    which could send one account's packages into another's folder, or anywhere on the host.

    Raises:
        ConfigError: it is a link (refused and logged).
    """
    if Path(root).is_symlink():
        log.warning("refused the delivery folder %s: a symbolic link", root)
        raise ConfigError(f"the delivery folder {root} is a symbolic link: deliveries are never written through a "
                          "link; replace it with a folder (mount another disk on the parent folder instead)")
    return Path(root)


def _no_link(path: Path) -> None:
    if path.is_symlink():
        log.warning("refused %s: a symbolic link inside a delivery folder", path)
        raise ConfigError(f"{path} is a symbolic link: deliveries are never written through a link; remove it "
                          "(snapsync makes it again as a folder)")


class Delivery:
    """One delivery being written under ``root``; holds the root's lock until committed or aborted.
    Nothing is written through a symbolic link found in ``root`` (refused: ConfigError)."""

    def __init__(self, root: Path, delivery_id: str, keep: int = 1, *, grace: float | None = None,
                 lock_timeout: float = 600.0) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = check_root(root)
        try:
            if not self.root.exists():
                private_dir(self.root)  # made here: private; an existing folder keeps its own mode
        except OSError as exc:
            raise ConfigError(f"the delivery folder {self.root} cannot be made ({exc.strerror})") from None
        self.committed: Path | None = None
        self._lock_fd: int | None = None
        _no_link(self.root / LOCK_FILE)
        self._lock_fd = self._lock(lock_timeout)
        try:
            _no_link(self.root / "deliveries")
            self.deliveries = private_dir(self.root / "deliveries")
            self.id = delivery_id
            self.keep = keep
            self.grace = GRACE if grace is None else grace
            self._cleanup_stale()
            self.staging = private_dir(self.root / f".staging-{delivery_id}-{uuid.uuid4().hex[:8]}")
            self.final = self.deliveries / delivery_id
        except BaseException:
            self._unlock()
            raise

    # -- the lock ----------------------------------------------------------------------------
    def _lock(self, timeout: float) -> int:
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RetriableError(f"another export is writing into {self.root} and did not finish in "
                                         f"{timeout:.0f}s: try again when it is done") from None
                time.sleep(0.2)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # -- the ledger of deliveries made here --------------------------------------------------
    def _ledger(self) -> list[dict]:
        try:
            fd = os.open(self.root / LEDGER, os.O_RDONLY | os.O_NOFOLLOW)  # a link reads as no ledger
            with os.fdopen(fd) as f:
                return json.load(f)["deliveries"]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _save_ledger(self, entries: list[dict]) -> None:
        tmp = self.root / f".{LEDGER}.{uuid.uuid4().hex[:8]}"
        with open_private(tmp, "w") as f:
            json.dump({"deliveries": entries}, f, indent=1)
        os.replace(tmp, self.root / LEDGER)

    def _cleanup_stale(self) -> None:
        # Under the lock: no other export is writing, so any staging folder is a crashed one's.
        for p in self.root.glob(".staging-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".current-*"):
            p.unlink(missing_ok=True)

    # -- commit ------------------------------------------------------------------------------
    def commit(self, *, release: bool = True) -> Path:
        """Make the staged delivery durable and current; prune old ones. Returns its path.

        ``release=False`` keeps the root locked (the caller records the delivery, then calls
        :meth:`release`)."""
        try:
            synced = syncfs(self.staging)
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
            now = dt.datetime.now(dt.timezone.utc).isoformat()
            ledger = [dict(e, replaced=e.get("replaced") or now) for e in self._ledger()]
            ledger.append({"id": final.name, "committed": now, "replaced": None})
            self._save_ledger(ledger)
            link = self.root / "current"
            tmp = self.root / f".current-{uuid.uuid4().hex[:8]}"
            os.symlink(os.path.relpath(final, self.root), tmp)
            os.replace(tmp, link)  # atomic switch
            fsync_path(self.root)
            self._prune(final)
            self.committed = final
            return final
        finally:
            if release:
                self._unlock()

    def release(self) -> None:
        """Release the root's lock (after :meth:`commit` with ``release=False``)."""
        self._unlock()

    def abort(self) -> None:
        """Drop what was staged (nothing once committed) and release the lock."""
        try:
            if self.committed is None:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._unlock()

    def _prune(self, newest: Path) -> None:
        """Remove the deliveries this root's ledger lists, beyond the newest ``keep``, that were
        replaced more than ``grace`` seconds ago."""
        ledger = self._ledger()
        keep = {e["id"] for e in ledger[-self.keep:]} | {newest.name}
        now = dt.datetime.now(dt.timezone.utc)
        remaining = []
        for e in ledger:
            replaced = e.get("replaced")
            old = replaced is not None and (now - dt.datetime.fromisoformat(replaced)).total_seconds() >= self.grace
            if e["id"] in keep or not old:
                remaining.append(e)
                continue
            path = self.deliveries / e["id"]
            if path.parent == self.deliveries and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
        self._save_ledger(remaining)


def current_delivery(root: Path) -> Path | None:
    link = Path(root) / "current"
    return link.resolve() if link.is_symlink() else None


__all__ = ["Delivery", "DIR_MODE", "GRACE", "check_account_root", "check_root", "current_delivery"]
