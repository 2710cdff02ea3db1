"""A broker replaced or emptied under the pipeline: noticed, recovered from, announced.

The change topics, the jobs topic and the consumer groups' offsets live on the broker; the
capture's restart point, the deltas stage's progress, the incremental deliveries' state and
Data Sync's marks live in the database. A broker that comes back empty (the local stack's
Tansu keeps topics in memory; a Kafka cluster rebuilt from scratch) leaves the two disagreeing:
events the broker had acknowledged and nobody had read yet are gone, and offsets stored in the
database point into topics that are not the ones they were counted in.

Every broker has a cluster id (the local stack gives Tansu a new one at each start, as a
newly formatted Kafka cluster has). The state store keeps, per topic prefix, the cluster id
last seen (``snapsync_broker``) with a generation number. Whoever first sees another cluster
id (the capture, the worker, an exporter's watermark, an export worker) runs
:func:`observe`, which recovers in one transaction:

* the deltas stage's progress on the prefix's topics is dropped: it stages the new topics
  from their beginning (``streams/stager.py`` restarts its consumer);
* every incremental delivery target's state is dropped: each customer's next incremental
  package carries its incremental data sets in full (changes lost with the broker cannot be
  sent as changes, so nothing is sent as a change that was not seen); an export whose
  watermark was taken on the old broker records nothing (``sinks/incremental.py``);
* every enabled Data Sync group's initial copy is queued again: an edit lost with the broker
  reaches its targets through the copy (create-only creates what is missing, override makes
  items equal);
* export jobs published and not yet taken are published again at the next round;
* each account with snapshots or Data Sync gets a message, ``snapsync status`` shows the
  generation and when the broker changed, and the log says what was done.

Nothing delivered is wrong: incremental packages go full, Data Sync converges by the copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from snapsync.connectors.state import connect_state
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow

log = logging.getLogger("snapsync.broker")


@dataclass(frozen=True)
class Generation:
    """The broker a prefix's topics are on: its cluster id, how many brokers came before, and
    whether this call found it replaced (and recovered)."""

    cluster_id: str
    number: int
    replaced: bool = False


def observe(settings: Settings, cluster_id: str, *, who: str) -> Generation:
    """Record the broker's cluster id for the settings' topic prefix; recover (module
    docstring) when it is not the one recorded. ``who``: the process that noticed (logged)."""
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT cluster_id, generation FROM snapsync_broker WHERE topic_prefix = %s FOR UPDATE",
                    (settings.topic_prefix,))
        row = cur.fetchone()
        if row is None:
            cur.execute("INSERT INTO snapsync_broker (topic_prefix, cluster_id, generation, changed_at) "
                        "VALUES (%s, %s, 1, %s) ON DUPLICATE KEY UPDATE topic_prefix = topic_prefix",
                        (settings.topic_prefix, cluster_id, utcnow()))
            conn.commit()
            return Generation(cluster_id, 1)
        if row[0] == cluster_id:
            conn.commit()
            return Generation(cluster_id, int(row[1]))
        number = int(row[1]) + 1
        done = _recover(cur, settings)
        cur.execute("UPDATE snapsync_broker SET cluster_id = %s, generation = %s, changed_at = %s "
                    "WHERE topic_prefix = %s", (cluster_id, number, utcnow(), settings.topic_prefix))
        conn.commit()
    log.warning("the broker at %s is not the one the pipeline last used (cluster %s, now %s), noticed by %s: "
                "its topics and offsets are gone. Recovered: %s. Incremental packages go full once; Data Sync "
                "copies again.", settings.kafka_bootstrap, row[0], cluster_id, who, done)
    return Generation(cluster_id, number, replaced=True)


def generation(conn, prefix: str) -> int:
    """The prefix's broker generation now (0: never seen), read with a shared lock: a recovery
    running meanwhile is waited for, and one starting waits for the caller's transaction."""
    cur = conn.cursor()
    cur.execute("SELECT generation FROM snapsync_broker WHERE topic_prefix = %s LOCK IN SHARE MODE", (prefix,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _recover(cur, settings: Settings) -> str:
    from snapsync.control import sync_groups
    from snapsync.control.notifications import notify
    from snapsync.control.sync_tasks import enqueue_copy

    prefix = settings.topic_prefix
    cur.execute("DELETE FROM snapsync_delta_progress WHERE topic LIKE %s", (f"{prefix}.%",))
    progress = cur.rowcount
    cur.execute("DELETE FROM snapsync_incremental_state")
    targets = cur.rowcount
    cur.execute("UPDATE snapsync_export_claim SET published_at = NULL WHERE state = 'queued'")
    jobs = cur.rowcount
    copies = 0
    groups = sync_groups.load_groups(cur.connection, commit=False)
    for g in groups:
        if sync_groups.service_enabled(cur.connection, g.account_id):
            copies += len(enqueue_copy(cur, g, g.targets, who="snapsync (broker replaced)"))
    cur.execute("SELECT account_id FROM snapsync_snapshot_settings WHERE enabled = 1")
    accounts = {r[0] for r in cur.fetchall()} | {g.account_id for g in groups}
    for account in sorted(accounts):
        notify(cur, account_id=account, kind="broker_replaced",
               message="The message broker of the data pipeline was replaced and came back empty. Nothing "
                       "delivered to you is affected. Your next incremental data snapshot carries every data "
                       "set in full, and Data Sync copies each group's data again (create-only creates what "
                       "is missing; override makes items equal).")
    return (f"deltas progress of {progress} partition(s) dropped, {targets} incremental target state(s) "
            f"dropped, {jobs} queued export job(s) to publish again, {copies} Data Sync copy task(s) queued, "
            f"{len(accounts)} account(s) told")


def recorded(settings: Settings) -> str | None:
    """The cluster id the state store last saw for the settings' prefix."""
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT cluster_id FROM snapsync_broker WHERE topic_prefix = %s", (settings.topic_prefix,))
        row = cur.fetchone()
        conn.commit()
    return row[0] if row else None


def restart_in_place(reason: str) -> None:
    """Start this command again in this process (same pid, same arguments): its consumers and
    producers begin afresh on the new broker, as after a restart by a service manager."""
    import os
    import sys

    log.warning("restarting: %s", reason)
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.argv])


def watch(settings: Settings, who: str, *, every: float = 5.0, on_replaced=None, stop=None):
    """A daemon thread that reads the broker's cluster id every ``every`` seconds (the first
    time at once). When it is not the one the state store recorded when this process started,
    :func:`observe` recovers (or finds it done by another process) and ``on_replaced()`` runs
    (default: :func:`restart_in_place`). Failures to reach the broker or the database are
    waited out."""
    import threading

    from snapsync.connectors.kafka import cluster_id

    stop = stop or threading.Event()
    on_replaced = on_replaced or (lambda: restart_in_place(f"the broker at {settings.kafka_bootstrap} was replaced"))

    def run() -> None:
        known: str | None = None
        first = True
        while first or not stop.wait(every):
            try:
                if first:
                    known = recorded(settings)
                now = cluster_id(settings.kafka_bootstrap, timeout=5.0)
                first = False
                if now == known:
                    continue
                observe(settings, now, who=who)
                if known is None:
                    known = now
                    continue
                on_replaced()
                return
            except Exception as exc:  # noqa: BLE001 - the broker or database away: tried again
                log.info("broker watch: cannot check the broker now (%s); trying again", type(exc).__name__)

    thread = threading.Thread(target=run, name="broker-watch", daemon=True)
    thread.start()
    return thread
