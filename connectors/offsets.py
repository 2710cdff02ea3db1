"""Durable capture positions, stored in a control table of the source database.

The broker here keeps topics in memory only, so the restart point cannot live in a
compacted topic; a row in ``snapsync_capture_offset`` (beside the data it describes,
as pg_chameleon and dlt do) survives a broker restart and a ``kill -9`` of capture.
The row moves only after the broker acknowledged every event before the position.
"""

from __future__ import annotations

from dataclasses import dataclass

OFFSET_DDL = """CREATE TABLE IF NOT EXISTS `snapsync_capture_offset` (
  `connector` VARCHAR(64) NOT NULL,
  `binlog_file` VARCHAR(255) NOT NULL,
  `binlog_pos` BIGINT UNSIGNED NOT NULL,
  `gtid` VARCHAR(255) NULL,
  `snapshot_completed` TINYINT(1) NOT NULL,
  `events` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`connector`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

HEARTBEAT_DDL = """CREATE TABLE IF NOT EXISTS `snapsync_heartbeat` (
  `connector` VARCHAR(64) NOT NULL,
  `ts_us` BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (`connector`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

#: The key of an exporter's watermark probe row in ``snapsync_heartbeat`` (sinks/incremental.py):
#: the embedded capture stores its restart point at the end of the probe's transaction.
WATERMARK_PROBE = "watermark-probe"

#: Control tables written by capture itself: never captured as changes.
CAPTURE_CONTROL_TABLES = ("snapsync_capture_offset", "snapsync_heartbeat")


@dataclass(frozen=True)
class StoredOffset:
    """The restart point: a transaction boundary in the binlog."""

    file: str
    pos: int
    gtid: str | None
    snapshot_completed: bool
    events: int = 0


class OffsetStore:
    """Reads and writes one connector's row (its own connection, autocommit)."""

    def __init__(self, conn, connector: str) -> None:
        self.conn = conn
        self.connector = connector
        cur = conn.cursor()
        cur.execute(OFFSET_DDL)
        cur.execute(HEARTBEAT_DDL)
        conn.commit()

    def load(self) -> StoredOffset | None:
        cur = self.conn.cursor()
        cur.execute(
            "SELECT binlog_file, binlog_pos, gtid, snapshot_completed, events FROM snapsync_capture_offset "
            "WHERE connector = %s", (self.connector,))
        row = cur.fetchone()
        self.conn.commit()
        return StoredOffset(row[0], int(row[1]), row[2], bool(row[3]), int(row[4])) if row else None

    def save(self, offset: StoredOffset) -> None:
        cur = self.conn.cursor()
        cur.execute(
            "INSERT INTO snapsync_capture_offset (connector, binlog_file, binlog_pos, gtid, snapshot_completed, "
            "events, updated_at) VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
            "binlog_file = VALUES(binlog_file), binlog_pos = VALUES(binlog_pos), gtid = VALUES(gtid), "
            "snapshot_completed = VALUES(snapshot_completed), events = VALUES(events), "
            "updated_at = VALUES(updated_at)",
            (self.connector, offset.file, offset.pos, offset.gtid, int(offset.snapshot_completed), offset.events),
        )
        self.conn.commit()

    def reset(self) -> None:
        self.conn.cursor().execute("DELETE FROM snapsync_capture_offset WHERE connector = %s", (self.connector,))
        self.conn.commit()
