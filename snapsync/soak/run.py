"""``snapsync soak``: days of running in minutes, on a local stack of its own.

Set-up: a fresh local stack under the soak's home, two accounts of three customers, Data Sync
groups in both modes with a chain (account 1: 1 -> 3 override of codes and facilities, 3 -> 5
create-only of codes; account 2: 2 -> 4, 6 create-only of payers and referring providers),
account 1 taking incremental snapshots per customer (.DAT and MySQL in turn) and account 2 full
ones (.DAT, MySQL and Parquet, per customer and combined, in turn). Then every long-running
command as its own process: the capture, the worker, two export workers, the scheduler
(``--jobs``, on the soak's clock) and the web app.

The clock: one simulated day per "day" of ``day_seconds``; the writer dates its changes with
it (``SET TIMESTAMP``) and the scheduler reads it from a file (``--clock-file``). Simulated days
lie in the past, so every cutoff is behind the source's real clock, as a night's is by morning.

Each simulated night:

1. **dusk**: the writer is held; Data Sync must settle (every group's rule holds) within
   ``settle_timeout``; the source's rows of both accounts are read: the oracle of the night;
2. the clock moves to 01:00:30 of the next day: the incremental (00:00 cutoff) and full
   (01:00) slots are due, published as jobs, exported by the export workers;
3. every delivery made since the last night is loaded as a user loads it (the incremental
   ones on the ones before) and compared with the oracle; ``current`` must be whole;
4. account 2's format and packaging (and account 1's format) change for the next night, and
   the writer goes on.

Faults run all along from a schedule drawn from the seed: ``kill -9`` and restart of each
process, the database killed and restarted, the broker killed and started again empty (the
local Tansu keeps topics in memory: ``control/broker.py`` notices and recovers), a process
stopped (SIGSTOP) for longer than its session timeout. The driver's own reads are kept out of a database restart (a lock): they are
the observer, not the system under test.

At the end, the table: writes committed, faults injected by kind, deliveries made, and each
invariant with its count of violations; :class:`Report`. Decisions in ``docs/decisions.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import random
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from snapsync.soak.chaos import Chaos
from snapsync.soak.fleet import Supervised
from snapsync.soak.oracle import Loader, differences, parquet_rows, source_rows, sync_violations
from snapsync.soak.writer import MARK, Writer

log = logging.getLogger("snapsync.soak")

#: The first simulated day (in the past: every cutoff is behind the source's clock).
FIRST_DAY = dt.date(2026, 1, 5)
#: Account 2's full packages, night after night.
FULL_ROTATION = [("dat", "per-customer"), ("mysql", "combined"), ("parquet", "per-customer"),
                 ("dat", "combined"), ("parquet", "combined"), ("mysql", "per-customer")]
INCREMENTAL_ROTATION = ["dat", "dat", "mysql"]
INVARIANTS = (
    "incremental deliveries equal the source as of their cutoff",
    "full deliveries equal the source at their snapshot",
    "Data Sync targets follow their groups' rules",
    "every slot delivered within its night",
    "`current` always whole",
    "every fault shown by `snapsync status` while it lasted, and cleared after",
    "no traceback in any log",
    "no row value in any log",
    "memory bounded (growth under 100 MiB/h)",
)


@dataclass
class Report:
    minutes: float
    seed: int
    nights: int = 0
    writes: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    deliveries: Counter = field(default_factory=Counter)
    violations: dict[str, int] = field(default_factory=lambda: {k: 0 for k in INVARIANTS})
    details: list[str] = field(default_factory=list)
    exits: dict[str, list[int]] = field(default_factory=dict)
    memory: dict[str, float | None] = field(default_factory=dict)
    status_checks: int = 0  # faults seen in `snapsync status` while they lasted (and cleared after)

    def violate(self, invariant: str, detail: str, n: int = 1) -> None:
        self.violations[invariant] += n
        self.details.append(f"{invariant}: {detail}")
        log.warning("soak: %s: %s", invariant, detail)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def to_json(self) -> dict:
        return {"minutes": self.minutes, "seed": self.seed, "nights": self.nights, "writes": dict(self.writes),
                "faults": dict(self.faults), "fault_kinds": len(self.faults), "faults_total": sum(self.faults.values()),
                "deliveries": dict(self.deliveries), "violations": self.violations, "details": self.details,
                "exits": self.exits, "memory_mib_per_hour": self.memory, "status_checks": self.status_checks,
                "ok": self.ok}


class Clock:
    """The simulated clock: held at an instant, or running from one instant to another over
    some real seconds; written to a file for the scheduler."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._from = self._to = 0.0
        self._t0, self._span = time.monotonic(), 1.0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    def hold(self, at: dt.datetime) -> None:
        self.run(at, at, 1.0)

    def run(self, start: dt.datetime, end: dt.datetime, seconds: float) -> None:
        with self._lock:
            self._from, self._to = start.timestamp(), end.timestamp()
            self._t0, self._span = time.monotonic(), max(seconds, 0.001)
        self.write()

    def now(self) -> float:
        with self._lock:
            f = min(1.0, (time.monotonic() - self._t0) / self._span)
            return self._from + (self._to - self._from) * f

    def write(self) -> None:
        """The file rewritten whole (a reader never sees half an instant); one writer at a time."""
        text = dt.datetime.fromtimestamp(self.now(), dt.timezone.utc).isoformat()
        with self._write_lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.path)


