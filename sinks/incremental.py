"""Incremental packages: the watermark check, the staged deltas of a window, and what each
delivery target has received.

* **Watermark**: the package for cutoff C is built only when a probe row committed after C
  has been passed by the capture's committed position (embedded or Debezium) and the deltas
  agent has staged every change-topic partition up to the end offsets at that moment
  (:func:`wait_for_watermark`). Until then it waits (bounded) and says why; it never
  delivers early.
* **Deltas**: for each selected customer that received an incremental before, the newest
  staged image (or delete) of each changed row in the windows after its last cutoff up to
  C (missed nights included), plus any staged change later in the binlog than what its last
  delivery covered (a late event: a long transaction's change dated before a cutoff that
  was already delivered).
* **State** (the state store's ``snapsync_incremental_state``): per delivery target (its folder) and customer,
  the last cutoff delivered and the binlog order its watermark covered. Staging is shared by
  every target and kept ``RETENTION``; a customer without state, or whose last delivery is
  older than that, gets its incremental data sets in full (the first delivery, or the first
  after joining a combined selection).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from snapsync.connectors.dialect import Dialect
from snapsync.connectors.kafka import check_reachable
from snapsync.connectors.lag import end_offsets
from snapsync.connectors.mysql import binlog_end
from snapsync.connectors.offsets import WATERMARK_PROBE, committed_position, write_heartbeat
from snapsync.connectors.state import connect_source, connect_state
from snapsync.schemas.catalog import dataset, incremental_datasets
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow
from snapsync.schemas.errors import DataError, RetriableError
from snapsync.schemas.events import SourcePosition
from snapsync.schemas.topics import change_topic
from snapsync.schemas.validation import check_image

log = logging.getLogger("snapsync.export")


#: The key of the exporter's probe row in ``snapsync_heartbeat`` (the capture's own rows are
#: keyed by connector name; a connector may not be called this).
PROBE = WATERMARK_PROBE
#: Seconds between probe rows while waiting (a capture that moves its committed position only
#: when a later transaction arrives gets one this often), and between checks.
PROBE_EVERY, POLL = 0.5, 0.05


@dataclass(frozen=True)
class Watermark:
    """Proof that every change committed at or before a cutoff is staged.

    ``position`` is the end of the binlog right after the first probe row was committed
    (every transaction committed before it lies before it); ``ends`` the change-topic end
    offsets that the capture's committed position covered, all staged.
    """

    position: SourcePosition
    source_now: dt.datetime
    ends: dict[tuple[str, int], int]
    generation: int = 0  # of the broker the end offsets were read on (``control/broker.py``)


def write_probe(conn, dialect=None) -> tuple[SourcePosition, dt.datetime]:
    """Commit a probe row into the captured heartbeat table (``conn``: from ``connect_source``);
    return the binlog end after it and the source's clock before it."""
    cur = conn.cursor()
    cur.execute("SELECT UTC_TIMESTAMP(6)")
    now = cur.fetchone()[0]
    write_heartbeat(conn, PROBE)
    file, pos = binlog_end(conn, dialect)
    conn.commit()
    return SourcePosition(file, pos), now


def check_same_broker(settings: Settings):
    """The broker's generation; a broker replaced since it was last seen is recovered from
    (``control/broker.py``) and this watermark refused: the staged progress was counted in
    topics that are gone."""
    from snapsync.connectors.kafka import cluster_id
    from snapsync.control.broker import observe

    gen = observe(settings, cluster_id(settings.kafka_bootstrap), who="an exporter's watermark")
    if gen.replaced:
        raise RetriableError("the broker was replaced and came back empty: the pipeline recovers (the next "
                             "incremental package of every customer is full); try again")
    return gen


def _staged(conn) -> dict[tuple[str, int], int]:
    cur = conn.cursor()
    cur.execute("SELECT topic, partition_id, next_offset FROM snapsync_delta_progress")
    done = {(t, int(p)): int(o) for t, p, o in cur.fetchall()}
    conn.commit()
    return done


