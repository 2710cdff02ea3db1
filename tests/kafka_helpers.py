"""Reading topics back with a real consumer (confluent-kafka), for assertions."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes | None, Any, int, int]]:
    """Every message of ``topic`` as (key, decoded JSON value or None, partition, offset),
    in partition order, read up to the high watermarks seen at the start."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 50})  # Tansu answers a waiting fetch only when the wait ends
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        want: dict[int, int] = {}
        for p in md.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                want[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in want])
        out: list = []
        done = {p: False for p in want}
        deadline = time.monotonic() + timeout
        while not all(done.values()) and time.monotonic() < deadline:
            for m in c.consume(5000, 0.5):
                if m.error():
                    continue
                out.append((m.key(), _decode(m.value()), m.partition(), m.offset()))
                if m.offset() + 1 >= want[m.partition()]:
                    done[m.partition()] = True
        if not all(done.values()):
            raise TimeoutError(f"could not read {topic} to its end in {timeout}s")
        return out
    finally:
        c.close()


def _decode(v: bytes | None) -> Any:
    """JSON values decoded; anything else (a dead letter's original bytes) kept raw."""
    if v is None:
        return None
    try:
        return json.loads(v)
    except (ValueError, RecursionError):
        return v


def final_state(messages) -> dict[bytes, Any]:
    """Apply change events in order per key: the last image, deletes removing the key."""
    state: dict[bytes, Any] = {}
    for key, value, _p, _o in sorted(messages, key=lambda m: (m[2], m[3])):
        if value is None:
            continue  # tombstone
        if value["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = value["after"]
    return state
