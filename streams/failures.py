"""What the workers do when processing one message fails: wait it out, or dead-letter it.

* **Wait** (back off and try the same message again, never crash): the database or broker
  is unreachable or busy (connection errors, lock waits, deadlocks, snapsync's
  ``RetriableError``), or the database is not as expected (a missing table or column:
  every message would fail the same way, so none is thrown away).
* **Dead-letter** (send the message to ``<prefix>.dlq`` with a reason, move on): anything
  about this one message - it does not decode, does not fit the catalog, or the database
  refuses its values (too long, out of range, duplicate key) - and any other error raised
  while handling it, so that one message can never stop a partition or make the worker
  crash again on every restart.

Reasons never quote row values: snapsync's own ``DataError`` messages are written without
them; a database error is named by its code, a fixed phrase and at most a column name.
"""

from __future__ import annotations

import re
from typing import Literal

import pymysql

from snapsync.connectors.mysql import is_transient
from snapsync.schemas.errors import DataError, FatalError

_PHRASES = {
    1048: "a NOT NULL column got NULL", 1062: "duplicate key", 1264: "value out of range",
    1292: "incorrect value for the column's type", 1366: "incorrect value for the column's type",
    1406: "value too long", 1452: "a referenced row does not exist", 1265: "value truncated",
}
_COLUMN = re.compile(r"column '([A-Za-z0-9_$]{1,64})'")

Action = Literal["retry", "dead-letter"]


def classify(exc: BaseException) -> Action:
    """``retry`` for passing or systemic failures, ``dead-letter`` for one bad message."""
    if is_transient(exc):
        return "retry"
    if isinstance(exc, (pymysql.err.ProgrammingError, pymysql.err.InternalError, pymysql.err.NotSupportedError)):
        return "retry"  # the database is not as expected (a missing table or column): wait for a fix
    if isinstance(exc, FatalError) and not isinstance(exc, DataError):
        return "retry"  # e.g. the login was refused: an operator fixes it, nothing is lost
    if _is_kafka_error(exc):
        return "retry"
    return "dead-letter"


def _is_kafka_error(exc: BaseException) -> bool:
    try:
        from aiokafka.errors import KafkaError
    except ImportError:  # pragma: no cover - aiokafka comes with faust
        return False
    return isinstance(exc, KafkaError) and getattr(exc, "retriable", True)


def safe_reason(exc: BaseException) -> str:
    """A reason for the dead-letter topic and the log that never quotes row values."""
    if isinstance(exc, DataError):
        return str(exc)
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
        column = _COLUMN.search(str(exc.args[1]) if len(exc.args) > 1 else "")
        return (f"the database refused the row (MySQL error {code}: {_PHRASES.get(code, type(exc).__name__)}"
                + (f", column {column.group(1)}" if column else "") + ")")
    return f"{type(exc).__name__} while handling the message"