def wait_for_watermark(settings: Settings, cutoff: dt.datetime, timeout: float) -> Watermark:
    """Block until every change committed up to ``cutoff`` (UTC) is staged; never early.

    Works the same on the embedded capture and on Debezium through Kafka Connect (neither
    needs to run in this process or to have started before):

    1. the cutoff must be in the past on the source's clock;
    2. a probe row is committed into the captured heartbeat table (signal schema); the binlog
       end after it, P, lies after every transaction committed before (so after every
       change committed at or before the cutoff);
    3. the capture's committed position must reach P: every earlier change is then on the
       broker. A probe is written again every half second, so a capture that only moves its
       position when a later transaction arrives (Debezium) gets one;
    4. the change topics' end offsets read at that moment must be reached by the deltas
       stage's durable progress (``snapsync_delta_progress``).

    A change dated at or before the cutoff that commits after P (a long transaction) is a
    late event: the next package carries it (``staged_changes``).

    Raises:
        RetriableError: still not there after ``timeout`` seconds, saying what lags.
    """
    if cutoff.tzinfo is not None:
        cutoff = cutoff.astimezone(dt.timezone.utc).replace(tzinfo=None)
    topics = [change_topic(settings.topic_prefix, settings.db.database, d.table) for d in incremental_datasets()]
    deadline = time.monotonic() + timeout
    probe: tuple[SourcePosition, dt.datetime] | None = None
    ends: dict[tuple[str, int], int] | None = None
    next_probe = 0.0  # a probe is written at most every PROBE_EVERY seconds, checked every POLL
    said = ("", 0.0)
    check_reachable(settings.kafka_bootstrap, why="The incremental package needs the change topics' end offsets.")
    client = None
    if settings.capture == "debezium" and settings.connect_url:
        from snapsync.connectors.debezium import ConnectClient

        client = ConnectClient(settings.connect_url)  # one session for every check
    with connect_source(settings) as conn, connect_state(settings) as state:
        dialect = Dialect.of(conn)
        while True:
            now = time.monotonic()
            if ends is None and now >= next_probe:
                latest = write_probe(conn, dialect)
                next_probe = now + PROBE_EVERY
                if probe is None and latest[1] >= cutoff:
                    probe = latest
                if probe is None:
                    reason = f"the cutoff is ahead of the source's clock ({latest[1]:%Y-%m-%d %H:%M:%S} UTC)"
            if ends is None and probe is not None:
                at, why = committed_position(state, settings, client)
                if at is None:
                    reason = why
                elif at.key() < probe[0].key():
                    reason = (f"capture has committed up to {at.file}:{at.pos}, "
                              f"not yet {probe[0].file}:{probe[0].pos}")
                else:
                    gen = check_same_broker(settings)
                    ends = end_offsets(settings.kafka_bootstrap, topics)
            if ends is not None:
                done = _staged(state)
                behind = [f"{t}[{p}] at {done.get((t, p), 0)} of {end}" for (t, p), end in sorted(ends.items())
                          if done.get((t, p), 0) < end]
                if not behind:
                    assert probe is not None
                    return Watermark(probe[0], probe[1], ends, gen.number)
                reason = f"the deltas worker is behind: {', '.join(behind[:3])} (is `snapsync worker` running?)"
            if time.monotonic() >= deadline:
                raise RetriableError(f"incremental package for cutoff {cutoff:%Y-%m-%d %H:%M} UTC not built: "
                                     f"{reason}. It is never delivered early; try again once the pipeline caught up.")
            if reason != said[0] or now - said[1] >= 5.0:
                log.info("waiting for the watermark of %s: %s", cutoff, reason)
                said = (reason, now)
            time.sleep(POLL)


@dataclass
class Changes:
    """The changes one package carries for its existing customers."""

    upserts: dict[str, list[dict]] = field(default_factory=dict)  # table -> images
    deletes: dict[str, list[dict]] = field(default_factory=dict)  # table -> primary keys
    quarantined: dict[str, int] = field(default_factory=dict)  # table -> staged rows set aside


def delivery_key(out: Path) -> str:
    return str(Path(out).resolve())[:255]


RETENTION = dt.timedelta(days=30)


def covered_order(watermark: Watermark) -> int:
    """The binlog order of the watermark: every staged change before it is covered."""
    return watermark.position.order()


def delivered_customers(conn, key: str, cutoff: dt.datetime) -> dict[int, tuple[dt.datetime, int]]:
    """Customers this target received an incremental for, within the staging retention:
    ``{customer: (last cutoff, covered binlog order)}``."""
    cur = conn.cursor()
    cur.execute("SELECT customer_id, last_cutoff, covered_order FROM snapsync_incremental_state "
                "WHERE delivery_key = %s AND last_cutoff >= %s", (key, cutoff - RETENTION))
    return {r[0]: (r[1], int(r[2])) for r in cur.fetchall()}


