"""Running capture in tests: in a thread, or as the real console script (for kill -9)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql.cursors

from snapsync.connectors.binlog_capture import Capture
from snapsync.connectors.mysql import connect, encoded_rows
from snapsync.schemas.catalog import dataset
from snapsync.schemas.events import dumps
from tests.conftest import env_for

BIN = str(Path(sys.executable).with_name("snapsync"))


def master_position(settings) -> tuple[str, int]:
    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("SHOW MASTER STATUS")
        f, p = cur.fetchone()[:2]
        return f, int(p)


def stored_position(settings, connector: str) -> tuple[str, int] | None:
    with connect(settings.state) as conn:
        cur = conn.cursor()
        try:
            cur.execute("SELECT binlog_file, binlog_pos FROM snapsync_capture_offset WHERE connector=%s "
                        "AND snapshot_completed = 1", (connector,))
        except pymysql.err.ProgrammingError:
            return None
        row = cur.fetchone()
        return (row[0], int(row[1])) if row else None


def _num(file: str) -> int:
    return int(file.rsplit(".", 1)[1])


def wait_caught_up(settings, connector: str, timeout: float = 60.0) -> None:
    """Until the stored restart point is at or past the server's current binlog end."""
    target = master_position(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pos = stored_position(settings, connector)
        if pos and (_num(pos[0]), pos[1]) >= (_num(target[0]), target[1]):
            return
        time.sleep(0.2)
    raise TimeoutError(f"capture did not reach {target} in {timeout}s (at {stored_position(settings, connector)})")


class CaptureThread:
    def __init__(self, settings, connector: str, **kw) -> None:
        self.capture = Capture(settings, connector=connector, commit_interval=0.3, heartbeat_interval=0.3, **kw)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.capture.run(install_signals=False)
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc

    def __enter__(self) -> Capture:
        self.thread.start()
        try:  # the initial snapshot is done and streaming has begun
            wait_caught_up(self.capture.settings, self.capture.connector)
        except TimeoutError:
            self.capture.stop_event.set()
            if self.error is not None:
                raise self.error
            raise
        return self.capture

    def __exit__(self, *exc) -> None:
        self.capture.stop_event.set()
        self.thread.join(30)
        if self.error is not None and exc[0] is None:
            raise self.error


def start_capture_process(settings, connector: str, log_path: Path) -> subprocess.Popen:
    env = env_for(settings)
    return subprocess.Popen([BIN, "capture", "--connector", connector, "--commit-interval", "0.2",
                             "--heartbeat-interval", "0.3"],
                            env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def db_state(settings, table: str) -> dict[bytes, dict]:
    """The table as capture would encode it, keyed like the topic."""
    ds = dataset(table)
    with connect(settings.db, cursorclass=pymysql.cursors.Cursor) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{table}`")
        return {dumps({k: after[k] for k in ds.primary_key}): after for after in encoded_rows(cur)}
