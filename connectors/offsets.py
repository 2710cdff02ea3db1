"""The capture side's positions: the embedded capture's restart point (in the state store),
the heartbeat row both captures write into the source, and the committed position of either
capture as the incremental watermark reads it.

The broker here keeps topics in memory only, so the restart point cannot live in a compacted
topic; a row in the state store's ``snapsync_capture_offset`` (beside the data it describes,
as pg_chameleon and dlt do) survives a broker restart and a ``kill -9`` of capture. The row
moves only after the broker acknowledged every event before the position.

The heartbeat row (:func:`write_heartbeat`) lives in the signal schema on the source server:
it must come back through the binlog. The exporter's watermark probe is the same statement
under the key :data:`WATERMARK_PROBE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapsync.connectors.state import signal_table
from snapsync.schemas.errors import FatalError
from snapsync.schemas.events import SourcePosition

#: The heartbeat table, in the signal schema.
HEARTBEAT_TABLE = "snapsync_heartbeat"
#: The key of an exporter's watermark probe row in the heartbeat table (sinks/incremental.py):
#: the embedded capture stores its restart point at the end of the probe's transaction.
WATERMARK_PROBE = "watermark-probe"


def heartbeat_statement(schema: str, key_sql: str = "%s") -> str:
    """The heartbeat write: the server's clock in microseconds under a key. INSERT ... ON
    DUPLICATE KEY UPDATE needs INSERT and UPDATE only (REPLACE would need DELETE too); Debezium's
    ``heartbeat.action.query`` is this statement with the key written in (``key_sql``)."""
    return (f"INSERT INTO {signal_table(schema, HEARTBEAT_TABLE)} (connector, ts_us) "
            f"VALUES ({key_sql}, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED)) "
            "ON DUPLICATE KEY UPDATE ts_us = VALUES(ts_us)")


def write_heartbeat(conn, key: str) -> None:
    """Commit one heartbeat row (``conn``: from ``connect_source``)."""
    conn.cursor().execute(heartbeat_statement(conn.signal_schema), (key,))
    conn.commit()


@dataclass(frozen=True)
class StoredOffset:
    """The restart point: a transaction boundary in the binlog."""

    file: str
    pos: int
    gtid: str | None
    snapshot_completed: bool
    events: int = 0


class OffsetStore:
    """Reads and writes one connector's row (``conn``: its own state-store connection)."""

    def __init__(self, conn, connector: str) -> None:
        self.conn = conn
        self.connector = connector

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


# --- the committed position of either capture ---------------------------------------------
def stored_position(state, connector: str) -> tuple[SourcePosition | None, str]:
    """The embedded capture's stored restart point (``state``: a state-store connection),
    saved only after the producer flushed every event before it; or None with the reason."""
    cur = state.cursor()
    cur.execute("SELECT binlog_file, binlog_pos, snapshot_completed FROM snapsync_capture_offset "
                "WHERE connector = %s", (connector,))
    row = cur.fetchone()
    state.commit()
    if row is None:
        return None, f"no position stored by capture {connector!r} (is `snapsync capture` running?)"
    if not row[2]:
        return None, f"capture {connector!r} is still taking its initial snapshot"
    return SourcePosition(row[0], int(row[1])), ""


def debezium_position(client, connector: str) -> tuple[SourcePosition | None, str]:
    """The source offset Kafka Connect committed for the connector (``GET
    /connectors/{name}/offsets``), which Connect commits only for records the broker
    acknowledged. Debezium's ``pos`` there is the start of the transaction to resume in, so it
    passes a probe once a later transaction (the next probe) was captured."""
    try:
        offsets = client.offsets(connector)
    except FatalError:
        return None, f"Kafka Connect has no connector {connector!r} (deploy it, or set SNAPSYNC_CONNECTOR)"
    for item in offsets:
        off = item.get("offset") or {}
        if off.get("file") and off.get("pos") is not None:
            if off.get("snapshot") in (True, "true") and not off.get("snapshot_completed"):
                return None, f"Debezium connector {connector!r} is still snapshotting"
            return SourcePosition(str(off["file"]), int(off["pos"])), ""
    return None, f"Debezium connector {connector!r} has committed no source offset yet"


def committed_position(state, settings, client=None) -> tuple[SourcePosition | None, str]:
    """The capture's committed position (everything before it is acknowledged by the broker),
    or None with the reason: :func:`debezium_position` or :func:`stored_position` as
    ``settings.capture`` says (``client``: a ConnectClient to reuse).

    Raises:
        ConfigError: capture is debezium and no Kafka Connect URL is set.
    """
    if settings.capture != "debezium":
        return stored_position(state, settings.connector)
    if client is None:
        from snapsync.connectors.kafka_connect import ConnectClient
        from snapsync.schemas.errors import ConfigError

        if not settings.connect_url:
            raise ConfigError("capture is debezium but no Kafka Connect URL is set: "
                              "set SNAPSYNC_CONNECT_URL (or connect_url in the config file)")
        client = ConnectClient(settings.connect_url)
    return debezium_position(client, settings.connector)

