"""Data Sync's writes that a person asks for (a new group's initial copy, undo of an
application, an approved Data Copy between accounts and its undo), queued in the state store
and made by the stream worker.

Why a queue: only the worker's login may write the practice data (the ``sync`` role: the sync
data sets only). The web app and the CLI, which take the request, hold the ``web`` role's
read-only rights there; they record a task (``snapsync_sync_task``) in the same transaction
as the group change, and the worker makes it (:class:`TaskRunner`) and says so in the
account's Messages. The CLI waits for it (``--wait``).

* **Exactly once, crash or not.** A task is claimed with a lease (database clock); a worker
  killed mid-task stops renewing and another takes it over when the lease ran out. Doing a
  copy twice changes nothing: create-only creates what is missing, override rewrites only
  what differs; undo refuses a second time (nothing left to undo).
* **The outcome** (counts, or the reason it failed: an undo refused because items changed
  since) stays on the task row for the requester, and goes to the account's Messages.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from snapsync.connectors.failures import Backoff
from snapsync.connectors.mysql import close_quietly
from snapsync.control.audit import actor
from snapsync.control.notifications import notify
from snapsync.schemas.config import Settings
from snapsync.schemas.control import SyncGroup
from snapsync.schemas.errors import ConfigError, RetriableError, SnapsyncError

log = logging.getLogger("snapsync.sync-tasks")

TaskKind = Literal["copy", "undo", "data_copy", "copy_undo"]
#: The Messages kind of each task kind's outcome (``<prefix>_done`` / ``<prefix>_failed``).
MESSAGE_KIND = {"copy": "sync_copy", "undo": "sync_undo", "data_copy": "data_copy", "copy_undo": "data_copy_undo"}
#: Seconds a claimed task is held without renewal.
LEASE = 120.0
#: A task tried this many times and failing each time is marked failed.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Task:
    task_id: int
    account_id: int
    kind: TaskKind
    payload: dict
    state: str = "queued"
    attempts: int = 0
    result: dict | None = None
    error: str | None = None
    requested_by: str = ""

    def view(self) -> dict:
        return {"task_id": self.task_id, "account_id": self.account_id, "kind": self.kind, "state": self.state,
                "attempts": self.attempts, "request": self.payload, "result": self.result, "error": self.error}


def enqueue(cur, account_id: int, kind: TaskKind, payload: dict, *, who: str | None = None) -> int:
    """A task in the caller's state-store transaction; returns its id."""
    cur.execute("INSERT INTO snapsync_sync_task (account_id, kind, payload, state, attempts, requested_by, "
                "requested_at, updated_at) VALUES (%s, %s, %s, 'queued', 0, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                (account_id, kind, json.dumps(payload), who or actor()))
    return cur.lastrowid


def enqueue_copy(cur, group: SyncGroup, targets, *, who: str | None = None) -> dict[int, int]:
    """One copy task per target of ``group`` (its categories and mode as they are now);
    ``{target: task id}``."""
    return {t: enqueue(cur, group.account_id, "copy", {"group_id": group.group_id, "source": group.source_customer,
                                                       "target": t, "categories": list(group.categories),
                                                       "mode": group.mode}, who=who)
            for t in targets}


_COLUMNS = "task_id, account_id, kind, payload, state, attempts, result, error, requested_by"


def _task(row) -> Task:
    return Task(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5],
                json.loads(row[6]) if row[6] else None, row[7], row[8])


def get(conn, task_ids: list[int]) -> list[Task]:
    if not task_ids:
        return []
    cur = conn.cursor()
    cur.execute(f"SELECT {_COLUMNS} FROM snapsync_sync_task WHERE task_id IN ({','.join(['%s'] * len(task_ids))}) "
                "ORDER BY task_id", list(task_ids))
    rows = cur.fetchall()
    conn.commit()
    return [_task(r) for r in rows]


def recent(conn, account_id: int | None = None, limit: int = 50) -> list[Task]:
    """The newest tasks (of one account), newest first."""
    cur = conn.cursor()
    cur.execute(f"SELECT {_COLUMNS} FROM snapsync_sync_task" + (" WHERE account_id = %s" if account_id else "")
                + " ORDER BY task_id DESC LIMIT %s", ((account_id, limit) if account_id else (limit,)))
    rows = cur.fetchall()
    conn.commit()
    return [_task(r) for r in rows]


