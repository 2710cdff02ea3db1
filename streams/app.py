"""The faust-streaming worker (``snapsync worker``): Data Sync agents and the deltas agent
(``streams/deltas.py``: per-customer, per-window staging of the incremental data sets).

* ``sync_fanout`` consumes the change topics of the sync data sets. An insert or update of
  a sync-from customer's item becomes one command per sync-to customer on
  ``<prefix>.sync.commands`` (keyed by the target customer, so one target's commands are
  applied in order), unless it is the applier's own write coming back (echo).
* ``sync_apply`` consumes the commands and applies each in one database transaction
  (``streams/sync_apply.py``).

Delivery: faust commits a source offset only after the agent finished the event; the
commands are awaited until the broker acknowledged them, so a ``kill -9`` replays at most
the events in flight, and the applier's "applied" mark makes replays no-ops.

Errors: a malformed event goes to ``<prefix>.dlq`` with the reason (headers ``reason``,
``topic``) and the agent goes on; a database outage is retried with back-off; anything
else stops the whole worker with exit code 70 (faust would otherwise keep a crashed agent
in a worker that looks alive while its partitions stand still).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import faust
import pymysql

from schemas.catalog import incremental_datasets, sync_datasets
from schemas.config import Settings
from schemas.errors import DataError
from schemas.events import ChangeEvent, change_topic, dead_letter_topic, dumps
from snapsync.control import ensure_control_tables, notify
from snapsync.db import connect
from streams import sync_groups
from streams.deltas import delta_row, stage
from streams.sync_apply import SyncCommand, apply_command, plan_commands, take_echo

log = logging.getLogger("snapsync.worker")
PARTITIONS = 3
FETCH_MAX_WAIT_MS = 50


def _short_fetch_wait() -> None:
    """faust-streaming 0.15 creates its aiokafka consumers with ``fetch_max_wait_ms=1500``
    and no setting to change it. A broker that does not answer a waiting fetch as soon as
    data arrives (Tansu, measured: 650 ms per hop, against 1-6 ms with a 50 ms wait) then
    adds that wait to every hop, and Data Sync has two hops to make in under a second.
    The worker's consumers therefore wait at most ``FETCH_MAX_WAIT_MS``."""
    import aiokafka

    base = aiokafka.AIOKafkaConsumer
    if getattr(base, "_snapsync_short_wait", False):
        return

    class ShortWaitConsumer(base):
        _snapsync_short_wait = True

        def __init__(self, *args, **kwargs):
            kwargs["fetch_max_wait_ms"] = min(kwargs.get("fetch_max_wait_ms", FETCH_MAX_WAIT_MS), FETCH_MAX_WAIT_MS)
            super().__init__(*args, **kwargs)

    aiokafka.AIOKafkaConsumer = ShortWaitConsumer
APPLY_BATCH = 500
APPLY_CONNECTIONS = 8
DELTA_BATCH = 2000


def commands_topic(prefix: str) -> str:
    return f"{prefix}.sync.commands"


def notifications_topic(prefix: str) -> str:
    return f"{prefix}.notifications"


