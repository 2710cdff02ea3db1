"""Producer and topic helpers shared by capture, agents and sinks (confluent-kafka)."""

from __future__ import annotations

from typing import Iterable

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from snapsync.schemas.errors import RetriableError


def producer(bootstrap: str, **overrides) -> Producer:
    """An idempotent producer (acks=all, no reordering on retry), partitioning keys with
    murmur2 as the Java clients (and so Debezium) do."""
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "partitioner": "murmur2_random",
        "message.max.bytes": 10_000_000,
    }
    conf.update(overrides)
    return Producer(conf)


def cluster_id(bootstrap: str, timeout: float = 10.0) -> str:
    """The broker's cluster id (a broker replaced or emptied has another: ``control/broker.py``).

    Raises:
        RetriableError: no broker answers.
    """
    try:
        found = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout).cluster_id
    except KafkaException as exc:
        raise RetriableError(f"cannot reach the Kafka broker at {bootstrap} ({exc}): is it running?") from None
    return found or "unknown"


def check_reachable(bootstrap: str, timeout: float = 10.0, *, why: str = "") -> None:
    """Raise a clear RetriableError when no broker of ``bootstrap`` answers within ``timeout``."""
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise RetriableError(f"cannot reach the Kafka broker at {bootstrap} "
                             f"({exc.args[0].name() if exc.args else 'no answer'}): is it running?"
                             + (f" {why}" if why else "")) from None


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int, *, compacted: Iterable[str] = (),
                  timeout: float = 15.0) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise RetriableError(f"cannot reach the Kafka broker at {bootstrap} ({exc}): is it running?") from None
    compacted = set(compacted)
    new = [
        NewTopic(t, num_partitions=partitions if t not in compacted else 1, replication_factor=1,
                 config={"cleanup.policy": "compact"} if t in compacted else {})
        for t in dict.fromkeys(topics) if t not in existing
    ]
    if not new:
        return
    for topic, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RetriableError(f"cannot create topic {topic}: {exc}") from None
