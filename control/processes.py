"""Which long-running processes are alive: each says so every few seconds in
the state store's ``snapsync_process`` (role, host, pid, when last seen, its metrics port), and says it stopped
when it stops cleanly. ``snapsync status`` reports a process not seen for three of its
intervals as stopped: one killed with ``kill -9`` or whose machine went away says nothing.

The database's clock (``UTC_TIMESTAMP(6)``) is used for both the beat and the judgement, so
processes on other machines need no synchronised clocks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from snapsync.connectors.mysql import close_quietly
from snapsync.connectors.state import connect_state

log = logging.getLogger("snapsync.processes")

#: A process is reported stopped when not seen for this many of its intervals (at least 10 s).
MISSED_BEATS = 3
#: Rows of processes gone for longer than this are removed.
KEEP_DAYS = 7


def process_id(role: str) -> str:
    """``role:host:pid:random`` (unique, readable in `snapsync status`)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Beacon:
    """Says "alive" for one process from a daemon thread (its own connection; a database
    outage only delays the beat)."""

    def __init__(self, settings, role: str, *, interval: float = 2.0, metrics_port: int | None = None,
                 ident: str | None = None) -> None:
        self.settings = settings
        self.role = role
        self.id = ident or process_id(role)
        self.interval = interval
        self.metrics_port = metrics_port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"beacon-{role}", daemon=True)

    def start(self) -> Beacon:
        self._thread.start()
        return self

    def _beat(self, conn, first: bool) -> None:
        cur = conn.cursor()
        if first:
            cur.execute("DELETE FROM snapsync_process WHERE seen_at < UTC_TIMESTAMP(6) - INTERVAL %s DAY", (KEEP_DAYS,))
            cur.execute("INSERT INTO snapsync_process (process_id, role, host, pid, started_at, seen_at, interval_s, "
                        "metrics_port) VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), %s, %s) "
                        "ON DUPLICATE KEY UPDATE seen_at=UTC_TIMESTAMP(6), stopped_at=NULL",
                        (self.id, self.role, socket.gethostname()[:255], os.getpid(), self.interval, self.metrics_port))
        else:
            cur.execute("UPDATE snapsync_process SET seen_at=UTC_TIMESTAMP(6) WHERE process_id=%s", (self.id,))
        conn.commit()

    def _run(self) -> None:
        conn, first = None, True
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect_state(self.settings)
                self._beat(conn, first)
                first = False
            except Exception as exc:  # noqa: BLE001 - a missed beat; the next one tries again
                log.debug("process beat failed (%s)", type(exc).__name__)
                close_quietly(conn)
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        """Record a clean stop (a killed process never gets here: it is judged by its silence)."""
        self._stop.set()
        try:
            with connect_state(self.settings) as conn:
                cur = conn.cursor()
                cur.execute("UPDATE snapsync_process SET stopped_at=UTC_TIMESTAMP(6) WHERE process_id=%s", (self.id,))
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - then it is judged by its silence
            log.debug("could not record the stop (%s)", type(exc).__name__)


def processes(conn, *, since_days: int = 1) -> list[dict]:
    """Processes seen in the last ``since_days``: role, host, pid, state (running, stopped or
    not seen), seconds since last seen, metrics port."""
    cur = conn.cursor()
    cur.execute("SELECT process_id, role, host, pid, started_at, seen_at, interval_s, stopped_at, metrics_port, "
                "TIMESTAMPDIFF(MICROSECOND, seen_at, UTC_TIMESTAMP(6)) FROM snapsync_process "
                "WHERE seen_at >= UTC_TIMESTAMP(6) - INTERVAL %s DAY ORDER BY role, started_at", (since_days,))
    out = []
    for pid_, role, host, pid, started, seen, interval, stopped, port, age_us in cur.fetchall():
        age = (age_us or 0) / 1e6
        if stopped is not None:
            state = "stopped"
        elif age > max(10.0, MISSED_BEATS * interval):
            state = "not seen"  # killed, hung or its machine is gone
        else:
            state = "running"
        out.append({"process_id": pid_, "role": role, "host": host, "pid": pid, "state": state,
                    "started_at": started.isoformat() + "Z", "last_seen_s": round(age, 1),
                    "metrics_port": port})
    conn.commit()
    return out
