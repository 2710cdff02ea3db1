"""Every Kafka topic name of the pipeline, defined once.

Change topics follow Debezium's naming (``<prefix>.<db>.<table>``); the heartbeat and
transaction topics are Debezium's defaults for the same prefix; the others are snapsync's.
"""

from __future__ import annotations


def change_topic(prefix: str, db: str, table: str) -> str:
    """``<prefix>.<db>.<table>``, as Debezium names a table's topic."""
    return f"{prefix}.{db}.{table}"


def heartbeat_topic(prefix: str) -> str:
    """Debezium's default heartbeat topic name (``topic.heartbeat.prefix`` = ``__debezium-heartbeat``)."""
    return f"__debezium-heartbeat.{prefix}"


def transaction_topic(prefix: str) -> str:
    """Transaction metadata (BEGIN/END) topic, as Debezium names it."""
    return f"{prefix}.transaction"


def dead_letter_topic(prefix: str) -> str:
    """Where malformed events go, with the reason in a header and in the value."""
    return f"{prefix}.dlq"


def commands_topic(prefix: str) -> str:
    """Data Sync commands, keyed by the target customer."""
    return f"{prefix}.sync.commands"


def notifications_topic(prefix: str) -> str:
    """Account notifications (snapshot ready, sync pending, failures), keyed by account."""
    return f"{prefix}.notifications"


def export_jobs_topic(prefix: str) -> str:
    """The nightly round's export jobs (one per due account and day), keyed by account; the
    ``snapsync export-worker`` processes share them through one consumer group."""
    return f"{prefix}.export.jobs"


def worker_group(prefix: str, db: str) -> str:
    """The consumer group of ``snapsync worker`` (its faust app id)."""
    return f"snapsync-{prefix}-{db}"


def export_group(prefix: str, db: str) -> str:
    """The consumer group the ``snapsync export-worker`` processes share."""
    return f"snapsync-export-{prefix}-{db}"


def worker_topics(prefix: str, db: str) -> list[str]:
    """The topics ``snapsync worker``'s faust agents consume: the change topics of the Data Sync
    data sets, and the Data Sync commands."""
    from snapsync.schemas.catalog import sync_datasets

    return [*(change_topic(prefix, db, d.table) for d in sync_datasets()), commands_topic(prefix)]


def deltas_group(prefix: str, db: str) -> str:
    """The consumer group of the worker's deltas stage (not a faust agent: its own group)."""
    return f"snapsync-deltas-{prefix}-{db}"


def deltas_topics(prefix: str, db: str) -> list[str]:
    """The topics the deltas stage consumes: the change topics of the incremental data sets."""
    from snapsync.schemas.catalog import incremental_datasets

    return [change_topic(prefix, db, d.table) for d in incremental_datasets()]