def staged_changes(conn, source, state: dict[int, tuple[dt.datetime, int]], cutoff: dt.datetime,
                   members: list[int] | None = None) -> Changes:
    """The newest staged change per (table, row) for one package, not yet delivered to this
    target (``conn``: the state store, ``source``: the practice database).

    Args:
        state: the package's customers that received an incremental before, with their last
            cutoff and covered binlog order.
        members: every customer of the package. A row that moved between two of them has a
            delete for the one it left and an upsert for the other at the same binlog order:
            the upsert wins. A delete is dropped when the row belongs to a member now (it
            came back, or its new owner gets its rows in full).
    """
    changes = Changes()
    newest: dict[tuple, tuple] = {}
    cur = conn.cursor()
    by_state: dict[tuple, list[int]] = {}  # customers delivered together share one query
    for customer, (last_cutoff, covered) in sorted(state.items()):
        by_state.setdefault((last_cutoff, covered), []).append(customer)
    for (last_cutoff, covered), customers in by_state.items():
        cur.execute("SELECT customer_id, table_name, pk, window_cutoff, op, image, src_order FROM snapsync_delta "
                    f"WHERE customer_id IN ({','.join(['%s'] * len(customers))}) AND window_cutoff <= %s "
                    "AND (window_cutoff > %s OR src_order > %s) ORDER BY table_name, pk, src_order",
                    (*customers, cutoff, last_cutoff, covered))
        for row in cur.fetchall():
            key = (row[1], row[2])
            if key not in newest or (int(row[6]), row[4] == "U") >= (int(newest[key][6]), newest[key][4] == "U"):
                newest[key] = row
    deletes: dict[str, list[dict]] = {}
    for (table, pk), row in newest.items():
        if row[4] == "D":
            deletes.setdefault(table, []).append(orjson.loads(pk))
            continue
        try:
            image = orjson.loads(row[5])
            check_image(dataset(table), image)
        except (ValueError, DataError) as exc:  # a staged row that does not fit: out of the way
            _quarantine(cur, row, exc)
            changes.quarantined[table] = changes.quarantined.get(table, 0) + 1
            continue
        changes.upserts.setdefault(table, []).append(image)
    conn.commit()
    for table, keys in deletes.items():
        changes.deletes[table] = _not_owned(source.cursor(), table, keys, members or list(state))
    source.commit()
    return changes


def _quarantine(cur, row: tuple, exc: BaseException) -> None:
    """Move one staged row to ``snapsync_delta_quarantine`` with the reason (no values)."""
    customer, table, pk, window, op, image, order = row
    reason = str(exc) if isinstance(exc, DataError) else f"the staged image is not JSON ({type(exc).__name__})"
    cur.execute("INSERT INTO snapsync_delta_quarantine (customer_id, table_name, pk, window_cutoff, op, image, "
                "src_order, reason, quarantined_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (customer, table, pk, window, op, image, order, reason[:500], utcnow()))
    cur.execute("DELETE FROM snapsync_delta WHERE customer_id = %s AND table_name = %s AND pk = %s "
                "AND window_cutoff = %s AND src_order = %s", (customer, table, pk, window, order))
    log.warning("staged change of %s %s quarantined: %s", table, pk, reason)  # pk: ids only


def _not_owned(cur, table: str, keys: list[dict], members: list[int]) -> list[dict]:
    """The deleted keys whose row does not belong to one of ``members`` now."""
    pk = dataset(table).primary_key
    if len(pk) != 1 or not keys or not members:
        return keys
    col = pk[0]
    owned: set = set()
    for start in range(0, len(keys), 1000):
        chunk = [k[col] for k in keys[start:start + 1000]]
        cur.execute(f"SELECT `{col}` FROM `{table}` WHERE `{col}` IN ({','.join(['%s'] * len(chunk))}) "
                    f"AND customer_id IN ({','.join(['%s'] * len(members))})", (*chunk, *members))
        owned.update(r[0] for r in cur.fetchall())
    return [k for k in keys if k[col] not in owned]


def record_delivered(conn, key: str, customers: list[int], cutoff: dt.datetime, covered: int, *,
                     broker: tuple[str, int] | None = None) -> None:
    """After the delivery is durable: what this target now has, per customer. Staging older
    than the retention goes (every target that old gets a full delivery anyway).

    ``broker``: (topic prefix, generation) of the broker the watermark was taken on. When the
    broker was replaced since, nothing is recorded: the recovery dropped every target's state
    (``control/broker.py``), and these customers' next package is full like everyone's.
    """
    from snapsync.control.broker import generation

    cur = conn.cursor()
    if broker is not None and broker[1] and generation(conn, broker[0]) != broker[1]:
        conn.commit()
        log.warning("the broker was replaced during this export: its customers' next incremental package is full")
        return
    now = utcnow()
    cur.executemany("REPLACE INTO snapsync_incremental_state (delivery_key, customer_id, last_cutoff, covered_order, "
                    "updated_at) VALUES (%s, %s, %s, %s, %s)", [(key, c, cutoff, covered, now) for c in customers])
    cur.execute("DELETE FROM snapsync_delta WHERE window_cutoff < %s", (cutoff - RETENTION,))
    conn.commit()
