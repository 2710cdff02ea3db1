"""Metrics of the nightly round (scheduler and export workers); docs/operations.md lists them.

Labels are fixed words (kind, format, outcome, state): never an account's data. Account ids are
not labels either (thousands of series); `snapsync status` names the failing accounts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXPORT_SECONDS = Histogram(
    "snapsync_export_duration_seconds", "Seconds one delivery took, from claim to recorded delivery.",
    ["kind", "format"], buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
EXPORT_ROWS = Histogram(
    "snapsync_export_rows", "Rows in one delivery.", ["kind"],
    buckets=(0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000))
EXPORT_BYTES = Histogram(
    "snapsync_export_bytes", "Bytes of the package files of one delivery.", ["kind"],
    buckets=(1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11))
EXPORTS = Counter(
    "snapsync_exports_total", "Export attempts by outcome: delivered, failed (tried again at a later round), "
    "retry (a passing failure: queued again), lost (the claim was taken over meanwhile).", ["kind", "outcome"])
JOBS = Counter(
    "snapsync_export_jobs_total", "Export jobs taken from the jobs topic, by what became of them: done, skipped "
    "(already delivered, held by another live worker, or stale), dead_letter (malformed or for an account "
    "without enabled snapshots).", ["result"])
WORKER_PARTITIONS = Gauge("snapsync_export_worker_partitions",
                          "Partitions of the jobs topic assigned to this export worker (0: standby).")
JOBS_PUBLISHED = Counter("snapsync_export_jobs_published_total", "Export jobs this scheduler published.")
DEADLINES_MISSED = Counter(
    "snapsync_deliveries_missed_total", "Deliveries not made by their ready-by time (09:00 New York) that this "
    "scheduler announced (one failure notification per account and day, whichever scheduler sees it first).")
ROUND_SLOTS = Gauge(
    "snapsync_round_slots", "Today's due slots at the last round, by state (queued, running, delivered, failed).",
    ["state"])
ROUND_LATE = Gauge("snapsync_round_late_accounts",
                   "Accounts due today and not delivered although their ready-by time has passed (last round).")
LAST_ROUND = Gauge("snapsync_scheduler_last_round_timestamp_seconds", "When the last scheduling round ended.")
