"""One failure policy for every process (Debezium's ``ErrorHandler`` idea): what kind a failure
is, how long to wait before trying again, and what a dead letter carries.

Kinds (:func:`kind_of`):

* **passing** - the database or broker is away or busy: connection errors, lock waits,
  deadlocks, too many connections, a killed connection, snapsync's ``RetriableError``, a
  retriable Kafka error. Try again on a new connection after a back-off.
* **systemic** - the system is not as expected and every message would fail the same way: a
  missing table or column, a login refused, a schema not at this release's version. A process
  stops with the message (exit 2) at start; a message being processed waits for the fix
  instead of being thrown away.
* **data** - this one input is bad (it does not decode, does not fit the catalog, the database
  refuses its values). Dead-letter it with a reason and go on.

:class:`Backoff` is the one back-off (doubling, capped) every loop uses; :func:`dead_letter`
builds the one dead-letter record (headers and the value-size limit) every writer sends;
:func:`safe_reason` names a failure without quoting row values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pymysql

from snapsync.schemas.errors import DataError, FatalError, RetriableError

Kind = Literal["passing", "systemic", "data"]

#: MySQL/MariaDB error codes that pass: server going away, lock waits, deadlocks, too many
#: connections, shutdown, a killed connection or query. Client-side codes (2000+) all pass.
TRANSIENT_CODES = frozenset({1040, 1053, 1077, 1152, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927, 1969})


def kind_of(exc: BaseException) -> Kind:
    """The kind of a failure (see the module docstring)."""
    if isinstance(exc, RetriableError):
        return "passing"
    if isinstance(exc, pymysql.err.OperationalError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 2000
        if code in TRANSIENT_CODES or code >= 2000:
            return "passing"
        return "data"  # e.g. 1292, an incorrect value: pymysql maps such refusals here
    if isinstance(exc, (pymysql.err.InterfaceError, ConnectionError, TimeoutError)):
        return "passing"
    if isinstance(exc, (pymysql.err.ProgrammingError, pymysql.err.InternalError, pymysql.err.NotSupportedError)):
        return "systemic"  # a missing table or column
    if isinstance(exc, FatalError) and not isinstance(exc, DataError):
        return "systemic"
    if _kafka_retriable(exc):
        return "passing"
    return "data"


def is_transient(exc: BaseException) -> bool:
    """True for a failure that passes: retry it on a new connection."""
    return kind_of(exc) == "passing"


def waits(exc: BaseException) -> bool:
    """For a message being processed: wait (passing or systemic) rather than dead-letter."""
    return kind_of(exc) != "data"


def _kafka_retriable(exc: BaseException) -> bool:
    """A Kafka client's error passes unless it is about the message itself (too large, not a
    valid record): the broker being away, restarted, replaced or still creating a topic is
    waited out, never a reason to throw the message away. (Both clients mark many such errors
    not retriable, aiokafka's ``UnknownError`` and ``KafkaTimeoutError`` among them: seen
    dead-lettering Data Sync edits when the soak restarted the broker.)"""
    try:
        from confluent_kafka import KafkaError as CKError
        from confluent_kafka import KafkaException
    except ImportError:  # pragma: no cover - a dependency
        KafkaException = ()  # noqa: N806
    if KafkaException and isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        code = err.code() if hasattr(err, "code") else None
        return code not in (CKError.MSG_SIZE_TOO_LARGE, CKError.INVALID_MSG, CKError.INVALID_MSG_SIZE)
    try:
        from aiokafka import errors as ak
    except ImportError:  # pragma: no cover - aiokafka comes with faust
        return False
    about_the_message = (ak.MessageSizeTooLargeError, ak.InvalidMessageError)
    return isinstance(exc, ak.KafkaError) and not isinstance(exc, about_the_message)


@dataclass
class Backoff:
    """Seconds to wait before the next try: ``first``, doubling up to ``cap``; :meth:`reset`
    after a success."""

    first: float = 0.2
    cap: float = 10.0
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.first
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = 0.0


# --- dead letters ----------------------------------------------------------------------------
#: A dead letter carries the original value only below this size, and the key below KEY_LIMIT.
DLQ_VALUE_LIMIT = 900_000
KEY_LIMIT = 10_000


@dataclass(frozen=True)
class DeadLetter:
    """What goes to ``<prefix>.dlq`` for one message: its key and value (or none, when too
    large) and the headers naming where it came from and why."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                reason: str) -> DeadLetter:
    """The dead letter of one message (``reason`` must quote no row value: :func:`safe_reason`)."""
    value = value if value is not None else b""
    headers = {"reason": reason, "topic": topic, "partition": str(partition), "offset": str(offset)}
    if len(value) + len(key or b"") > DLQ_VALUE_LIMIT:
        headers["truncated"] = f"original value of {len(value)} bytes not copied"
        value = b""
    return DeadLetter(key if key is None or len(key) < KEY_LIMIT else None, value,
                      [(k, v.encode()) for k, v in headers.items()])


_PHRASES = {
    1048: "a NOT NULL column got NULL", 1062: "duplicate key", 1264: "value out of range",
    1292: "incorrect value for the column's type", 1366: "incorrect value for the column's type",
    1406: "value too long", 1452: "a referenced row does not exist", 1265: "value truncated",
}
_COLUMN = re.compile(r"column '([A-Za-z0-9_$]{1,64})'")


def safe_reason(exc: BaseException) -> str:
    """A reason for the dead-letter topic and the log that never quotes row values: snapsync's
    own ``DataError`` messages are written without them; a database error is named by its code,
    a fixed phrase and at most a column name."""
    if isinstance(exc, DataError):
        return str(exc)
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
        column = _COLUMN.search(str(exc.args[1]) if len(exc.args) > 1 else "")
        return (f"the database refused the row (MySQL error {code}: {_PHRASES.get(code, type(exc).__name__)}"
                + (f", column {column.group(1)}" if column else "") + ")")
    return f"{type(exc).__name__} while handling the message"
