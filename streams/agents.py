"""The worker's Data Sync agents, as plain coroutines over a small :class:`WorkerContext`
(``streams/app.py`` registers them with faust):

* :func:`fan_out` consumes the change topics of the sync data sets. An insert or update of a
  sync-from customer's item becomes one command per sync-to customer on
  ``<prefix>.sync.commands`` (keyed by the target customer, so one target's commands are
  applied in order), unless it is the applier's own write coming back (echo).
* :func:`apply_commands` applies the commands, each in one source transaction
  (``streams/sync_apply.py``), different targets side by side on their own connections.

Errors: a malformed message goes to ``<prefix>.dlq`` with the reason and the agent goes on; a
passing or systemic failure is waited out (``connectors/failures.py``); anything else stops the
whole worker with exit code 70 (faust would otherwise keep a crashed agent in a worker that
looks alive while its partitions stand still).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from snapsync.connectors.failures import Backoff, dead_letter, safe_reason, waits
from snapsync.connectors.metrics import DEAD_LETTERS
from snapsync.connectors.mysql import close_quietly
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control.audit import flush_outbox
from snapsync.schemas.catalog import sync_datasets
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import ChangeEvent, dumps
from snapsync.schemas.topics import change_topic, commands_topic, dead_letter_topic, notifications_topic
from snapsync.streams import metrics
from snapsync.streams.decode import decode_change, decode_command
from snapsync.streams.sync_apply import apply_command, fanout_plan, record_pending

log = logging.getLogger("snapsync.worker")
APPLY_BATCH = 500
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
        close_quietly(self.conn)
        close_quietly(self.state)
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


class WorkerContext:
    """What the agents share: the app's topics, the database lanes, and producing with
    back-off and dead letters."""

    def __init__(self, app, settings: Settings, partitions: int) -> None:
        prefix, db = settings.topic_prefix, settings.db.database

        def topic(*names: str):
            return app.topic(*names, key_type=bytes, value_type=bytes, partitions=partitions)

        self.sources = topic(*(change_topic(prefix, db, d.table) for d in sync_datasets()))
        self.commands = topic(commands_topic(prefix))
        self.dlq = topic(dead_letter_topic(prefix))
        self.notes = topic(notifications_topic(prefix))
        self.fan_db = Database(settings)
        self.apply_dbs = [Database(settings) for _ in range(APPLY_CONNECTIONS)]

    async def send(self, topic, key, value, headers=None) -> None:
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

    async def dead_letter(self, where: tuple[str, int, int], key, value, reason: str) -> None:
        topic, partition, offset = where
        log.warning("dead letter from %s[%d]@%d: %s", topic, partition, offset, reason)  # never row values
        letter = dead_letter(topic, partition, offset, key, value, reason)
        await self.send(self.dlq, letter.key, letter.value, dict(letter.headers))
        DEAD_LETTERS.labels(topic).inc()

    async def guarded(self, where, key, value, work, what: str) -> bool:
        """Run ``work()`` for one message: passing or systemic failures are waited out,
        anything about the message dead-letters it. True when the work completed."""
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
                await self.dead_letter(where, key, value, f"{what}: {safe_reason(exc)}")
                return False


async def fan_out(ctx: WorkerContext, stream) -> None:
    """The ``sync_fanout`` agent: each change of a sync data set routed to its targets."""
    try:
        async for event in stream.events():
            msg, key, value = event.message, event.key, event.value
            if value is None or value == b"":
                continue  # tombstone
            where = (msg.topic, msg.partition, msg.offset)
            try:
                change, _ds = decode_change(msg.topic, key, value)
            except Exception as exc:  # noqa: BLE001 - decoding is about this message only
                await ctx.dead_letter(where, key, value, safe_reason(exc))
                continue
            await ctx.guarded(where, key, value, lambda change=change: _route(ctx, change), "cannot route the event")
            metrics.EVENTS.labels("sync_fanout").inc()
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001
        _fatal(exc)


async def _route(ctx: WorkerContext, change: ChangeEvent) -> None:
    cmds, account = await ctx.fan_db.run(fanout_plan, change)
    # every command acknowledged (together) before the source offset is committed
    await asyncio.gather(*(ctx.send(ctx.commands, str(cmd.target_customer).encode(), cmd.to_json())
                           for cmd in cmds))
    if cmds:
        message = await ctx.fan_db.run(record_pending, account, change, len(cmds))
        await ctx.send(ctx.notes, dumps({"account_id": account}), dumps(
            {"event": "sync_pending", "account_id": account, "message": message, "table": change.table,
             "targets": [c.target_customer for c in cmds]}))


async def _apply_in_order(ctx: WorkerContext, db: Database, lane) -> None:
    for where, key, value, cmd in lane:
        async def apply(cmd=cmd):
            started = time.monotonic()
            outcome = await db.run(apply_command, cmd)
            metrics.observe_apply(cmd.source_ts_ms, outcome)
            log.info("sync %s -> customer %d (%s): %s in %.0f ms", cmd.table, cmd.target_customer,
                     cmd.mode, outcome, (time.monotonic() - started) * 1000)

        await ctx.guarded(where, key, value, apply, "cannot apply the sync command")
        metrics.EVENTS.labels("sync_apply").inc()


async def apply_commands(ctx: WorkerContext, stream) -> None:
    """The ``sync_apply`` agent. Commands come in small batches; each target's commands are
    applied in order, one transaction each, while different targets proceed side by side on
    their own connections. The batch's offsets are committed when all of it is applied."""
    try:
        async for batch in stream.take_events(APPLY_BATCH, within=0.005):
            per_target: dict[int, list] = {}
            for event in batch:
                msg = event.message
                where = (msg.topic, msg.partition, msg.offset)
                try:
                    cmd = decode_command(event.key, event.value)
                except (DataError, ValueError, TypeError) as exc:
                    await ctx.dead_letter(where, event.key, event.value, f"malformed sync command: {safe_reason(exc)}")
                    continue
                per_target.setdefault(cmd.target_customer, []).append((where, event.key, event.value, cmd))
            # Each target's lane takes the next free connection (no round waits for its slowest).
            free: asyncio.Queue = asyncio.Queue()
            for db in ctx.apply_dbs:
                free.put_nowait(db)

            async def run_lane(lane):
                db = await free.get()
                try:
                    await _apply_in_order(ctx, db, lane)
                finally:
                    free.put_nowait(db)

            await asyncio.gather(*(run_lane(lane) for lane in per_target.values()))
            if per_target:  # the batch's audit records, from the outbox into the state store
                await ctx.apply_dbs[0].run(flush_outbox)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001
        _fatal(exc)
