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
