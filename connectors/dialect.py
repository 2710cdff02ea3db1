"""The source server's dialect: the statements that differ between MariaDB, MySQL 8.0 and
MySQL 8.2+ (8.4 LTS), chosen once from the server's version.

What differs, and what each flavour gets:

* **Binlog position**: ``SHOW MASTER STATUS`` (MariaDB, MySQL before 8.2); ``SHOW BINARY LOG
  STATUS`` (MySQL 8.2+; 8.4 removed the old statement).
* **Consistent snapshot with its binlog position**, the lightest that is exact:

  - MariaDB (and Percona Server, which ported it): ``START TRANSACTION WITH CONSISTENT
    SNAPSHOT`` and the ``binlog_snapshot_file`` / ``binlog_snapshot_position`` status of that
    very snapshot: no lock at all, so a long query on a practice table delays nothing.
  - MySQL: ``FLUSH TABLES WITH READ LOCK`` held only between opening the snapshot and reading
    the position (as mysqldump, mydumper and Debezium do). ``LOCK INSTANCE FOR BACKUP`` with
    ``performance_schema.log_status`` is not used: that pair makes the binlog position
    consistent with the redo log for a *physical* copy, while commits go on; it says nothing
    about which transactions an MVCC read view sees (``docs/decisions.md``). The lock waits
    at most ``lock_wait_timeout`` (:data:`FTWRL_WAIT` s): behind a long query it gives up
    instead of stalling every writer, and the export is tried again later.

* **GTID position**: ``@@gtid_binlog_pos`` (MariaDB) or the status's ``Executed_Gtid_Set`` (MySQL).
* **Privileges**: MariaDB 10.5+ prints ``BINLOG MONITOR`` for ``REPLICATION CLIENT`` and
  accepts both (:data:`PRIVILEGE_ALIASES`); the grants a role needs differ by the snapshot
  method (:attr:`Dialect.snapshot_privileges`: ``RELOAD`` for the lock).

No MySQL server can be installed on the development machines: the MySQL branches are covered
by unit cases on version strings (``tests/unit/test_dialect.py``), the MariaDB ones by every
integration test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Flavor = Literal["mariadb", "mysql", "percona"]

#: Seconds ``FLUSH TABLES WITH READ LOCK`` may wait for running statements (MySQL only).
FTWRL_WAIT = 10

#: Every session of a snapshot reads at REPEATABLE READ in UTC (TIMESTAMP values as stored).
_SESSION = ("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET SESSION time_zone = '+00:00'")

#: The snapshot's own position (MariaDB's information_schema; MySQL 8 has the status in
#: performance_schema). The GTID position is the server's current one, which is the
#: snapshot's when the binlog has not moved past the snapshot (checked by the caller).
_SNAPSHOT_STATUS = (
    "SELECT f.VARIABLE_VALUE, p.VARIABLE_VALUE, {gtid}, UTC_TIMESTAMP(6) FROM {table} f, {table} p "
    "WHERE f.VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE' AND p.VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION'"
)


@dataclass(frozen=True)
class SnapshotPoint:
    """The binlog position a consistent read corresponds to, the server's clock then, and the
    method that made it exact (``snapshot_method`` in the package manifest)."""

    file: str
    pos: int
    gtid: str | None
    server_time_utc: str
    method: str = "consistent-snapshot"


def parse_version(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` from ``SELECT VERSION()`` (``10.11.19-MariaDB-log``, ``8.4.3``)."""
    m = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", text)
    if m is None:
        m2 = re.match(r"\s*(\d+)\.(\d+)", text)
        if m2 is None:
            raise ValueError(f"not a server version: {text[:40]!r}")
        return int(m2.group(1)), int(m2.group(2)), 0
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass(frozen=True)
class Dialect:
    """The statements of one server flavour and version (see the module docstring)."""

    flavor: Flavor
    version: tuple[int, int, int]

    @classmethod
    def from_version(cls, version: str, comment: str = "") -> Dialect:
        """The dialect of a server from ``VERSION()`` and ``@@version_comment``."""
        text = f"{version} {comment}".lower()
        flavor: Flavor = "mariadb" if "mariadb" in text else "percona" if "percona" in text else "mysql"
        return cls(flavor, parse_version(version))

    @classmethod
    def of(cls, conn) -> Dialect:
        """The dialect of the server ``conn`` is connected to (one round trip)."""
        cur = conn.cursor()
        cur.execute("SELECT VERSION(), @@version_comment")
        version, comment = cur.fetchone()
        return cls.from_version(str(version), str(comment or ""))

    # -- what it is ---------------------------------------------------------------------------
    @property
    def mariadb(self) -> bool:
        return self.flavor == "mariadb"

    @property
    def name(self) -> str:
        label = {"mariadb": "MariaDB", "mysql": "MySQL", "percona": "Percona Server"}[self.flavor]
        return f"{label} {'.'.join(map(str, self.version))}"

    @property
    def lockless_snapshot(self) -> bool:
        """Whether a consistent snapshot reports its own binlog position (no lock needed)."""
        return self.flavor in ("mariadb", "percona")

    @property
    def snapshot_method(self) -> str:
        """How an exact snapshot position is had here: ``consistent-snapshot`` (no lock) or
        ``flush-tables-with-read-lock`` (a global read lock for an instant)."""
        return "consistent-snapshot" if self.lockless_snapshot else "flush-tables-with-read-lock"

    # -- binlog ---------------------------------------------------------------------------------
    @property
    def binlog_status(self) -> str:
        """The statement that shows the binlog's end (file, position, ..., GTID set)."""
        if self.flavor != "mariadb" and self.version >= (8, 2, 0):
            return "SHOW BINARY LOG STATUS"
        return "SHOW MASTER STATUS"

    @property
    def gtid_position(self) -> str:
        """An expression for the server's GTID position."""
        return "@@gtid_binlog_pos" if self.mariadb else "@@global.gtid_executed"

    # -- consistent snapshots ----------------------------------------------------------------------
    def snapshot_statements(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(open, report the position, after the report) statements of a consistent snapshot."""
        if self.lockless_snapshot:
            table = "information_schema.SESSION_STATUS" if self.mariadb else "performance_schema.session_status"
            report = _SNAPSHOT_STATUS.format(gtid=self.gtid_position, table=table)
            return (*_SESSION, "START TRANSACTION WITH CONSISTENT SNAPSHOT"), (report,), ()
        return ((*_SESSION, f"SET SESSION lock_wait_timeout = {FTWRL_WAIT}", "FLUSH TABLES WITH READ LOCK",
                 "START TRANSACTION WITH CONSISTENT SNAPSHOT"),
                (self.binlog_status, "SELECT '', UTC_TIMESTAMP(6)"), ("UNLOCK TABLES",))

    def parse_snapshot_report(self, rows: list[list[str]]) -> SnapshotPoint:
        """The :class:`SnapshotPoint` from the report's rows (as text). A lockless report may be
        followed by a binlog status row: when the binlog moved past the snapshot, the server's
        current GTID position is not the snapshot's, and it is left unknown."""
        if self.lockless_snapshot:
            file, pos, gtid, now = rows[0][:4]
            moved = len(rows) < 2 or (str(rows[1][0]), str(rows[1][1])) != (str(file), str(pos))
            return SnapshotPoint(str(file), int(pos), None if moved else (str(gtid) or None), str(now),
                                 self.snapshot_method)
        status, extra = rows[0], rows[-1]
        return SnapshotPoint(str(status[0]), int(status[1]), (str(status[4]) if len(status) > 4 else "") or None,
                             str(extra[1]), self.snapshot_method)

    # -- grants ----------------------------------------------------------------------------------
    @property
    def snapshot_privileges(self) -> tuple[str, ...]:
        """Global privileges a consistent snapshot needs besides SELECT."""
        return () if self.lockless_snapshot else ("RELOAD",)


#: Privileges spelled two ways (MariaDB 10.5+ renamed some; both spellings are accepted).
PRIVILEGE_ALIASES = {
    "REPLICATION SLAVE": {"REPLICATION SLAVE", "REPLICATION REPLICA"},
    "REPLICATION CLIENT": {"REPLICATION CLIENT", "BINLOG MONITOR"},
    "BINLOG MONITOR": {"REPLICATION CLIENT", "BINLOG MONITOR"},
}
