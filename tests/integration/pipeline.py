"""Shared helpers for tests that run the whole pipeline: a seeded database, capture in a
thread and `snapsync worker` as a process; plus empty databases and row reads."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from snapsync.connectors.mysql import connect
from snapsync.local import stop_pid
from snapsync.schemas.catalog import DATASETS
from snapsync.seed import seed
from snapsync.streams.app import spawn_worker
from tests.conftest import new_database, settings_for
from tests.integration.capture_helpers import CaptureThread


#: The two captures every product is tested on (the ``capture`` argument of running_pipeline).
CAPTURES = ("embedded", "debezium")


def capture_args(request) -> dict:
    """``running_pipeline`` arguments for a fixture parametrised over :data:`CAPTURES` (the
    Kafka Connect worker is started only when a test uses Debezium)."""
    if request.param == "debezium":
        return {"capture": "debezium", "connect_url": request.getfixturevalue("connect").url}
    return {"capture": "embedded"}


def wait_captured(s, timeout: float = 60.0, ready=lambda: True) -> None:
    """Until the capture's committed position is past everything committed so far. A probe row
    is written at each try (Debezium's position moves only when a later transaction arrives);
    ``ready`` may raise (a failed connector) or hold the tries back."""
    from snapsync.connectors.offsets import committed_position
    from snapsync.connectors.state import connect_source, connect_state
    from snapsync.sinks.incremental import write_probe

    with connect_source(s) as conn, connect_state(s) as state:
        target = None

        def past() -> bool:
            nonlocal target
            if not ready():
                return False
            latest = write_probe(conn)[0]
            target = target or latest
            at = committed_position(state, s)[0]
            return at is not None and at.key() >= target.key()

        wait_until(past, timeout=timeout, what=f"capture {s.connector} past the last change")


class DebeziumCapture:
    """The real Debezium MySqlConnector 3.0.7 on the real Kafka Connect worker, deployed for
    the settings' database (connector and topic prefix named by the settings); entered once
    its initial snapshot is on the broker and it streams; deleted on exit."""

    def __init__(self, settings, *, snapshot_mode: str = "initial", timeout: float = 120.0) -> None:
        self.settings = settings
        self.snapshot_mode = snapshot_mode
        self.timeout = timeout

    def config(self) -> dict:
        from snapsync.connectors.binlog_capture import default_server_id
        from snapsync.connectors.debezium import MYSQL_CONNECTOR, render

        s = self.settings  # the one class that runs here; a server id apart from the embedded capture's
        return render(s, name=s.connector, server_id=default_server_id(s.connector) + 1_000_000,
                      snapshot_mode=self.snapshot_mode, heartbeat_ms=500, connector_class=MYSQL_CONNECTOR)["config"]

    def __enter__(self):
        import requests

        url = f"{self.settings.connect_url}/connectors/{self.settings.connector}"
        r = requests.put(url + "/config", json=self.config(), timeout=30)
        assert r.status_code in (200, 201), r.text

        def running() -> bool:
            st = requests.get(url + "/status", timeout=10)
            tasks = st.json().get("tasks", []) if st.status_code == 200 else []
            if any(t["state"] == "FAILED" for t in tasks):
                raise AssertionError(f"the connector failed: {tasks[0].get('trace', '')[:2000]}")
            return bool(tasks) and tasks[0]["state"] == "RUNNING"

        wait_captured(self.settings, self.timeout, ready=running)  # streaming past a probe after the snapshot
        return self

    def __exit__(self, *exc) -> None:
        import requests

        requests.delete(f"{self.settings.connect_url}/connectors/{self.settings.connector}", timeout=30)


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
    new_database(s)
    with connect(s.db) as conn:
        cur = conn.cursor()
        for ds in DATASETS:
            cur.execute(f"DROP TABLE IF EXISTS `{ds.table}`")
            cur.execute(f"DROP TABLE IF EXISTS `tmp_{ds.table}`")
    return s


@contextlib.contextmanager
def running_pipeline(base, log_dir: Path, name: str, *, customers: int, seed_value: int,
                     accounts: int | None = None, before_start=None, capture: str = "embedded", connect_url=None,
                     home: str | None = None):
    """Seed database ``name`` (topic prefix ``name``), run capture (the embedded one in a
    thread, or the real Debezium connector on the Kafka Connect worker at ``connect_url``)
    and a worker; yields (settings, worker log, workers). A test may replace ``workers[0]``
    (kill -9, restart); every worker in the list is stopped at the end. ``home``: a data folder
    of its own (deliveries apart from other tests' accounts of the same number)."""
    extra = {} if capture == "embedded" else {"capture": "debezium", "connect_url": connect_url}
    if home is not None:
        extra["home"] = home
    s = settings_for(base, name, topic_prefix=name, connector=name, **extra)
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=customers, scale=0.004, seed_value=seed_value, accounts=accounts)
    if before_start is not None:
        before_start(s)
    log = log_dir / "worker.log"
    with (CaptureThread(s, name) if capture == "embedded" else DebeziumCapture(s)):
        workers = [start_worker(s, log)]
        try:
            yield s, log, workers
        finally:
            for w in workers:
                stop(w)
