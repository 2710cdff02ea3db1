"""Deltas: per customer and per snapshot window, the newest image (or the delete) of every
changed row of the incremental data sets (Patient, Claims, Charge, Credit, Activity).

State is durable staging in the practice database (``snapsync_delta``), written by the
``deltas`` agent in one transaction per batch together with the consumed offsets
(``snapsync_delta_progress``). "Newest source position wins" makes the upsert idempotent,
so the events a ``kill -9`` makes faust deliver again change nothing.

A change's window is the first New York midnight at or after its source commit time
(``source.ts_ms``): the incremental package for cutoff C carries the windows up to C.
Snapshot reads (``op`` r) are state, not changes, and are not staged.
"""

from __future__ import annotations

import datetime as dt
import json

from schemas.catalog import dataset
from schemas.control import utcnow
from schemas.events import ChangeEvent
from schemas.schedule import NY, incremental_cutoff

# The binlog order of a change as one number: file number, position and row index.
ORDER_FILE, ORDER_POS = 10**24, 10**12

# Each assignment compares against the stored src_order, which is therefore assigned last
# (MariaDB applies ON DUPLICATE KEY UPDATE assignments left to right).
_NEWER = "VALUES(src_order) > src_order"
UPSERT = (
    "INSERT INTO snapsync_delta (customer_id, table_name, pk, window_cutoff, op, image, src_order, source_ts_ms) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
    f"op = IF({_NEWER}, VALUES(op), op), image = IF({_NEWER}, VALUES(image), image), "
    f"source_ts_ms = IF({_NEWER}, VALUES(source_ts_ms), source_ts_ms), "
    "src_order = GREATEST(VALUES(src_order), src_order)"
)


def window_cutoff(source_ts_ms: int) -> dt.datetime:
    """The cutoff (naive UTC) that closes the window of a change committed at ``source_ts_ms``."""
    local = dt.datetime.fromtimestamp(source_ts_ms / 1000, dt.timezone.utc).astimezone(NY)
    day = local.date()
    if local.time() != dt.time(0, 0):
        day += dt.timedelta(days=1)
    return incremental_cutoff(day).replace(tzinfo=None)


def delta_row(event: ChangeEvent) -> tuple | None:
    """The staging row of one change event, or None when it is not a change to stage."""
    if event.op == "r":
        return None
    ds = dataset(event.table)
    if not ds.incremental:
        return None
    image = event.after if event.op in ("c", "u") else event.before
    if image is None or "customer_id" not in image:
        raise KeyError("the row image has no customer_id")
    pk = json.dumps({k: image[k] for k in ds.primary_key}, separators=(",", ":"))
    file_no, pos, row = event.position.key()
    return (int(image["customer_id"]), event.table, pk, window_cutoff(event.source_ts_ms),
            "D" if event.op == "d" else "U", None if event.op == "d" else json.dumps(image, ensure_ascii=False),
            file_no * ORDER_FILE + pos * ORDER_POS + row, event.source_ts_ms)


def stage(conn, rows: list[tuple], progress: dict[tuple[str, int], int]) -> None:
    """Upsert a batch of staging rows and the offsets they cover, in one transaction."""
    cur = conn.cursor()
    try:
        if rows:
            cur.executemany(UPSERT, rows)
        if progress:
            now = utcnow()
            cur.executemany(
                "INSERT INTO snapsync_delta_progress (topic, partition_id, next_offset, updated_at) "
                "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
                "next_offset = GREATEST(next_offset, VALUES(next_offset)), updated_at = VALUES(updated_at)",
                [(t, p, o, now) for (t, p), o in progress.items()])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