def ny(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    from snapsync.schemas.schedule import local_to_utc

    return local_to_utc(day, dt.time(hour, minute, second))


def _fresh_home(home: Path) -> None:
    from snapsync.local import LocalStack

    if (home / "local" / "stack.json").is_file():
        LocalStack(home).down()
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, mode=0o700)


def _deliveries(settings, seen: set[int]) -> list[tuple]:
    """Deliveries recorded and not seen yet, in the order they were made."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT delivery_id, account_id, slot_date, kind, detail FROM snapsync_delivery "
                    "WHERE status = 'delivered' ORDER BY finished_at, delivery_id")
        rows = cur.fetchall()
        conn.commit()
    return [(r[0], r[1], r[2], r[3], Path(json.loads(r[4])["delivered_path"]), json.loads(r[4]))
            for r in rows if r[0] not in seen]


def whole(folder: Path) -> list[str]:
    """What is wrong with a delivered package folder (empty: every file its manifest lists is
    there with its digest)."""
    problems = []
    for pkg in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            manifest = json.loads((pkg / "manifest.json").read_text())
        except (OSError, ValueError):
            problems.append(f"{pkg.name}: no readable manifest")
            continue
        for f in manifest["files"]:
            path = pkg / f["file"]
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
                problems.append(f"{pkg.name}/{f['file']}: missing or not as its manifest says")
    return problems


class Soak:
    """One soak run (see the module docstring)."""

    def __init__(self, home: Path, minutes: float, seed: int, say: Callable[[str], None], *,
                 customers: int = 6, scale: float = 0.003, fault_every: float | None = None) -> None:
        self.home, self.minutes, self.seed, self.say = Path(home).resolve(), minutes, seed, say
        self.customers, self.scale = customers, scale
        self.rng = random.Random(seed)
        self.report = Report(minutes, seed)
        self.day_seconds = min(40.0, max(10.0, minutes * 60 / 10))
        self.fault_every = fault_every or (6.0 if minutes <= 5 else 20.0)
        self.db_lock = threading.Lock()
        self.applied: dict[str, Loader] = {}
        self.seen: set[int] = set()

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        from snapsync.connectors.mysql import connect, ensure_database
        from snapsync.control import data_sync, snapshot_settings
        from snapsync.control.migrate import migrate
        from snapsync.local import LocalStack, free_port
        from snapsync.schemas.config import load_settings, settings_env
        from snapsync.seed import seed

        _fresh_home(self.home)
        self.stack = LocalStack(self.home)
        st = self.stack.up()
        self.settings = s = load_settings(None, database_url=st.database_url, kafka_bootstrap=st.kafka_bootstrap,
                                          home=str(self.home), topic_prefix="soak")
        ensure_database(s.db)
        with connect(s.db) as conn:
            seed(conn, self.customers, self.scale, self.seed, accounts=2)
        migrate(s)
        self.accounts = {1: [c for c in range(1, self.customers + 1) if c % 2 == 1],
                         2: [c for c in range(1, self.customers + 1) if c % 2 == 0]}
        a, b = self.accounts[1], self.accounts[2]
        for account in (1, 2):
            data_sync.enable_service(s, account)
        data_sync.create_group(s, a[0], (a[1],), ("codes", "facilities"), "override")
        data_sync.create_group(s, a[1], (a[2],), ("codes",), "create-only")
        data_sync.create_group(s, b[0], tuple(b[1:]), ("payers", "referring_providers"), "create-only")
        self.sources = {a[0]: ("cpt_code", "icd_code", "facility"), b[0]: ("payor", "referring_provider")}
        snapshot_settings.configure(s, 1, customers=a, kind="incremental", format="dat", packaging="per-customer",
                                    keep=3, enabled=True)
        self._configure_full(0)
        self.clock = Clock(self.home / "soak-clock")
        self.clock.hold(ny(FIRST_DAY - dt.timedelta(days=1), 2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_") or k == "SNAPSYNC_DEBUG"}
        env.update(settings_env(s))
        logs = self.home / "logs"
        logs.mkdir(mode=0o700)
        web_port = free_port()
        commands = {
            "capture": ["capture", "--heartbeat-interval", "0.5", "--commit-interval", "0.5"],
            "worker": ["worker"],
            "export-worker-1": ["export-worker", "--lease", "10"],
            "export-worker-2": ["export-worker", "--lease", "10"],
            "scheduler": ["snapshot", "scheduler", "--jobs", "--interval", "1", "--clock-file",
                          str(self.clock.path)],
            "web": ["web", "--port", str(web_port)],
        }
        self.fleet = {role: Supervised(role, args, env, logs / f"{role}.log") for role, args in commands.items()}

    def _configure_full(self, night: int) -> None:
        from snapsync.control import snapshot_settings

        fmt, packaging = FULL_ROTATION[night % len(FULL_ROTATION)]
        snapshot_settings.configure(self.settings, 2, customers=self.accounts[2], kind="full", format=fmt,
                                    packaging=packaging, keep=3, enabled=True)

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> Report:
        self.setup()
        self.say(f"soak: local stack in {self.stack.root}; {self.customers} customers of 2 accounts; "
                 f"{self.minutes:g} min, seed {self.seed}; a simulated day every ~{self.day_seconds:.0f} s, "
                 f"a fault every ~{self.fault_every:.0f} s")
        for p in self.fleet.values():
            p.start()
        writer = Writer(self.settings.db, random.Random(self.seed + 1), self.clock.now,
                        self.accounts[1] + self.accounts[2], self.sources)
        chaos = Chaos(random.Random(self.seed + 2), self.fleet, self.stack, self.report, self.db_lock,
                      self.fault_every, self.clock)
        chaos.settings = self.settings
        deadline = time.monotonic() + self.minutes * 60
        day = FIRST_DAY
        try:
            writer.start()
            chaos.start()
            while True:
                self.clock.run(ny(day - dt.timedelta(days=1), 2), ny(day - dt.timedelta(days=1), 23, 59),
                               self.day_seconds)
                writer.resume()
                time.sleep(self.day_seconds)
                writer.quiet()
                self.night(day)
                self.report.writes = Counter(writer.counts)
                self.say(f"soak: night {self.report.nights} ({day}) done: {writer.counts['committed']:,} writes, "
                         f"{sum(self.report.faults.values())} faults, {sum(self.report.deliveries.values())} "
                         f"deliveries, {sum(self.report.violations.values())} violation(s)")
                day += dt.timedelta(days=1)
                if time.monotonic() >= deadline:
                    break
        finally:
            chaos.stop_event.set()
            chaos.join(30)
            writer.stop()
            self.report.writes = Counter(writer.counts)
            self.finish()
        return self.report

    def night(self, day: dt.date) -> None:
        """Dusk, the slots of ``day`` and their checks (module docstring)."""
        from snapsync.control.sync_groups import load_groups
        from snapsync.connectors.state import connect_state

        self.report.nights += 1
        self.clock.hold(ny(day - dt.timedelta(days=1), 23, 59, 30))
        def groups_now():
            with connect_state(self.settings) as conn:
                return load_groups(conn)

        with self.db_lock:
            groups = self._retry(groups_now)
        problems = self._until(lambda: sync_violations(self.settings.db, groups), 120.0)
        for p in problems:
            self.report.violate("Data Sync targets follow their groups' rules", p)
        with self.db_lock:
            oracle = {acct: self._retry(lambda c=c: source_rows(self.settings.db, c))
                      for acct, c in self.accounts.items()}
        self.clock.hold(ny(day, 1, 0, 30))
        deadline = time.monotonic() + 240.0
        seen: set[int] = set()
        while time.monotonic() < deadline and seen != {1, 2}:
            time.sleep(0.5)
            with self.db_lock:
                for d in self._retry(lambda: _deliveries(self.settings, self.seen)):
                    self.check(d, oracle if d[2] == day else None)
                    self.seen.add(d[0])
                    if d[2] == day:
                        seen.add(d[1])
        for account in {1, 2} - seen:
            self.report.violate("every slot delivered within its night", f"account {account}, {day}: not delivered "
                                "within 240 s of its slot")
        from snapsync.control import snapshot_settings

        with self.db_lock:
            self._retry(lambda: self._configure_full(self.report.nights))
            self._retry(lambda: snapshot_settings.configure(self.settings, 1, format=INCREMENTAL_ROTATION[
                self.report.nights % len(INCREMENTAL_ROTATION)]))

    def check(self, delivery: tuple, oracle: dict | None) -> None:
        """Load one delivery as its users would and compare it with the night's oracle (None:
        a delivery of an earlier night, loaded but not compared)."""
        delivery_id, account, slot_date, kind, path, detail = delivery
        self.report.deliveries[f"{kind} {detail.get('format')} {detail.get('packaging')}"] += 1
        for p in whole(path):
            self.report.violate("`current` always whole", f"delivery {delivery_id}: {p}")
        current = (path.parent.parent / "current").resolve()  # <account>/current -> deliveries/<id>
        if oracle is not None and current != path.resolve():
            self.report.violate("`current` always whole", f"delivery {delivery_id}: `current` is {current.name}")
        invariant = ("incremental deliveries equal the source as of their cutoff" if kind == "incremental"
                     else "full deliveries equal the source at their snapshot")
        for pkg in sorted(p for p in path.iterdir() if p.is_dir()):
            manifest = json.loads((pkg / "manifest.json").read_text())
            members = manifest["customers"]
            try:
                if manifest["format"] == "parquet":
                    got = parquet_rows(pkg)
                else:
                    key = f"{account}-{pkg.name}" if kind == "incremental" else "full"
                    if key not in self.applied or kind == "full":
                        from snapsync.schemas.config import DatabaseTarget

                        db = self.settings.db
                        self.applied[key] = Loader(DatabaseTarget(db.host, db.port, db.user, db.password,
                                                                  f"soak_target_{key.replace('-', '_')}"))
                    self.applied[key].apply(pkg)
                    got = self.applied[key].rows(members)
            except Exception as exc:  # noqa: BLE001 - a package a user cannot load is a violation
                self.report.violate(invariant, f"delivery {delivery_id} {pkg.name}: not loadable ({exc})")
                continue
            if oracle is None:
                continue
            want = {t: [r for r in rows if r[1] in members] for t, rows in oracle[account].items()}
            for diff in differences(want, got):
                self.report.violate(invariant, f"delivery {delivery_id} ({slot_date}, {manifest['format']}) "
                                    f"{pkg.name}: {diff}")

    def _until(self, problems: Callable[[], list[str]], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            with self.db_lock:
                got = self._retry(problems)
            if not got or time.monotonic() >= deadline:
                return got
            time.sleep(1.0)

    @staticmethod
    def _retry(fn):
        """``fn()``, tried again while the database is away (the observer waits a fault out)."""
        import pymysql

        from snapsync.schemas.errors import RetriableError

        for _attempt in range(60):
            try:
                return fn()
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError, RetriableError):
                time.sleep(1.0)
        return fn()

    # -- the end --------------------------------------------------------------------------------
    def finish(self) -> None:
        for p in self.fleet.values():
            p.stop()
        for role, p in self.fleet.items():
            self.report.exits[role] = p.exits
            growth = [g for g in (r.growth_per_hour() for r in p.runs) if g is not None]
            lasting = [r for r in p.runs if r.samples and r.samples[-1][0] - r.started >= 900]
            self.report.memory[role] = round(max(growth), 1) if growth else None
            if lasting and growth and max(growth) > 100:
                self.report.violate("memory bounded (growth under 100 MiB/h)", f"{role}: {max(growth):.0f} MiB/h")
        for path in sorted((self.home / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            crashes = text.count("Traceback") + text.count("internal error (")
            if crashes:
                self.report.violate("no traceback in any log", f"{path.name}: {crashes} traceback(s) or internal "
                                    "error(s)")
            if MARK in text:
                self.report.violate("no row value in any log", f"{path.name}: {text.count(MARK)} value(s)")
