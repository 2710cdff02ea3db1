"""Metrics and health of ``snapsync worker`` (the faust agents and the deltas stage); docs/operations.md lists them.

faust runs an asyncio loop; the metrics port is served from a thread
(``connectors/metrics.serve``), and the consumer lag is measured by another thread on its
own connection (``connectors/lag.LagMonitor``): committed offsets of the worker's group
against the true end offsets, so a stuck agent shows its lag growing.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from snapsync.connectors.metrics import Health, Heartbeat

STAGED = Counter("snapsync_deltas_staged_total",
                 "Row changes staged for incremental snapshots (snapsync_delta upserts), by table.", ["table"])
EVENTS = Counter("snapsync_worker_events_total", "Messages the worker's agents finished, by agent.", ["agent"])
SYNC_LATENCY = Histogram(
    "snapsync_sync_commit_to_apply_seconds",
    "Data Sync: seconds from the source commit (binlog clock, whole seconds on MySQL/MariaDB: up to 1 s early) to "
    "the command applied in the target.", buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300))
SYNC_APPLIED = Counter("snapsync_sync_applied_total", "Data Sync commands applied, by outcome.", ["outcome"])


def observe_apply(source_ts_ms: int | None, outcome: str) -> None:
    SYNC_APPLIED.labels(outcome).inc()
    if source_ts_ms:
        SYNC_LATENCY.observe(max(0.0, time.time() - source_ts_ms / 1000))


class WorkerState:
    """What the worker's health checks read: its loop's last turn (a faust timer beats it) and
    the partitions faust assigned."""

    def __init__(self, lag=None) -> None:
        self.loop = Heartbeat("the worker's event loop", stale_after=30.0)
        self.assigned: int | None = None  # None: not yet assigned
        self.lag = lag
        self.deltas_lag = None  # the deltas stage's group (streams/stager.py)

    def health(self) -> Health:
        ready = {"partitions": self._partitions}
        if self.lag is not None:
            ready["lag"] = self.lag.check
        ready["deltas_lag"] = lambda: self.deltas_lag.check() if self.deltas_lag is not None else (True, "not measured")
        return Health(live={"loop": self.loop.check}, ready=ready)

    def _partitions(self) -> tuple[bool, str]:
        if self.assigned is None:
            return False, "partitions not assigned yet (joining the group)"
        return True, f"{self.assigned} partition(s) assigned"
