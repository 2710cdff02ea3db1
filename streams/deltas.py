"""Deltas: per customer and per snapshot window, the newest image (or the delete) of every
changed row of the incremental data sets (Patient, Claims, Charge, Credit, Activity).

State is durable staging in the state store (``snapsync_delta``), written by the
deltas stage (``streams/stager.py``) in one transaction per batch together with the consumed offsets
(``snapsync_delta_progress``). "Newest source position wins" makes the upsert idempotent,
so the events a ``kill -9`` makes the stage read again change nothing.

A change's window is the first New York midnight at or after its source commit time
(``source.ts_ms``): the incremental package for cutoff C carries the windows up to C.
Snapshot reads (``op`` r) are state, not changes, and are not staged.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import orjson

from snapsync.schemas.catalog import dataset
from snapsync.schemas.control import utcnow
from snapsync.schemas.events import ChangeEvent
from snapsync.schemas.schedule import NY, incremental_cutoff

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
    hour, rest = divmod(source_ts_ms, 3_600_000)
    if rest:  # New York midnights fall on whole hours: one answer per hour (cached)
        return _window_of_hour(hour)
    return _window_cutoff(source_ts_ms)


def _window_cutoff(source_ts_ms: int) -> dt.datetime:
    local = dt.datetime.fromtimestamp(source_ts_ms / 1000, dt.timezone.utc).astimezone(NY)
    day = local.date()
    if local.time() != dt.time(0, 0):
        day += dt.timedelta(days=1)
    return incremental_cutoff(day).replace(tzinfo=None)


@lru_cache(maxsize=4096)
def _window_of_hour(hour: int) -> dt.datetime:
    return _window_cutoff(hour * 3_600_000 + 1)


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
    pk = orjson.dumps({k: image[k] for k in ds.primary_key})
    return (int(image["customer_id"]), event.table, pk.decode(), window_cutoff(event.source_ts_ms),
            "D" if event.op == "d" else "U", None if event.op == "d" else orjson.dumps(image).decode(),
            event.position.order(), event.source_ts_ms)


def delta_rows(event: ChangeEvent) -> list[tuple]:
    """Every staging row of one change event. A row that moved to another customer (an
    update of its ``customer_id``) is also a delete for the customer it left, at the same
    binlog order, so that customer's loaded copy loses it."""
    row = delta_row(event)
    if row is None:
        return []
    rows = [row]
    if event.op == "u" and event.before is not None:
        old = event.before.get("customer_id")
        if old is not None and int(old) != row[0]:
            rows.append((int(old), row[1], row[2], row[3], "D", None, row[6], row[7]))
    return rows


_UPSERT_HEAD = UPSERT[:UPSERT.index("VALUES (")] + "VALUES "
_UPSERT_TAIL = UPSERT[UPSERT.index(") ON DUPLICATE") + 1:]
_STATEMENT_BYTES = 4 << 20


def _literal_row(row: tuple) -> str:
    """One staging row as SQL values. Text goes as hex literals: ``bytes.hex`` runs in C, where
    quoting each image character by character (the driver's escaping) was most of the stage's
    cost. The other values are numbers, a catalog table name and a datetime."""
    customer, table, pk, window, op, image, order, ts = row
    img = "NULL" if image is None else "X'" + image.encode("utf-8").hex() + "'"
    return (f"({int(customer)},'{table}',X'{pk.encode('utf-8').hex()}','{window:%Y-%m-%d %H:%M:%S}','{op}',"
            f"{img},{int(order)},{int(ts)})")


def _upserts(rows: list[tuple]) -> list[str]:
    """The multi-row upsert statements of a batch (each below ~4 MB)."""
    statements, values, size = [], [], 0
    for row in rows:
        v = _literal_row(row)
        values.append(v)
        size += len(v)
        if size >= _STATEMENT_BYTES:
            statements.append(_UPSERT_HEAD + ",".join(values) + _UPSERT_TAIL)
            values, size = [], 0
    if values:
        statements.append(_UPSERT_HEAD + ",".join(values) + _UPSERT_TAIL)
    return statements


def stage(conn, rows: list[tuple], progress: dict[tuple[str, int], int]) -> None:
    """Upsert a batch of staging rows and the offsets they cover, in one transaction."""
    cur = conn.cursor()
    try:
        for statement in _upserts(rows):
            cur.execute(statement)
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