def account_tasks(settings: Settings, account_id: int, limit: int = 50) -> list[dict]:
    """:func:`recent` of one account on its own connection, as views."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        return [t.view() for t in recent(conn, account_id, limit)]


def claim_next(conn, owner: str, lease: float = LEASE) -> Task | None:
    """Take the oldest queued task, or one whose claimant's lease ran out; None when none."""
    cur = conn.cursor()
    cur.execute("SELECT task_id FROM snapsync_sync_task WHERE state = 'queued' OR (state = 'running' AND "
                "lease_until < UTC_TIMESTAMP(6)) ORDER BY task_id LIMIT 1 FOR UPDATE SKIP LOCKED")
    row = cur.fetchone()
    if row is None:
        conn.commit()
        return None
    cur.execute("UPDATE snapsync_sync_task SET state = 'running', owner = %s, attempts = attempts + 1, "
                "lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, updated_at = UTC_TIMESTAMP(6) "
                "WHERE task_id = %s", (owner, int(lease * 1e6), row[0]))
    cur.execute(f"SELECT {_COLUMNS} FROM snapsync_sync_task WHERE task_id = %s", (row[0],))
    task = _task(cur.fetchone())
    conn.commit()
    return task


def finish(conn, task: Task, owner: str, state: str, *, result: dict | None = None, error: str | None = None,
           message: str | None = None, then=None) -> bool:
    """Record the outcome (only while the task is still this owner's) and the account's message
    in one transaction; ``then(cur)`` runs in it too (a Data Copy's state and its requester's
    message). False when another owner took the task over meanwhile."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_sync_task SET state = %s, result = %s, error = %s, lease_until = NULL, "
                "finished_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6) "
                "WHERE task_id = %s AND owner = %s AND state = 'running'",
                (state, None if result is None else json.dumps(result), None if error is None else error[:1000],
                 task.task_id, owner))
    if cur.rowcount != 1:
        conn.rollback()
        return False
    if message:
        notify(cur, account_id=task.account_id,
               kind=f"{MESSAGE_KIND.get(task.kind, task.kind)}_{'done' if state == 'done' else 'failed'}",
               message=message, detail={"task_id": task.task_id, **({"result": result} if result else {}),
                                        **({"copy_id": task.payload["copy_id"]} if "copy_id" in task.payload
                                           else {})})
    if then is not None:
        then(cur)
    conn.commit()
    return True


def release(conn, task: Task, owner: str) -> None:
    """Back to the queue after a passing failure (the database was away)."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_sync_task SET state = IF(attempts >= %s, 'failed', 'queued'), lease_until = NULL, "
                "error = IF(attempts >= %s, 'gave up after repeated passing failures', error), "
                "updated_at = UTC_TIMESTAMP(6) WHERE task_id = %s AND owner = %s AND state = 'running'",
                (MAX_ATTEMPTS, MAX_ATTEMPTS, task.task_id, owner))
    conn.commit()


# --- making a task ------------------------------------------------------------------------
def _copy_message(task: Task, counts: dict) -> str:
    created = sum(c["created"] for c in counts.values())
    overridden = sum(c["overridden"] for c in counts.values())
    p = task.payload
    return (f"Data Sync copied customer {p['source']}'s {', '.join(c.replace('_', ' ') for c in p['categories'])} "
            f"into customer {p['target']} ({p['mode']}): {created} item(s) created, {overridden} overridden.")


@dataclass
class Outcome:
    """What making a task came to: its result, the account's message, and what else commits
    with the task's end (``then(cur)``, in the state transaction of :func:`finish`)."""

    result: dict
    message: str
    then: Any = None


