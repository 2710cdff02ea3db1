"""Consistent reads of the practice database for snapshot exports.

One ``mariadb``/``mysql`` command-line client session runs a script: open a
consistent-read transaction, report the binlog position of that snapshot, then one
``SELECT`` per (data set, customers) whose single column is the row already formatted by
the server (a .DAT line or an SQL tuple: ``sinks/formats/``' ``row_expr``). The client
runs in ``--batch --raw --quick`` mode and streams the lines out; Python only cuts the
stream into files, counts rows and hashes.

Why the client and not a Python driver: the values never need decoding (the text
protocol already carries MySQL's own text), and the client moves ~150 MB/s where a
Python row loop moves ~10 (see docs/benchmarks.md).

Stream framing: every section starts with a marker line that begins with a NUL byte.
Data lines can never contain NUL: .DAT escapes it as ``\\0`` and ``QUOTE()`` as ``\\0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from snapsync.connectors.dialect import Dialect, SnapshotPoint
from snapsync.connectors.mysql import snapshot_script_lines
from snapsync.schemas.config import DatabaseTarget
from snapsync.schemas.errors import FatalError, RetriableError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Query:
    """One section of the export: ``SELECT <expr> FROM <table> WHERE ...``.

    ``customer`` and ``pk`` name the one customer of a per-customer section and the table's
    integer primary key: a reader that knows the customer's key range in its snapshot can
    read the rows through the clustered index (:meth:`sql` with ``pk_range``).
    """

    key: str
    table: str
    expr: str
    where: str = ""
    order_by: str = ""
    limit: int | None = None
    customer: int | None = None
    pk: str | None = None

    def sql(self, pk_range: tuple[int, int] | None = None) -> str:
        """The statement; with ``pk_range`` it reads the primary-key range ``[lo, hi]`` in key
        order (the same rows: the customer condition stays)."""
        s = f"SELECT {self.expr} FROM `{self.table}`"
        where = self.where
        if pk_range is not None and self.pk:
            s += " FORCE INDEX (PRIMARY)"
            where = f"`{self.pk}` BETWEEN {int(pk_range[0])} AND {int(pk_range[1])}" + (f" AND {where}" if where else "")
        if where:
            s += f" WHERE {where}"
        if self.order_by:
            s += f" ORDER BY {self.order_by}"
        if self.limit is not None:
            s += f" LIMIT {int(self.limit)}"
        return s + ";"

    def chunk_script(self, part: int, parts: int) -> list[str]:
        """The statements of part ``part`` of ``parts`` of this section: its key range read in the
        snapshot, cut in ``parts`` equal spans, this part's span read through the clustered index
        (each session computes the same range in the same snapshot; the parts in order are the
        section in key order)."""
        pk, table = f"`{self.pk}`", f"`{self.table}`"
        where = f" AND {self.where}" if self.where else ""
        order = f" ORDER BY {self.order_by}" if self.order_by else ""
        lo = f"@lo + ((@hi - @lo + 1) * {int(part)}) DIV {int(parts)}"
        hi = f"@lo + ((@hi - @lo + 1) * {int(part) + 1}) DIV {int(parts)} - 1"
        return [
            f"SELECT MIN({pk}), MAX({pk}) INTO @lo, @hi FROM {table}{' WHERE ' + self.where if self.where else ''};",
            f"SELECT {self.expr} FROM {table} FORCE INDEX (PRIMARY) WHERE {pk} BETWEEN {lo} AND {hi}{where}{order};",
        ]

    def script(self) -> list[str]:
        """The section's statements for a client script, which cannot look at a result before
        it sends the next statement. A per-customer section with an integer key reads, in the
        snapshot, the customer's key range and row count (one lookup in the customer index),
        then its rows through the clustered index when that range holds at most twice as many
        keys as the customer has rows (rows stored together, the common case), through the
        customer index otherwise. Of the two statements the optimizer finds one an impossible
        WHERE (user variables are constants to it): it reads nothing."""
        if self.customer is None or not self.pk or self.limit is not None or not self.where:
            return [self.sql()]
        pk, table = f"`{self.pk}`", f"`{self.table}`"
        order = f" ORDER BY {self.order_by}" if self.order_by else ""
        return [
            f"SELECT MIN({pk}), MAX({pk}), COUNT(*) INTO @lo, @hi, @n FROM {table} WHERE {self.where};",
            "SET @dense = @n > 0 AND @hi - @lo + 1 <= 2 * @n;",
            f"SELECT {self.expr} FROM {table} FORCE INDEX (PRIMARY) WHERE @dense AND {pk} BETWEEN @lo AND @hi "
            f"AND {self.where}{order};",
            f"SELECT {self.expr} FROM {table} WHERE NOT @dense AND {self.where}{order};",
        ]


def disjoint_ranges(ranges: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """The customers whose primary-key range ``[lo, hi]`` overlaps no other customer's: their
    range holds only their rows, so a clustered range read touches nothing else."""
    order = sorted(ranges.items(), key=lambda kv: kv[1][0])
    out = {}
    for i, (customer, (lo, hi)) in enumerate(order):
        before = order[i - 1][1][1] if i > 0 else None
        after = order[i + 1][1][0] if i + 1 < len(order) else None
        if (before is None or before < lo) and (after is None or after > hi):
            out[customer] = (lo, hi)
    return out


def client_binary() -> str:
    for name in ("mariadb", "mysql"):
        path = shutil.which(name)
        if path:
            return path
    raise FatalError("neither the `mariadb` nor the `mysql` command-line client is installed: "
                     "install mariadb-client (Debian) or mysql-client")


def _marker(text: str) -> str:
    return f"SELECT CONCAT(CHAR(0 USING utf8mb4), '{text}');"


def build_script(queries: list[Query], dialect: Dialect, *, numbers: list | None = None,
                 before: list[str] = ()) -> str:
    """The client's script: ``before`` (a barrier), the snapshot, then each query under the
    marker of its number (``numbers``: the sections' numbers in the whole export; a number
    ``(i, k, n)`` is part ``k`` of ``n`` of section ``i``, marked ``Qi.k``)."""
    lines = [*before, *snapshot_script_lines(dialect, lambda: _marker("POS"))]
    for number, q in zip(numbers if numbers is not None else range(len(queries)), queries):
        if isinstance(number, tuple):
            i, k, n = number
            lines.append(_marker(f"Q{i}.{k}"))
            lines.extend(q.chunk_script(k, n))
            continue
        lines.append(_marker(f"Q{number}"))
        lines.extend(q.script())
    lines.append(_marker("END"))
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def start_client(target: DatabaseTarget, script: str, tmp: str, name: str = "export") -> subprocess.Popen:
    """The command-line client running ``script`` (its stdout a pipe, its stderr in
    ``proc.errfile``), files in the private folder ``tmp``."""
    # The password goes in a private options file, never on the command line.
    opts = os.path.join(tmp, f"{name}.cnf")
    fd = os.open(opts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("[client]\n")
        f.write(f"user={target.user}\n")
        if target.password:
            # Option-file value: inside double quotes, backslash and quote are escaped
            # (an unescaped \b, \t, \n ... would be read as a control character).
            escaped = target.password.replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'password="{escaped}"\n')
    cmd = [client_binary(), f"--defaults-extra-file={opts}", f"--host={target.host}", f"--port={target.port}",
           "--protocol=TCP", "--batch", "--raw", "--skip-column-names", "--quick", "--default-character-set=utf8mb4",
           "--max-allowed-packet=1G", "--no-auto-rehash", target.database]
    # The script goes in from a file: writing it to a pipe while the client's output is not
    # yet being read would deadlock once both pipes are full.
    script_path = os.path.join(tmp, f"{name}.sql")
    with open(script_path, "w", encoding="utf-8") as f:
        f.write(script)
    errf = tempfile.TemporaryFile()
    with open(script_path, "rb") as stdin:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=errf)
    proc.errfile = errf
    return proc


def client_failure(proc: subprocess.Popen, rc: int) -> Exception:
    """The error of a client that exited with ``rc`` (its message is the server's, no row values)."""
    proc.errfile.seek(0)
    message = proc.errfile.read().decode("utf-8", "replace").strip()
    if "Access denied" in message:
        return FatalError(f"the database refused the export's login: {message}")
    return RetriableError(f"the export read failed (client exit {rc}): {message}")


class ConsistentReader:
    """Runs the export script in one client session and yields its sections.

    Yields ``("pos", SnapshotPoint)`` once, then for each query ``("data", i, bytes)``
    chunks (whole lines only) and ``("done", i, None)``.
    """

    reports_rows = False  # the writer counts the lines of its chunks

    def __init__(self, target: DatabaseTarget, dialect: Dialect) -> None:
        self.target = target
        self.dialect = dialect

    def read(self, queries: list[Query]) -> Iterator[tuple]:
        with tempfile.TemporaryDirectory(prefix="snapsync-client-") as tmp:
            proc = start_client(self.target, build_script(queries, self.dialect), tmp)
            try:
                assert proc.stdout
                yield from self._sections(proc.stdout)
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if rc != 0:
                raise client_failure(proc, rc)

    def _sections(self, stream) -> Iterator[tuple]:
        buf = b""
        current: int | None = None  # index of the query whose rows are streaming
        in_pos = False
        pos_lines: list[bytes] = []
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            buf += chunk
            cut = buf.rfind(b"\n") + 1  # hand out whole lines only
            if cut == 0:
                continue
            data, buf = buf[:cut], buf[cut:]
            start = 0
            while start < len(data):
                m = data.find(b"\0", start)
                end = len(data) if m < 0 else m
                if end > start:
                    if in_pos:
                        pos_lines.extend(data[start:end].splitlines())
                    elif current is not None:
                        yield ("data", current, data[start:end])
                if m < 0:
                    break
                nl = data.index(b"\n", m)
                tag = data[m + 1:nl].decode()
                if in_pos:
                    yield ("pos", self._parse_pos(pos_lines))
                    in_pos = False
                if current is not None:
                    yield ("done", current, None)
                    current = None
                if tag == "POS":
                    in_pos = True
                elif tag.startswith("Q"):  # Q<section> or, for a part of a section, Q<section>.<part>
                    current = int(tag[1:]) if "." not in tag else tuple(int(x) for x in tag[1:].split("."))
                start = nl + 1
        if buf:
            raise RetriableError("the export stream ended in the middle of a line")

    def _parse_pos(self, lines: list[bytes]) -> SnapshotPoint:
        return self.dialect.parse_snapshot_report([ln.decode().split("\t") for ln in lines if ln])
