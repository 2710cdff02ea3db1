"""The embedded capture's initial snapshot: every catalog table read in one consistent-read
transaction and produced as ``op`` = ``r`` events at the snapshot's binlog position, the
position stored first as not completed, then as completed once the broker acknowledged every
row (a capture stopped half-way starts the snapshot again)."""

from __future__ import annotations

import logging
import time

import pymysql
import pymysql.cursors

from snapsync.connectors.mysql import connect, description_encoder, open_consistent_snapshot
from snapsync.connectors.offsets import OffsetStore, StoredOffset
from snapsync.schemas.errors import RetriableError
from snapsync.schemas.events import ChangeEvent, SourcePosition, encode_value

log = logging.getLogger("snapsync.capture")


def snapshot_marker(*, first_table: bool, last_table: bool, first_row: bool, last_row: bool) -> str:
    """``source.snapshot`` of one snapshot row, by Debezium's rule: ``last`` (last row of the
    last table) before ``first`` (first row of the first table) before
    ``last_in_data_collection`` before ``first_in_data_collection``; ``true`` otherwise. A
    table's only row is therefore its ``last_in_data_collection``."""
    if last_row and last_table:
        return "last"
    if first_row and first_table:
        return "first"
    if last_row:
        return "last_in_data_collection"
    if first_row:
        return "first_in_data_collection"
    return "true"



def initial_snapshot(capture, store: OffsetStore) -> StoredOffset:
    """Snapshot for ``capture`` (a :class:`~snapsync.connectors.binlog_capture.Capture`); the
    completed restart point."""
    conn = connect(capture.settings.db, cursorclass=pymysql.cursors.SSCursor)
    capture.stats.state = "snapshot"
    try:
        point = open_consistent_snapshot([conn])
        file, pos, gtid = point.file, point.pos, point.gtid
        store.save(StoredOffset(file, pos, gtid, False))
        log.info("initial snapshot at %s:%d", file, pos)
        row_no = 0
        tables = list(capture._tables.values())
        for i, ds in enumerate(tables):
            cur = conn.cursor()
            # As Debezium: source.ts_ms of a snapshot row is the server's clock (whole
            # seconds) read just before its table; the position is the snapshot's.
            cur.execute("SELECT UNIX_TIMESTAMP()")
            source_ts_ms = int(cur.fetchone()[0]) * 1000
            cur.fetchall()
            cur.execute(f"SELECT * FROM `{ds.table}`")
            names = [d[0] for d in cur.description]
            enc = [description_encoder(d) for d in cur.description]
            row = cur.fetchone()
            first = True
            while row is not None:
                nxt = cur.fetchone()
                after = {n: encode_value(v, **kw) for n, v, kw in zip(names, row, enc)}
                now_ns = time.time_ns()
                ev = ChangeEvent(
                    op="r", db=capture.db, table=ds.table, before=None, after=after,
                    position=SourcePosition(file, pos, row_no, None), source_ts_ms=source_ts_ms,
                    ts_ms=now_ns // 1_000_000, ts_ns=now_ns, connector_name=capture.prefix, server_id=0,
                    snapshot=snapshot_marker(first_table=i == 0, last_table=i == len(tables) - 1,
                                             first_row=first, last_row=nxt is None),
                )
                capture._emit(ev, ds)
                first = False
                row_no += 1
                if row_no % 10000 == 0:
                    capture._producer.poll(0)
                row = nxt
            cur.close()
            if capture.stop_event.is_set():
                raise RetriableError("capture stopped during the initial snapshot; it restarts from scratch")
        conn.rollback()
    finally:
        conn.close()
    capture._flush()
    capture.stats.snapshot_rows = row_no
    offset = StoredOffset(file, pos, gtid, True, row_no)
    store.save(offset)
    log.info("initial snapshot done: %d rows", row_no)
    return offset
