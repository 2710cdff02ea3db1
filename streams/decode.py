"""Decoding one message for the workers: a change event checked against the catalog and
its topic, or a Data Sync command checked against its key. Every failure is a
:class:`DataError` whose message quotes no value."""

from __future__ import annotations

from snapsync.schemas.catalog import DataSet, dataset
from snapsync.schemas.errors import DataError
from snapsync.schemas.events import ChangeEvent
from snapsync.schemas.messages import SyncCommand
from snapsync.schemas.validation import check_change


def decode_change(topic: str, key: bytes | None, value: bytes) -> tuple[ChangeEvent, DataSet]:
    """Decode and check one change event from ``topic`` against the catalog.

    Raises:
        DataError: why it cannot be used (never quoting values).
    """
    change = ChangeEvent.from_debezium(value)
    try:
        ds = dataset(change.table)
    except KeyError:
        raise DataError("the event's table is not in the catalog") from None
    if not topic.endswith(f".{change.db}.{change.table}") or ds.table != change.table:
        raise DataError("the event's source db.table does not match its topic")
    check_change(ds, change, key)
    return change, ds


def decode_command(key: bytes | None, value: bytes) -> SyncCommand:
    cmd = SyncCommand.from_json(value)
    if key is not None and key != str(cmd.target_customer).encode():
        raise DataError("the command's key is not its target customer")
    return cmd
