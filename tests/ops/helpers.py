"""Running the long-running commands as processes, as an operator would, and reading their
metrics and health ports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from snapsync.connectors.metrics import scrape
from snapsync.connectors.mysql import connect
from snapsync.control import snapshot_settings
from snapsync.control.accounts import customers_of
from snapsync.local import free_port, stop_pid
from snapsync.seed import seed
from tests.conftest import env_for, new_database, settings_for

BIN = str(Path(sys.executable).with_name("snapsync"))


def spawn(s, args: list[str], log: Path) -> subprocess.Popen:
    """``snapsync ARGS`` as a process, its output appended to ``log``."""
    return subprocess.Popen([BIN, *args], env=env_for(s), stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def run(s, args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], env=env_for(s), capture_output=True, text=True, **kw)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metrics(port: int) -> dict:
    return scrape(get(port, "/metrics")[1])


def value(port: int, name: str, **labels) -> float | None:
    """The sample ``name`` with exactly these labels (None when absent)."""
    return metrics(port).get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def total(port: int, name: str, **match) -> float:
    """The sum of ``name`` over every sample whose labels include ``match``."""
    return sum(v for (n, labels), v in metrics(port).items()
               if n == name and all(dict(labels).get(k) == str(x) for k, x in match.items()))


def wait_until(cond, timeout: float = 60.0, what: str = "condition", every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout:.0f}s")
        time.sleep(every)


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            return get(port, "/readyz")[0] == 200
        except OSError:
            return False
    wait_until(ready, timeout, f"readiness on port {port}")


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        stop_pid(p.pid, grace=15)


def q(s, sql: str, args=()) -> list[tuple]:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


def qs(s, sql: str, args=()) -> list[tuple]:
    """:func:`q` on the state store."""
    with connect(s.state, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


def accounts_db(base, name: str, accounts: int, scale: float = 0.004, fmt: str = "dat"):
    """Database ``name`` (topic prefix ``name``): one customer per account, snapshots enabled."""
    s = settings_for(base, name, topic_prefix=name)
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=accounts, scale=scale, seed_value=5, accounts=accounts)
        owned = {a: [c for c, _n in customers_of(conn, a)] for a in range(1, accounts + 1)}
    for a, customers in owned.items():
        snapshot_settings.configure(s, a, who="test-setup", enabled=True, customers=tuple(customers), format=fmt,
                                    kind="full", packaging="per-customer")
    return s


def status_json(s) -> dict:
    r = run(s, ["status", "--json"], timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


__all__ = ["free_port"]
