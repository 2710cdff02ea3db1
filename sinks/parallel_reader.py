"""The export's remote path with several client sessions inside one consistent snapshot.

The server formats every line (``sinks/formats/``' ``row_expr``), so one session uses one of
the server's cores. Here ``sessions`` command-line clients share the sections (the largest
first, each to the least loaded), and all read the same snapshot:

1. A coordinating connection takes a named lock (``GET_LOCK``). Each client's script begins
   by waiting for that lock and giving it back at once; once every client waits (seen in the
   process list), the coordinator releases it, and the clients pass one after the other, within
   a millisecond, into ``START TRANSACTION WITH CONSISTENT SNAPSHOT``.
2. Each reports the binlog position of its own snapshot (MariaDB's ``binlog_snapshot_file``
   /``position``). Equal positions mean the same committed transactions; a commit that landed
   between two of them shows as a difference, and every client is stopped and started again
   (at most ``attempts`` times, then one session reads everything).
3. Each client's sections go to private part files as they stream; the sections are handed on
   in their order as soon as each is complete, so formatting, hashing and writing overlap.

Only where a snapshot reports its own position (MariaDB, Percona Server): MySQL's snapshot
takes an instant of global read lock per session, so it keeps one session
(``sinks/source_reader.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from snapsync.connectors.dialect import Dialect, SnapshotPoint
from snapsync.connectors.mysql import connect
from snapsync.schemas.config import DatabaseTarget
from snapsync.schemas.errors import RetriableError
from snapsync.sinks.server_side import _mapped_chunks
from snapsync.sinks.source_reader import ConsistentReader, Query, build_script, client_failure, start_client

log = logging.getLogger("snapsync.export")

#: Seconds the clients have to connect and queue up behind the barrier.
BARRIER_WAIT = 30.0


class _Mismatch(Exception):
    """Two sessions reported different snapshot positions (a commit landed between them)."""


def assign(queries: list[Query], sizes: dict[str, int], sessions: int) -> list[list]:
    """What each session reads: the sections' numbers, the largest (by ``sizes`` of their tables,
    split evenly over a table's per-customer sections) first, each to the least loaded
    session; a section larger than a session's fair share whose integer key allows it is cut
    in one part per session (``(i, k, n)``: part ``k`` of ``n``), one part to each. In each
    session, in the export's order."""
    per_table: dict[str, int] = {}
    for q in queries:
        per_table[q.table] = per_table.get(q.table, 0) + 1
    cost = [max(1, sizes.get(q.table, 0) // max(1, per_table[q.table])) + 1000 for q in queries]
    share = sum(cost) / sessions
    lanes: list[list] = [[] for _ in range(sessions)]
    load = [0.0] * sessions
    for i in sorted(range(len(queries)), key=lambda k: -cost[k]):
        q = queries[i]
        if cost[i] > share / 2 and q.pk and q.customer is None and q.limit is None:
            for k in range(sessions):
                lanes[k].append((i, k, sessions))
                load[k] += cost[i] / sessions
            continue
        k = load.index(min(load))
        lanes[k].append(i)
        load[k] += cost[i]
    return [sorted(lane, key=lambda n: n if isinstance(n, int) else n[0]) for lane in lanes if lane]


class ParallelClientReader:
    """Same protocol as :class:`~snapsync.sinks.source_reader.ConsistentReader` (see the module
    docstring); ``reports_rows`` False: the writer counts the lines."""

    reports_rows = False

    def __init__(self, target: DatabaseTarget, dialect: Dialect, parts: Path, sessions: int = 2,
                 attempts: int = 3) -> None:
        self.target, self.dialect, self.parts = target, dialect, parts
        self.sessions, self.attempts = sessions, attempts

    def read(self, queries: list[Query]) -> Iterator[tuple]:
        if not self.dialect.lockless_snapshot or self.sessions < 2 or len(queries) < 2:
            yield from ConsistentReader(self.target, self.dialect).read(queries)
            return
        with connect(self.target) as conn:
            cur = conn.cursor()
            cur.execute("SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
            sizes = {t: int(n or 0) for t, n in cur.fetchall()}
        lanes = assign(queries, sizes, self.sessions)
        for attempt in range(self.attempts):
            try:
                yield from self._read(queries, lanes)
                return
            except _Mismatch:
                log.info("export sessions saw different snapshots (a commit in between): try %d of %d",
                         attempt + 1, self.attempts)
        log.info("export sessions kept seeing different snapshots; one session reads everything")
        yield from ConsistentReader(self.target, self.dialect).read(queries)

    def _read(self, queries: list[Query], lanes: list[list[int]]) -> Iterator[tuple]:
        lock = f"snapsync-export-{uuid.uuid4().hex}"
        tmp = tempfile.mkdtemp(prefix="snapsync-clients-")
        self.parts.mkdir(parents=True, exist_ok=True, mode=0o700)
        parts_of = {n[0]: n[2] for lane in lanes for n in lane if isinstance(n, tuple)}  # split sections
        ready = {(i, k): threading.Event() for i in range(len(queries)) for k in range(parts_of.get(i, 1))}
        points: list[SnapshotPoint | None] = [None] * len(lanes)
        reported = threading.Event()
        errors: list[BaseException] = []
        procs, threads = [], []
        coordinator = connect(self.target, autocommit=True)
        try:
            cur = coordinator.cursor()
            cur.execute("SELECT GET_LOCK(%s, 10)", (lock,))
            barrier = [f"SELECT GET_LOCK('{lock}', {int(BARRIER_WAIT)}) INTO @snapsync_barrier;",
                       f"DO RELEASE_LOCK('{lock}');"]
            for k, lane in enumerate(lanes):
                script = build_script([queries[n if isinstance(n, int) else n[0]] for n in lane], self.dialect,
                                      numbers=lane, before=barrier)
                procs.append(start_client(self.target, script, tmp, name=f"export-{k}"))
            for k, proc in enumerate(procs):
                t = threading.Thread(target=self._drain, args=(proc, k, points, reported, ready, errors),
                                     daemon=True, name=f"export-client-{k}")
                t.start()
                threads.append(t)
            self._release_when_all_wait(cur, lock, len(procs), errors)
            deadline = time.monotonic() + BARRIER_WAIT * 2
            while not all(p is not None for p in points) and not errors:
                if time.monotonic() > deadline:
                    raise RetriableError("the export sessions did not report their snapshot in time")
                reported.wait(0.05)
                reported.clear()
            if errors:
                raise errors[0]
            if len({(p.file, p.pos) for p in points}) != 1:
                raise _Mismatch()
            yield ("pos", points[0])
            for i in range(len(queries)):
                for k in range(parts_of.get(i, 1)):  # a split section: its parts in key order
                    ready[(i, k)].wait()
                    if errors:
                        raise errors[0]
                    path = self.parts / f"{i:05d}.{k}.part"
                    yield from _mapped_chunks(path, i)
                    os.unlink(path)
                yield ("done", i, None)
        finally:
            coordinator.close()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for t in threads:
                t.join(10)
            shutil.rmtree(tmp, ignore_errors=True)
            for leftover in self.parts.glob("*.part"):
                leftover.unlink()
        try:
            self.parts.rmdir()
        except OSError:
            pass

    def _release_when_all_wait(self, cur, lock: str, n: int, errors: list) -> None:
        """Release the barrier once ``n`` sessions of this login wait for it (they then pass it
        one after the other into their snapshots)."""
        deadline = time.monotonic() + BARRIER_WAIT
        try:
            while not errors:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> "
                            "CONNECTION_ID()", (f"SELECT GET_LOCK('{lock}'%",))
                if int(cur.fetchone()[0]) >= n:
                    return
                if time.monotonic() > deadline:
                    raise RetriableError("the export sessions did not connect in time")
                time.sleep(0.002)
        finally:
            cur.execute("DO RELEASE_LOCK(%s)", (lock,))

    def _drain(self, proc, k: int, points: list, reported: threading.Event, ready: dict, errors: list) -> None:
        """One client's stream into part files, one per section or part of a section; its
        snapshot position into ``points[k]``."""
        out = None
        try:
            parser = ConsistentReader(self.target, self.dialect)
            for item in parser._sections(proc.stdout):
                if item[0] == "pos":
                    points[k] = item[1]
                    reported.set()
                    continue
                key = item[1] if isinstance(item[1], tuple) else (item[1], 0)
                if out is None:  # its first data, or an empty section
                    out = open(self.parts / f"{key[0]:05d}.{key[1]}.part", "wb", opener=_private)
                if item[0] == "data":
                    out.write(item[2])
                else:  # done
                    out.close()
                    out = None
                    ready[key].set()
            rc = proc.wait()
            if rc != 0:
                raise client_failure(proc, rc)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reading side
            errors.append(exc)
        finally:
            if out is not None:
                out.close()
            reported.set()
            if errors:
                for e in ready.values():
                    e.set()


def _private(path, flags):
    return os.open(path, flags, 0o600)
