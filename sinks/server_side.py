"""The fast path of the export, when the database server shares this machine's disk.

The server writes each section's lines (the same pre-escaped .DAT lines or SQL tuples
the client path streams) straight to a part file with ``SELECT ... INTO OUTFILE ...
FIELDS ESCAPED BY ''`` - no wire, no client, no Python per row - and Python then reads
the part files in order, exactly as it reads the client's stream.

Two sessions read in parallel, inside one consistent snapshot
(``connectors.mysql.open_consistent_snapshot``); if a commit keeps landing between them,
one session does all the work. Where the snapshot reports no position of its own (MySQL): one session.

Used only when a probe file written by the server appears in the staging folder (same
host, ``secure_file_priv`` allowing it, the server able to write there); otherwise the
export streams through the client (``source_reader.py``).
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql

from snapsync.connectors.dialect import Dialect
from snapsync.connectors.mysql import connect, open_consistent_snapshot
from snapsync.schemas.config import DatabaseTarget
from snapsync.schemas.errors import FatalError
from snapsync.sinks.source_reader import CHUNK, Query, disjoint_ranges

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


def _mapped_chunks(path: Path, i: int) -> Iterator[tuple]:
    """A part file in chunks of whole lines, as views of its memory map: no copy into Python
    bytes (the consumer writes or hashes each view before asking for the next)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                pos = 0
                while pos < size:
                    end = size if pos + CHUNK >= size else mm.rfind(b"\n", pos, pos + CHUNK) + 1
                    if end <= pos:  # one line longer than a chunk
                        end = mm.find(b"\n", pos + CHUNK) + 1 or size
                    chunk = view[pos:end]
                    yield ("data", i, chunk)
                    chunk.release()
                    pos = end
            finally:
                view.release()


class ServerSideReader:
    """Same protocol as :class:`sinks.source_reader.ConsistentReader`; chunks are memory
    views, and each section's ``done`` carries its row count (``reports_rows``)."""

    reports_rows = True

    def __init__(self, target: DatabaseTarget, parts: Path, dialect: Dialect, sessions: int = 2,
                 attempts: int = 5) -> None:
        self.target = target
        self.parts = parts
        self.sessions = sessions if dialect.lockless_snapshot else 1
        self.dialect = dialect
        self.attempts = attempts

    def _open(self, n: int):
        """``n`` connections inside one consistent read (fewer when a commit keeps landing
        between them); returns them and the point."""
        conns = [connect(self.target) for _ in range(n)]
        try:
            return conns, open_consistent_snapshot(conns, dialect=self.dialect, attempts=self.attempts)
        except FatalError:
            for c in conns:
                c.close()
            if n == 1:
                raise
            log.info("export sessions kept seeing different snapshots (commits in between); using one session")
            return self._open(1)

    def _ranges(self, conn, queries: list[Query]) -> dict[str, dict[int, tuple[int, int]]]:
        """Per table of the per-customer sections, the customers whose rows form a key range of
        their own in this snapshot (``disjoint_ranges``): those are read through the clustered
        index, in key order, instead of one secondary-index lookup per row. One loose index
        scan per table (``GROUP BY customer_id`` over its customer index)."""
        out = {}
        cur = conn.cursor()
        for table, pk in {(q.table, q.pk) for q in queries if q.customer is not None and q.pk}:
            cur.execute(f"SELECT `customer_id`, MIN(`{pk}`), MAX(`{pk}`) FROM `{table}` GROUP BY `customer_id`")
            out[table] = disjoint_ranges({int(c): (int(lo), int(hi)) for c, lo, hi in cur.fetchall()})
        return out

    def read(self, queries: list[Query]) -> Iterator[tuple]:
        self.parts.mkdir(parents=True, exist_ok=True, mode=0o700)
        conns, point = self._open(self.sessions)
        try:
            ranges = self._ranges(conns[0], queries)
        except BaseException:
            for c in conns:
                c.close()
            raise
        yield ("pos", point)
        paths = [self.parts / f"{i:05d}.part" for i in range(len(queries))]
        ready = [threading.Event() for _ in queries]
        errors: list[BaseException] = []
        lanes = [list(range(len(queries)))[k::len(conns)] for k in range(len(conns))]

        counts = [0] * len(queries)

        def work(conn, lane):
            try:
                cur = conn.cursor()
                for i in lane:
                    q = queries[i]
                    sql = q.sql(ranges.get(q.table, {}).get(q.customer)).rstrip(";")
                    cur.execute(f"{sql} INTO OUTFILE %s {_OUTFILE}", (str(paths[i]),))
                    counts[i] = cur.rowcount  # the server counts the rows it wrote
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
                os.chmod(path, 0o600)  # the server writes with its own umask (0644): private like the rest
                yield from _mapped_chunks(path, i)
                os.unlink(path)
                yield ("done", i, counts[i])
        finally:
            for t in threads:
                t.join()
            for c in conns:
                c.close()
        self.parts.rmdir()
