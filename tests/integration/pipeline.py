"""Shared helpers for tests that run the whole pipeline: a seeded database, capture in a
thread and `snapsync worker` as a process; plus empty databases and row reads."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from snapsync.connectors.mysql import connect, ensure_database
from snapsync.local import stop_pid
from snapsync.schemas.catalog import DATASETS
from snapsync.seed import seed
from snapsync.streams.app import spawn_worker
from tests.conftest import settings_for
from tests.integration.capture_helpers import CaptureThread


def wait_until(cond, timeout=40.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def start_worker(s, log: Path) -> subprocess.Popen:
    return spawn_worker(s, log)


def stop(proc: subprocess.Popen) -> None:
    stop_pid(proc.pid, grace=15)


def q(s, sql, args=()):
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall()


def customer_rows(s, table: str, customers) -> list[tuple]:
    """The table's rows of those customers, by id."""
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{table}` WHERE customer_id IN ({','.join(map(str, customers))}) ORDER BY id")
        return list(cur.fetchall())


def empty_database(base, name: str):
    """A database on the session's server with no catalog tables (nor leftover tmp_ ones)."""
    s = settings_for(base, name)
    ensure_database(s.db)
    with connect(s.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(f"DROP TABLE IF EXISTS `{ds.table}`")
            cur.execute(f"DROP TABLE IF EXISTS `tmp_{ds.table}`")
    return s


@contextlib.contextmanager
def running_pipeline(base, log_dir: Path, name: str, *, customers: int, seed_value: int,
                     accounts: int | None = None, before_start=None):
    """Seed database ``name`` (topic prefix ``name``), run capture and a worker; yields
    (settings, worker log, workers). A test may replace ``workers[0]`` (kill -9, restart);
    every worker in the list is stopped at the end."""
    s = settings_for(base, name, topic_prefix=name)
    ensure_database(s.db)
    with connect(s.db) as conn:
        seed(conn, customers=customers, scale=0.004, seed_value=seed_value, accounts=accounts)
    if before_start is not None:
        before_start(s)
    log = log_dir / "worker.log"
    with CaptureThread(s, name):
        workers = [start_worker(s, log)]
        try:
            yield s, log, workers
        finally:
            for w in workers:
                stop(w)