class Database:
    """One connection per agent, reconnected with back-off when the server goes away."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = None

    def get(self):
        if self.conn is None:
            self.conn = connect(self.settings.db)
        return self.conn

    async def run(self, fn, *args):
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(fn, self.get(), *args)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                code = exc.args[0] if exc.args else exc
                what = "transaction conflict" if code in (1205, 1213) else "database unavailable"
                log.warning("%s (%s); retrying in %.1fs", what, code, delay)
                try:
                    if self.conn is not None:
                        self.conn.close()
                except Exception:  # noqa: BLE001 - already broken
                    pass
                self.conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def safe_reason(exc: BaseException) -> str:
    """A dead-letter reason that never quotes row values: DataError messages are written
    without them; other exceptions (``int('...')``, say) are named by type only."""
    return str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__} while reading the event"


def _fatal(exc: BaseException) -> None:
    log.critical("agent failed, stopping the worker so it does not look healthy: %r", exc)
    logging.shutdown()
    os._exit(70)


def fanout_plan(conn, event: ChangeEvent) -> tuple[list[SyncCommand], int | None]:
    """Commands for one change event, and the source account (None: nothing to do)."""
    if event.op not in ("c", "u") or event.after is None:
        return [], None  # snapshot reads and deletes are not propagated
    from schemas.catalog import dataset

    ds = dataset(event.table)
    if ds.sync_category is None or "customer_id" not in event.after:
        return [], None
    routes = sync_groups.routes_for(conn, int(event.after["customer_id"]), ds.sync_category)
    conn.commit()
    if not routes:
        return [], None
    if take_echo(conn, event.table, event.after):
        return [], None
    account = sync_groups.account_of(conn, int(event.after["customer_id"]))
    conn.commit()
    return plan_commands(event, routes), account


def record_pending(conn, account: int, event: ChangeEvent, n: int) -> str:
    from schemas.catalog import dataset

    message = (f"A change to {dataset(event.table).name} in customer {event.after['customer_id']} "
               f"will be synchronized to {n} customer(s).")
    notify(conn.cursor(), account_id=account, kind="sync_pending", message=message,
           detail={"table": event.table, "source_customer": event.after["customer_id"], "targets": n})
    conn.commit()
    return message


def build_app(settings: Settings) -> faust.App:
    """The faust app with the Data Sync agents."""
    _short_fetch_wait()
    prefix, db = settings.topic_prefix, settings.db.database
    app = faust.App(
        f"snapsync-{prefix}-{db}",
        broker=";".join(f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")),
        store="memory://",
        topic_partitions=PARTITIONS,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        datadir=str((settings.home / "worker").resolve()),
    )
    sources = app.topic(*(change_topic(prefix, db, d.table) for d in sync_datasets()),
                        key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    commands = app.topic(commands_topic(prefix), key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    dlq = app.topic(dead_letter_topic(prefix), key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    notes = app.topic(notifications_topic(prefix), key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    fan_db = Database(settings)
    apply_dbs = [Database(settings) for _ in range(APPLY_CONNECTIONS)]

    async def dead_letter(topic: str, key, value, reason: str) -> None:
        log.warning("dead letter from %s: %s", topic, reason)  # the reason never quotes row values
        fut = await dlq.send(key=key, value=value if value is not None else b"",
                             headers={"reason": reason.encode(), "topic": topic.encode()})
        await fut

    @app.agent(sources)
    async def sync_fanout(stream):
        try:
            async for event in stream.events():
                topic, key, value = event.message.topic, event.key, event.value
                if value is None or value == b"":
                    continue  # tombstone
                try:
                    change = ChangeEvent.from_debezium(value)
                except DataError as exc:
                    await dead_letter(topic, key, value, str(exc))
                    continue
                try:
                    cmds, account = await fan_db.run(fanout_plan, change)
                except (KeyError, ValueError, TypeError) as exc:
                    await dead_letter(topic, key, value, f"cannot route the event: {safe_reason(exc)}")
                    continue
                futures = [await commands.send(key=str(cmd.target_customer).encode(), value=cmd.to_json())
                           for cmd in cmds]
                # every command acknowledged before the source offset may be committed
                await asyncio.gather(*futures)
                if cmds:
                    message = await fan_db.run(record_pending, account, change, len(cmds))
                    await notes.send(key=dumps({"account_id": account}), value=dumps(
                        {"event": "sync_pending", "account_id": account, "message": message,
                         "table": change.table, "targets": [c.target_customer for c in cmds]}))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            _fatal(exc)

    async def apply_in_order(db: Database, cmds: list[SyncCommand]) -> None:
        for cmd in cmds:
            started = time.monotonic()
            outcome = await db.run(apply_command, cmd)
            log.info("sync %s -> customer %d (%s): %s in %.0f ms", cmd.table, cmd.target_customer,
                     cmd.mode, outcome, (time.monotonic() - started) * 1000)

    @app.agent(commands)
    async def sync_apply(stream):
        # Commands come in small batches; each target's commands are applied in order, one
        # transaction each, while different targets proceed side by side on their own
        # connections. The batch's offsets are committed when all of it is applied.
        try:
            async for batch in stream.take(APPLY_BATCH, within=0.005):
                per_target: dict[int, list[SyncCommand]] = {}
                for value in batch:
                    try:
                        cmd = SyncCommand.from_json(value)
                    except (ValueError, TypeError) as exc:
                        await dead_letter(commands_topic(prefix), None, value,
                                      f"malformed sync command: {safe_reason(exc)}")
                        continue
                    per_target.setdefault(cmd.target_customer, []).append(cmd)
                lanes = list(per_target.values())
                for start in range(0, len(lanes), len(apply_dbs)):
                    await asyncio.gather(*(apply_in_order(db, lane) for db, lane in
                                           zip(apply_dbs, lanes[start:start + len(apply_dbs)])))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            _fatal(exc)

    deltas_db = Database(settings)
    delta_sources = app.topic(*(change_topic(prefix, db, d.table) for d in incremental_datasets()),
                              key_type=bytes, value_type=bytes, partitions=PARTITIONS)

    @app.agent(delta_sources)
    async def deltas(stream):
        # Batches: one staging transaction per batch, with the offsets it covers.
        try:
            async for events in stream.take_events(DELTA_BATCH, within=0.2):
                rows, progress = [], {}
                for event in events:
                    msg = event.message
                    key = (msg.topic, msg.partition)
                    progress[key] = max(progress.get(key, 0), msg.offset + 1)
                    if event.value is None or event.value == b"":
                        continue  # tombstone
                    try:
                        row = delta_row(ChangeEvent.from_debezium(event.value))
                    except (DataError, KeyError, ValueError, TypeError) as exc:
                        await dead_letter(msg.topic, event.key, event.value,
                                          f"cannot stage the event: {safe_reason(exc)}")
                        continue
                    if row is not None:
                        rows.append(row)
                await deltas_db.run(stage, rows, progress)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            _fatal(exc)

    app.snapsync_agents = (sync_fanout, sync_apply, deltas)  # keep references
    return app


def prepare(settings: Settings) -> None:
    """Control tables and topics (with the partition counts the agents declare)."""
    from connectors.kafka import ensure_topics

    from sinks.delivery import private_dir

    private_dir(settings.home.resolve() / "worker")  # faust's datadir; it creates only the last level
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
    prefix, db = settings.topic_prefix, settings.db.database
    ensure_topics(settings.kafka_bootstrap,
                  [*(change_topic(prefix, db, d.table) for d in (*sync_datasets(), *incremental_datasets())),
                   commands_topic(prefix),
                   dead_letter_topic(prefix), notifications_topic(prefix)], PARTITIONS)


def run_worker(settings: Settings) -> None:
    prepare(settings)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()


def spawn_worker(settings: Settings, log_path, timeout: float = 60.0):
    """Start ``snapsync worker`` as a process (its output appended to ``log_path``) and wait
    until faust reports it ready. Used by the demo, the benchmarks and the tests.

    Raises:
        RuntimeError: the worker exited or was not ready in time, with the end of its log.
    """
    import subprocess
    import sys
    from pathlib import Path

    log_path = Path(log_path)
    start = log_path.stat().st_size if log_path.exists() else 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env.update(SNAPSYNC_DATABASE_URL=settings.database_url.get_secret_value(),
               SNAPSYNC_KAFKA_BOOTSTRAP=settings.kafka_bootstrap, SNAPSYNC_TOPIC_PREFIX=settings.topic_prefix,
               SNAPSYNC_HOME=str(settings.home))
    proc = subprocess.Popen([str(Path(sys.executable).with_name("snapsync")), "worker"], env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while b"Worker]: Ready" not in log_path.read_bytes()[start:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            tail = log_path.read_bytes()[start:][-3000:].decode("utf-8", "replace")
            raise RuntimeError(f"the worker did not start:\n{tail}")
        time.sleep(0.1)
    return proc
