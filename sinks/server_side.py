"""The fast path of the export, when the database server shares this machine's disk.

The server writes each section's lines (the same pre-escaped .DAT lines or SQL tuples
the client path streams) straight to a part file with ``SELECT ... INTO OUTFILE ...
FIELDS ESCAPED BY ''`` - no wire, no client, no Python per row - and Python then reads
the part files in order, exactly as it reads the client's stream.

Two sessions read in parallel. Each opens ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
and MariaDB reports the binlog position that snapshot corresponds to; when both report
the same position they saw the same committed transactions, so the sessions are one
consistent read. If they differ (a commit landed in between), they try again, and after
a few tries one session does all the work. MySQL has no such report: it uses one session.

Used only when a probe file written by the server appears in the staging folder (same
host, ``secure_file_priv`` allowing it, the server able to write there); otherwise the
export streams through the client (``source_reader.py``).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql

from schemas.config import DatabaseTarget
from sinks.source_reader import CHUNK, Query, SnapshotPoint
from snapsync.db import connect

log = logging.getLogger("snapsync.export")
# One column per row, so the TAB terminator is never written; an empty terminator would
# switch the server to fixed-width rows (padded). ESCAPED BY '' keeps our own escaping.
_OUTFILE = "FIELDS TERMINATED BY '\\t' ESCAPED BY '' LINES TERMINATED BY '\\n'"


def server_can_write(target: DatabaseTarget, folder: Path) -> bool:
    """True when the server can write files into ``folder`` that this process can read."""
    if target.host not in ("127.0.0.1", "localhost", "::1"):
        return False
    probe = folder / f".probe-{uuid.uuid4().hex}"
    try:
        with connect(target) as conn:
            conn.cursor().execute(f"SELECT 'ok' INTO OUTFILE %s {_OUTFILE}", (str(probe),))
        ok = probe.read_bytes() == b"ok\n"
    except (pymysql.MySQLError, OSError):
        return False
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return ok


class ServerSideReader:
    """Same protocol as :class:`sinks.source_reader.ConsistentReader`."""

    def __init__(self, target: DatabaseTarget, parts: Path, sessions: int = 2, mariadb: bool = True,
                 attempts: int = 5) -> None:
        self.target = target
        self.parts = parts
        self.sessions = sessions if mariadb else 1
        self.attempts = attempts

    def _open(self, n: int):
        """``n`` connections inside one consistent read; returns them and the point."""
        for _ in range(self.attempts):
            conns = [connect(self.target) for _ in range(n)]
            points = []
            for c in conns:
                cur = c.cursor()
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SET SESSION time_zone = '+00:00'")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            for c in conns:
                cur = c.cursor()
                cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                st = {k.lower(): v for k, v in cur.fetchall()}
                points.append((st["binlog_snapshot_file"], int(st["binlog_snapshot_position"])))
            if len(set(points)) == 1:
                cur = conns[0].cursor()
                cur.execute("SELECT IFNULL(BINLOG_GTID_POS(%s, %s), ''), UTC_TIMESTAMP(6)", points[0])
                gtid, now = cur.fetchone()
                return conns, SnapshotPoint(points[0][0], points[0][1], gtid or None, str(now))
            for c in conns:
                c.close()
            log.info("export sessions saw different snapshots (a commit in between); trying again")
        if n > 1:
            return self._open(1)
        raise RuntimeError("could not open a consistent snapshot")

    def read(self, queries: list[Query]) -> Iterator[tuple]:
        self.parts.mkdir(parents=True, exist_ok=True, mode=0o700)
        conns, point = self._open(self.sessions)
        yield ("pos", point)
        paths = [self.parts / f"{i:05d}.part" for i in range(len(queries))]
        ready = [threading.Event() for _ in queries]
        errors: list[BaseException] = []
        lanes = [list(range(len(queries)))[k::len(conns)] for k in range(len(conns))]

        def work(conn, lane):
            try:
                cur = conn.cursor()
                for i in lane:
                    sql = queries[i].sql().rstrip(";")
                    cur.execute(f"{sql} INTO OUTFILE %s {_OUTFILE}", (str(paths[i]),))
                    ready[i].set()
                conn.commit()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the reading side
                errors.append(exc)
                for e in ready:
                    e.set()

        threads = [threading.Thread(target=work, args=(c, lane), daemon=True) for c, lane in zip(conns, lanes)]
        for t in threads:
            t.start()
        try:
            # Hand each section on as soon as it and those before it are written, so the
            # hashing and copying here overlap with the server writing the next ones.
            for i, path in enumerate(paths):
                ready[i].wait()
                if errors:
                    raise errors[0]
                with open(path, "rb") as f:
                    while True:
                        chunk = f.read(CHUNK)
                        if not chunk:
                            break
                        if not chunk.endswith(b"\n"):  # whole lines only
                            chunk += f.readline()
                        yield ("data", i, chunk)
                os.unlink(path)
                yield ("done", i, None)
        finally:
            for t in threads:
                t.join()
            for c in conns:
                c.close()
        self.parts.rmdir()
