"""The faust-streaming worker (``snapsync worker``): the Data Sync agents, and beside them in
the same process the deltas stage (``streams/stager.py``: per-customer, per-window staging of
the incremental data sets) and the runner of Data Sync's queued copies and undos
(``control/sync_tasks.py``: the writes people ask for from the web app or the CLI, made here
because only the worker's login may write the practice data).

The agents (``sync_fanout``, ``sync_apply``) are ``streams/agents.py``; this module makes the
faust app around them, checks the schemas and topics, and runs the process.

Delivery: faust commits a source offset only after the agent finished the event; the
commands are awaited until the broker acknowledged them, so a ``kill -9`` replays at most
the events in flight, and the applier's "applied" mark makes replays no-ops.
"""

from __future__ import annotations

import logging
import os
import time

import faust

from snapsync.connectors.files import private_dir
from snapsync.connectors.kafka import ensure_topics
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control.audit import flush_outbox
from snapsync.schemas.catalog import incremental_datasets, sync_datasets
from snapsync.schemas.config import Settings, settings_env
from snapsync.schemas.topics import (
    change_topic,
    commands_topic,
    dead_letter_topic,
    notifications_topic,
    worker_group,
    worker_topics,
)
from snapsync.streams import metrics
from snapsync.streams.agents import WorkerContext, apply_commands, fan_out

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
#: The largest message the worker reads and writes (faust's default is 1 MB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def group_id(settings: Settings) -> str:
    """The faust app's id, which is its consumer group."""
    return worker_group(settings.topic_prefix, settings.db.database)


def build_app(settings: Settings, state: metrics.WorkerState | None = None) -> faust.App:
    """The faust app with the Data Sync agents (``streams/agents.py``; ``state``: what the
    metrics port's health checks read)."""
    _short_fetch_wait()
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
    ctx = WorkerContext(app, settings, PARTITIONS)

    @app.agent(ctx.sources)
    async def sync_fanout(stream):
        await fan_out(ctx, stream)

    @app.agent(ctx.commands)
    async def sync_apply(stream):
        await apply_commands(ctx, stream)

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
    from snapsync.control.broker import watch

    watch(settings, "worker")  # a broker replaced: recovered from, the worker starts again on it
    stager, _thread = start_stager(settings, stop)
    tasks = TaskRunner(settings, beacon.id).start()  # Data Sync's copies and undos people asked for
    if metrics_port is not None:
        state.deltas_lag = LagMonitor(settings.kafka_bootstrap, stager.group, stager.topics).start()
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.loop.set_exception_handler(_unretrieved_sends_told_once)
    try:
        worker.execute_from_commandline()
    except Exception as exc:
        # faust gives up when the broker goes away while it starts (creating its leader topic,
        # joining the group): a passing failure, so start again in place rather than exit 70.
        from snapsync.connectors.failures import is_transient, safe_reason
        from snapsync.control.broker import restart_in_place

        if is_transient(exc):
            time.sleep(2.0)
            restart_in_place(f"the stream worker could not start ({safe_reason(exc)})")
        raise
    finally:
        stop.set()
        tasks.stop.set()
        beacon.stop()
        if server is not None:
            server.close()


def _unretrieved_sends_told_once(loop, context) -> None:
    """asyncio's handler, but for a send whose failure faust also kept in a future nobody awaits:
    ``WorkerContext.send`` already logged it and tries again (a broker away or replaced), so the
    "exception was never retrieved" traceback would only repeat it."""
    from snapsync.connectors.failures import is_transient

    exc = context.get("exception")
    if exc is not None and "never retrieved" in str(context.get("message", "")) and is_transient(exc):
        return
    loop.default_exception_handler(context)


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
