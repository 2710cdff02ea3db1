"""The soak's processes: each long-running ``snapsync`` command as its own process, as an
operator runs them, restarted when it dies (as a service manager's restart policy does), with
its memory sampled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = str(Path(sys.executable).with_name("snapsync"))


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Incarnation:
    """One run of a process: when it started, and its resident memory over time."""

    pid: int
    started: float
    samples: list[tuple[float, int]] = field(default_factory=list)

    def growth_per_hour(self) -> float | None:
        """MiB per hour between the first sample after a minute's warm-up (libraries loaded on
        first use) and the last; None for a run shorter than five minutes."""
        warm = [(t, k) for t, k in self.samples if t - self.started >= 60.0]
        if len(warm) < 2 or warm[-1][0] - warm[0][0] < 240.0:
            return None
        (t0, k0), (t1, k1) = warm[0], warm[-1]
        return (k1 - k0) / 1024 / ((t1 - t0) / 3600)


class Supervised:
    """``snapsync ARGS`` kept running: started again when it exits (the exit is counted)."""

    def __init__(self, role: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.role, self.args, self.env, self.log = role, args, env, log
        self.proc: subprocess.Popen | None = None
        self.runs: list[Incarnation] = []
        self.exits: list[int] = []  # exit codes of runs that ended by themselves
        self.stopped_until = 0.0  # SIGSTOPped until then
        self.down_until = 0.0  # killed on purpose: started again after then

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([BIN, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.runs.append(Incarnation(self.proc.pid, time.monotonic()))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``; the next :meth:`tend` after ``down_until`` starts it again."""
        if self.alive():
            self.cont()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self, seconds: float) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped_until = time.monotonic() + seconds

    def cont(self) -> None:
        if self.stopped_until and self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.stopped_until = 0.0

    def tend(self) -> None:
        """Resume a stall that is over; start again a run that ended (counting an exit that was not ours)."""
        now = time.monotonic()
        if self.stopped_until and now >= self.stopped_until:
            self.cont()
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            if code != -signal.SIGKILL:
                self.exits.append(code)
            self.proc = None
        if self.proc is None and now >= self.down_until:
            self.start()
        if self.alive() and not self.stopped_until:
            kib = rss_kib(self.proc.pid)
            if kib is not None:
                self.runs[-1].samples.append((now, kib))

    def stop(self, grace: float = 20.0) -> None:
        if not self.alive():
            return
        self.cont()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
