"""The one failure policy: a Kafka client's error is waited out unless it is about the message."""

from __future__ import annotations

import pymysql
import pytest
from aiokafka import errors as ak
from confluent_kafka import KafkaError, KafkaException

from snapsync.connectors.failures import kind_of, waits
from snapsync.schemas.errors import DataError, RetriableError


@pytest.mark.parametrize("exc", [
    ak.UnknownError(), ak.KafkaTimeoutError(), ak.NotLeaderForPartitionError(), ak.KafkaConnectionError(),
    ak.UnknownTopicOrPartitionError(), KafkaException(KafkaError(KafkaError._TRANSPORT)),
    KafkaException(KafkaError(KafkaError.UNKNOWN)), KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)),
    RetriableError("away"), pymysql.err.OperationalError(2013, "lost"), ConnectionError(),
])
def test_the_broker_or_database_away_is_waited_out(exc):
    # aiokafka's UnknownError: what a broker replaced under faust answered (found by the soak)
    assert kind_of(exc) == "passing" and waits(exc)


@pytest.mark.parametrize("exc", [
    ak.MessageSizeTooLargeError(), KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
    DataError("does not fit"), pymysql.err.OperationalError(1292, "incorrect value"), ValueError("bad"),
])
def test_what_is_about_the_message_is_dead_lettered(exc):
    assert kind_of(exc) == "data" and not waits(exc)


def test_a_send_retried_after_a_broker_restart_leaves_no_traceback(caplog):
    """faust keeps a failed send's exception in a future nobody awaits; the worker's send logs
    and retries it, so asyncio's "never retrieved" traceback is not repeated (the soak counts
    tracebacks); any other unretrieved exception still is."""
    import asyncio
    import logging

    from snapsync.streams.app import _unretrieved_sends_told_once

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            _unretrieved_sends_told_once(loop, {"message": "Future exception was never retrieved",
                                                "exception": ak.UnknownError()})
            assert caplog.records == []
            _unretrieved_sends_told_once(loop, {"message": "Future exception was never retrieved",
                                                "exception": ValueError("a bug")})
            assert len(caplog.records) == 1
    finally:
        loop.close()


def test_a_producer_in_librdkafkas_fatal_state_is_a_passing_failure_of_the_capture():
    """After a broker restart the idempotent producer meets another broker and librdkafka raises
    ``SystemError`` from its calls (the fourth 30-minute soak: capture exit 70). The capture
    reports it as passing, so it starts again (with a new producer) from its restart point."""
    from snapsync.connectors.binlog_capture import Capture
    from snapsync.connectors.failures import is_transient

    class Fatal:
        def flush(self, *args, **kwargs):
            raise SystemError("<class 'str'> returned a result with an exception set")

        def poll(self, *args, **kwargs):
            self.flush()

        def produce(self, *args, **kwargs):
            self.flush()

    cap = Capture.__new__(Capture)
    cap._producer, cap._errors = Fatal(), []
    for call in (cap._flush, lambda: cap._poll(0), lambda: cap._produce("t", b"k", b"v")):
        with pytest.raises(RetriableError, match="failed fatally") as got:
            call()
        assert is_transient(got.value)