def run(settings: Settings, task: Task) -> Outcome:
    """Make one task on connections of its own.

    Raises:
        ConfigError: the task cannot be made (an undo refused; its message says why).
        RetriableError: the database was away.
    """
    from snapsync.control import data_copy_tasks, data_sync, sync_undo
    from snapsync.schemas.catalog import sync_datasets

    p = task.payload
    if task.kind == "copy":
        group = SyncGroup(group_id=p["group_id"], account_id=task.account_id, source_customer=p["source"],
                          targets=(p["target"],), categories=tuple(p["categories"]), mode=p["mode"])
        tables = [d for c in group.categories for d in sync_datasets(c)]
        counts = data_sync.copy_tables(settings, group, p["target"], tables)
        return Outcome({"tables": counts}, _copy_message(task, counts))
    if task.kind == "undo":
        n = sync_undo.undo_application(settings, int(p["audit_id"]), force=bool(p.get("force")),
                                       account_id=task.account_id, who=task.requested_by or None)
        return Outcome({"rows": n}, f"Data Sync undid application {p['audit_id']}: {n} row(s) restored or removed.")
    if task.kind == "data_copy":
        return Outcome(*data_copy_tasks.make_copy(settings, task))
    if task.kind == "copy_undo":
        return Outcome(*data_copy_tasks.undo_copy(settings, task))
    raise ConfigError(f"unknown task kind {task.kind!r}")


def work_once(settings: Settings, owner: str, state_conn) -> Task | None:
    """Claim and make one task; None when the queue is empty."""
    from snapsync.control import data_copy_tasks
    from snapsync.control.sync_undo import UndoConflict

    task = claim_next(state_conn, owner)
    if task is None:
        return None
    try:
        done = run(settings, task)
    except (ConfigError, SnapsyncError) as exc:
        if isinstance(exc, RetriableError):
            release(state_conn, task, owner)
            raise
        conflicts = {"conflicts": exc.conflicts} if isinstance(exc, UndoConflict) else None
        finish(state_conn, task, owner, "failed", error=str(exc), result=conflicts,
               message=f"Data Sync could not make your {task.kind.replace('_', ' ')} (task {task.task_id}): "
                       f"{str(exc)[:600]}", then=data_copy_tasks.on_failure(task, exc))
        log.info("sync task %d (%s) refused (%s)", task.task_id, task.kind, type(exc).__name__)
        return task
    except Exception:
        release(state_conn, task, owner)
        raise
    finish(state_conn, task, owner, "done", result=done.result, message=done.message, then=done.then)
    log.info("sync task %d (%s) done", task.task_id, task.kind)
    return task


class TaskRunner:
    """Makes queued tasks from a daemon thread of the worker until stopped (passing failures
    are waited out; anything else is logged and the task marked failed or retried)."""

    def __init__(self, settings: Settings, owner: str, *, interval: float = 0.5) -> None:
        self.settings, self.owner, self.interval = settings, owner, interval
        self.stop = threading.Event()
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="sync-tasks", daemon=True)

    def start(self) -> TaskRunner:
        self._thread.start()
        return self

    def _run(self) -> None:
        from snapsync.connectors.state import connect_state

        conn, backoff = None, Backoff(first=self.interval)
        while not self.stop.is_set():
            delay = self.interval
            try:
                conn = conn or connect_state(self.settings)
                while not self.stop.is_set() and work_once(self.settings, self.owner, conn) is not None:
                    self.done += 1
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the next turn tries again
                delay = backoff.next()
                log.warning("sync tasks paused (%s); trying again in %.1fs", type(exc).__name__, delay)
                close_quietly(conn)
                conn = None
            self.stop.wait(delay)
        if conn is not None:
            conn.close()


def wait_for(settings: Settings, task_ids: list[int], timeout: float, poll: float = 0.2) -> list[Task]:
    """The tasks once none is queued or running any more, or as they are after ``timeout``."""
    from snapsync.connectors.state import connect_state

    deadline = time.monotonic() + timeout
    with connect_state(settings) as conn:
        while True:
            tasks = get(conn, task_ids)
            if all(t.state in ("done", "failed") for t in tasks) or time.monotonic() >= deadline:
                return tasks
            time.sleep(poll)


def summary(tasks: list[Task]) -> dict[str, Any]:
    """What a requester is told: per task its state and result."""
    return {str(t.payload.get("target", t.task_id)): {"task_id": t.task_id, "state": t.state,
                                                      **({"tables": t.result["tables"]} if t.result and "tables"
                                                         in t.result else {}),
                                                      **({"error": t.error} if t.error else {})} for t in tasks}
