"""The faust-streaming worker (``snapsync worker``): the Data Sync agents, and beside them in
the same process the deltas stage (``streams/stager.py``: per-customer, per-window staging of
the incremental data sets) and the runner of Data Sync's queued copies and undos
(``control/sync_tasks.py``: the writes people ask for from the web app or the CLI, made here
because only the worker's login may write the practice data).

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
from concurrent.futures import ThreadPoolExecutor

import faust

from snapsync.connectors.files import private_dir
from snapsync.connectors.kafka import ensure_topics
from snapsync.connectors.metrics import DEAD_LETTERS
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control.audit import flush_outbox
from snapsync.schemas.catalog import incremental_datasets, sync_datasets
from snapsync.schemas.config import Settings, settings_env
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import dumps
from snapsync.schemas.topics import (
    change_topic,
    commands_topic,
    dead_letter_topic,
    notifications_topic,
    worker_group,
    worker_topics,
)
from snapsync.streams import metrics
from snapsync.streams.decode import decode_change, decode_command
from snapsync.connectors.failures import Backoff, dead_letter, safe_reason, waits
from snapsync.streams.sync_apply import apply_command, fanout_plan, record_pending

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
#: The largest message the worker reads and writes (faust's default is 1 MB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
APPLY_CONNECTIONS = 16


#: Threads for database calls: one per applier connection and the fan-out's, so that every
#: lane really runs side by side (asyncio's default executor has cores + 4 threads).
DB_THREADS = ThreadPoolExecutor(max_workers=APPLY_CONNECTIONS + 2, thread_name_prefix="db")


class Database:
    """One pair of connections per agent lane: the source (practice data and the signal
    schema) and the state store. ``run(fn, *args)`` calls ``fn(source, state, *args)``.
    Calls that fail for a passing or systemic reason (``connectors/failures.py``) are
    retried with back-off, on new connections, for as long as it takes; a failure of the
    message itself is raised to the caller."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = None
        self.state = None

    def get(self):
        if self.conn is None:
            self.conn = connect_source(self.settings)
            # READ COMMITTED: no gap locks, so commands for different targets applied side by
            # side do not deadlock; one target's commands are applied one after another anyway.
            self.conn.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return self.conn

    def get_state(self):
        if self.state is None:
            self.state = connect_state(self.settings)
        return self.state

    def _drop(self) -> None:
        for conn in (self.conn, self.state):
            try:
                if conn is not None:
                    conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.conn = self.state = None

    async def run(self, fn, *args):
        backoff = Backoff()
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    DB_THREADS, lambda: fn(self.get(), self.get_state(), *args))
            except Exception as exc:  # noqa: BLE001 - classified below
                if not waits(exc):
                    raise
                delay = backoff.next()
                log.warning("database call failed (%s); retrying in %.1fs", safe_reason(exc), delay)
                self._drop()
                await asyncio.sleep(delay)


def _fatal(exc: BaseException) -> None:
    """An agent's loop itself failed (not one message): stop the worker so it does not
    look healthy while its partitions stand still. Never quotes values."""
    log.critical("agent failed (%s), stopping the worker (exit 70)", safe_reason(exc))
    logging.shutdown()
    os._exit(70)


def group_id(settings: Settings) -> str:
    """The faust app's id, which is its consumer group."""
    return worker_group(settings.topic_prefix, settings.db.database)


