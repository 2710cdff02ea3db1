"""The soak's faults: a schedule drawn from the seed (every kind once first, then weighted
draws), the fleet tended between them (what died is started again, memory sampled), and
`snapsync status` read while a fault lasts: it must show it, then show it cleared."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from snapsync.soak.fleet import Supervised

if TYPE_CHECKING:
    from snapsync.soak.run import Clock, Report

log = logging.getLogger("snapsync.soak")

#: How often each kind is drawn, relative to a process kill (restarting the database or an
#: emptied broker costs the whole pipeline a catch-up: drawn less often, as in a real week).
WEIGHTS = {"database killed and restarted": 0.6, "broker restarted empty": 0.35}
FAULT_KINDS = ("kill -9 capture", "kill -9 worker", "kill -9 export-worker", "kill -9 scheduler", "kill -9 web",
               "database killed and restarted", "process stalled (SIGSTOP)", "broker restarted empty")
#: A process not seen for this long is shown as such by `snapsync status` (control/processes.py).
STATUS_SHOWS_AFTER = 10.0


class Chaos(threading.Thread):
    """Tends the fleet (restarts what died, samples memory) and injects the seed's faults."""

    def __init__(self, rng: random.Random, fleet: dict[str, Supervised], stack, report: Report,
                 db_lock: threading.Lock, mean_interval: float, clock: Clock) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.rng, self.fleet, self.stack, self.report = rng, fleet, stack, report
        self.db_lock, self.mean, self.clock = db_lock, mean_interval, clock
        self.stop_event = threading.Event()
        self.next_fault = time.monotonic() + self.rng.expovariate(1 / mean_interval)
        self.kinds = list(FAULT_KINDS)
        self.settings = None  # set by the soak: `snapsync status` is read with them

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            self.clock.write()
            for p in self.fleet.values():
                p.tend()
            if time.monotonic() >= self.next_fault:
                self.inject(self.kinds[len(self.report.faults) % len(self.kinds)]
                            if len(self.report.faults) < len(self.kinds) else
                            self.rng.choices(self.kinds, [WEIGHTS.get(k, 1.0) for k in self.kinds])[0])
                self.next_fault = time.monotonic() + self.rng.expovariate(1 / self.mean)

    def inject(self, kind: str) -> None:
        """One fault (every kind once first, then as the seed draws them)."""
        log.info("soak: fault: %s", kind)
        if kind.startswith("kill -9 "):
            role = kind.removeprefix("kill -9 ")
            if role == "export-worker":
                role = self.rng.choice(["export-worker-1", "export-worker-2"])
            p = self.fleet[role]
            p.kill()
            p.down_until = time.monotonic() + self.rng.uniform(0.5, 4.0)
        elif kind == "database killed and restarted":
            with self.db_lock:
                self.stack.restart_database(crash=True)
        elif kind == "broker restarted empty":
            before = self._recorded_generation() if self.settings is not None else 0
            self.stack.restart_broker()
        else:
            role = self.rng.choice(["capture", "worker", "export-worker-1", "export-worker-2", "scheduler"])
            seconds = self.rng.uniform(8.0, 14.0)  # past the 6 s session timeouts
            p = self.fleet[role]
            p.pause(seconds)
            if seconds >= STATUS_SHOWS_AFTER + 1.5 and self.settings is not None:
                self._later(self._stall_shown, p, p.proc.pid, seconds)
        if kind == "broker restarted empty" and self.settings is not None:
            self._later(self._broker_shown, before)
        self.report.faults[kind] += 1

    # -- `snapsync status` while a fault lasts -------------------------------------------------
    def _later(self, fn, *args) -> None:
        threading.Thread(target=fn, args=args, name="soak-status-check", daemon=True).start()

    def _status(self) -> dict | None:
        from snapsync.status import pipeline_status

        for _ in range(30):  # the database may be restarting: that is another fault
            try:
                return pipeline_status(self.settings)
            except Exception:  # noqa: BLE001 - tried again
                time.sleep(1.0)
        return None

    def _state_of(self, st: dict, role: str, pid: int) -> str | None:
        rows = [p for p in st["processes"].get(role, []) if p["pid"] == pid]
        return max(rows, key=lambda p: p["started_at"])["state"] if rows else None

    def _stall_shown(self, p: Supervised, pid: int, seconds: float) -> None:
        """A stopped process is shown as not seen before it goes on, and as running after."""
        role = "export-worker" if p.role.startswith("export-worker") else p.role
        time.sleep(seconds - 1.2)
        st = self._status()
        if st is not None and p.alive() and p.proc.pid == pid and self._state_of(st, role, pid) == "running":
            self.report.violate("every fault shown by `snapsync status` while it lasted, and cleared after",
                                f"{p.role} stopped for {seconds:.0f}s still shown running")
        time.sleep(8.0)
        st = self._status()
        if st is not None and p.alive() and p.proc.pid == pid and not p.stopped_until \
                and self._state_of(st, role, pid) not in ("running", None):
            self.report.violate("every fault shown by `snapsync status` while it lasted, and cleared after",
                                f"{p.role} not shown running again 7 s after its stall ended")
        self.report.status_checks += 1

    def _generation(self) -> int:
        st = self._status()
        return int(st["broker"]["generation"]) if st and st.get("broker") else 0

    def _recorded_generation(self) -> int:
        from snapsync.connectors.state import connect_state
        from snapsync.control.broker import generation

        with connect_state(self.settings) as conn:
            number = generation(conn, self.settings.topic_prefix)
            conn.commit()
        return number

    def _broker_shown(self, before: int) -> None:
        """A broker restarted empty is recovered from and shown as a new generation."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(3.0)
            if self._generation() > before:
                self.report.status_checks += 1
                return
        self.report.violate("every fault shown by `snapsync status` while it lasted, and cleared after",
                            "a broker restarted empty not shown as a new generation within 60 s")