def build_app(settings: Settings, state: metrics.WorkerState | None = None) -> faust.App:
    """The faust app with the Data Sync agents (``state``: what the metrics port's health
    checks read)."""
    _short_fetch_wait()
    prefix, db = settings.topic_prefix, settings.db.database
    app = faust.App(
        group_id(settings),
        broker=";".join(f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")),
        store="memory://",
        topic_partitions=PARTITIONS,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
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

    async def send(topic, key, value, headers=None) -> None:
        """Produce and wait for the broker's acknowledgement, backing off while it is away."""
        backoff = Backoff()
        while True:
            try:
                fut = await topic.send(key=key, value=value, headers=headers)
                await fut
                return
            except Exception as exc:  # noqa: BLE001 - classified
                if not waits(exc):
                    raise
                delay = backoff.next()
                log.warning("the broker did not take a message (%s); retrying in %.1fs", safe_reason(exc), delay)
                await asyncio.sleep(delay)

    async def send_dead_letter(where: tuple[str, int, int], key, value, reason: str) -> None:
        topic, partition, offset = where
        log.warning("dead letter from %s[%d]@%d: %s", topic, partition, offset, reason)  # never row values
        letter = dead_letter(topic, partition, offset, key, value, reason)
        await send(dlq, letter.key, letter.value, dict(letter.headers))
        DEAD_LETTERS.labels(topic).inc()

    async def guarded(where, key, value, work, what: str) -> bool:
        """Run ``work()`` for one message: passing failures are retried, anything about the
        message dead-letters it. True when the work completed."""
        backoff = Backoff()
        while True:
            try:
                await work()
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified
                if waits(exc):
                    delay = backoff.next()
                    log.warning("%s failed (%s); retrying in %.1fs", what, safe_reason(exc), delay)
                    await asyncio.sleep(delay)
                    continue
                await send_dead_letter(where, key, value, f"{what}: {safe_reason(exc)}")
                return False

    @app.agent(sources)
    async def sync_fanout(stream):
        try:
            async for event in stream.events():
                msg, key, value = event.message, event.key, event.value
                if value is None or value == b"":
                    continue  # tombstone

                where = (msg.topic, msg.partition, msg.offset)
                try:
                    change, _ds = decode_change(msg.topic, key, value)
                except Exception as exc:  # noqa: BLE001 - decoding is about this message only
                    await send_dead_letter(where, key, value, safe_reason(exc))
                    continue

                async def route(change=change):
                    cmds, account = await fan_db.run(fanout_plan, change)
                    # every command acknowledged (together) before the source offset is committed
                    await asyncio.gather(*(send(commands, str(cmd.target_customer).encode(), cmd.to_json())
                                           for cmd in cmds))
                    if cmds:
                        message = await fan_db.run(record_pending, account, change, len(cmds))
                        await send(notes, dumps({"account_id": account}), dumps(
                            {"event": "sync_pending", "account_id": account, "message": message,
                             "table": change.table, "targets": [c.target_customer for c in cmds]}))

                await guarded(where, key, value, route, "cannot route the event")
                metrics.EVENTS.labels("sync_fanout").inc()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            _fatal(exc)

    async def apply_in_order(db: Database, lane) -> None:
        for where, key, value, cmd in lane:
            async def apply(cmd=cmd):
                started = time.monotonic()
                outcome = await db.run(apply_command, cmd)
                metrics.observe_apply(cmd.source_ts_ms, outcome)
                log.info("sync %s -> customer %d (%s): %s in %.0f ms", cmd.table, cmd.target_customer,
                         cmd.mode, outcome, (time.monotonic() - started) * 1000)

            await guarded(where, key, value, apply, "cannot apply the sync command")
            metrics.EVENTS.labels("sync_apply").inc()

    @app.agent(commands)
    async def sync_apply(stream):
        # Commands come in small batches; each target's commands are applied in order, one
        # transaction each, while different targets proceed side by side on their own
        # connections. The batch's offsets are committed when all of it is applied.
        try:
            async for batch in stream.take_events(APPLY_BATCH, within=0.005):
                per_target: dict[int, list] = {}
                for event in batch:
                    msg = event.message
                    where = (msg.topic, msg.partition, msg.offset)
                    try:
                        cmd = decode_command(event.key, event.value)
                    except (DataError, ValueError, TypeError) as exc:
                        await send_dead_letter(where, event.key, event.value, f"malformed sync command: {safe_reason(exc)}")
                        continue
                    per_target.setdefault(cmd.target_customer, []).append((where, event.key, event.value, cmd))
                # Each target's lane takes the next free connection (no round waits for its slowest).
                free: asyncio.Queue = asyncio.Queue()
                for db in apply_dbs:
                    free.put_nowait(db)

                async def run_lane(lane):
                    db = await free.get()
                    try:
                        await apply_in_order(db, lane)
                    finally:
                        free.put_nowait(db)

                await asyncio.gather(*(run_lane(lane) for lane in per_target.values()))
                if per_target:  # the batch's audit records, from the outbox into the state store
                    await apply_dbs[0].run(flush_outbox)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            _fatal(exc)

    app.snapsync_agents = (sync_fanout, sync_apply)  # keep references
    if state is not None:
        @app.timer(1.0)
        async def beat():
            state.loop.beat()

        @app.on_partitions_assigned.connect
        async def assigned(_app, assigned, **_kw):
            state.assigned = len(assigned)

        app.snapsync_beat = beat
    return app


def prepare(settings: Settings) -> None:
    """The schemas checked, audit records a crash left in the outbox moved, and the topics
    (with the partition counts the agents declare).

    Raises:
        SchemaError: the state store or the signal schema is not at this release's version.
    """
    private_dir(settings.home.resolve() / "worker")  # faust's datadir; it creates only the last level
    with connect_source(settings) as conn, connect_state(settings) as state:
        flush_outbox(conn, state)
    prefix, db = settings.topic_prefix, settings.db.database
    ensure_topics(settings.kafka_bootstrap,
                  [*(change_topic(prefix, db, d.table) for d in (*sync_datasets(), *incremental_datasets())),
                   commands_topic(prefix),
                   dead_letter_topic(prefix), notifications_topic(prefix)], PARTITIONS)


def run_worker(settings: Settings, metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> None:
    """Run the agents and the deltas stage (``streams/stager.py``) until stopped; with
    ``metrics_port``, serve /metrics, /healthz, /readyz."""
    import threading

    from snapsync.connectors.lag import LagMonitor
    from snapsync.connectors.metrics import serve
    from snapsync.control.processes import Beacon
    from snapsync.control.sync_tasks import TaskRunner
    from snapsync.streams.stager import start_stager

    prepare(settings)
    state = metrics.WorkerState()
    server = None
    if metrics_port is not None:
        state.lag = LagMonitor(settings.kafka_bootstrap, group_id(settings),
                               worker_topics(settings.topic_prefix, settings.db.database)).start()
        server = serve(metrics_port, state.health(), metrics_host)
    beacon = Beacon(settings, "worker", metrics_port=metrics_port).start()
    app = build_app(settings, state)
    stop = threading.Event()
    stager, _thread = start_stager(settings, stop)
    tasks = TaskRunner(settings, beacon.id).start()  # Data Sync's copies and undos people asked for
    if metrics_port is not None:
        state.deltas_lag = LagMonitor(settings.kafka_bootstrap, stager.group, stager.topics).start()
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        stop.set()
        tasks.stop.set()
        beacon.stop()
        if server is not None:
            server.close()


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_") or k == "SNAPSYNC_DEBUG"}
    env.update(settings_env(settings))
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
