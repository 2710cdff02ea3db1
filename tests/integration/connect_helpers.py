"""Helpers for the tests of the Debezium connector on the real Kafka Connect worker: a unique
connector per test, the CLI run as a user runs it, and a topic follower (confluent-kafka)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from tests.conftest import db_env

BIN = str(Path(sys.executable).with_name("snapsync"))
_ids = itertools.count(1)


@dataclass(frozen=True)
class Unique:
    """A connector name, topic prefix and ``database.server.id`` no other test uses."""

    name: str
    prefix: str
    server_id: int


def unique(label: str) -> Unique:
    n = next(_ids)
    tag = f"{label}{n}p{os.getpid()}"
    return Unique(f"dbz-{tag}", f"dbz{tag}", 7_000_000 + (os.getpid() % 1000) * 100 + n)


def user_env(base_env: dict[str, str], settings, connect_url: str, prefix: str) -> dict[str, str]:
    """The environment of a user of that database, broker, Connect worker and topic prefix."""
    return {**base_env, **db_env(settings),
            "SNAPSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "SNAPSYNC_TOPIC_PREFIX": prefix,
            "SNAPSYNC_CONNECT_URL": connect_url}


def snapsync(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)


class Follower:
    """Reads a topic from its beginning as messages arrive: (key, value) decoded from JSON."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.messages: list[tuple[Any, Any]] = []
        self._partitions = 0
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"follow-{time.monotonic_ns()}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 50})

    def poll(self) -> None:
        # All topics are listed (asking for one by name could create it with other partitions).
        md = self.consumer.list_topics(timeout=5).topics.get(self.topic)
        if md is not None and md.error is None and len(md.partitions) > self._partitions:
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in md.partitions])
            self.messages.clear()  # (re)assigned from the beginning: read everything again
            self._partitions = len(md.partitions)
        if not self._partitions:
            time.sleep(0.3)
            return
        for m in self.consumer.consume(2000, 0.3):
            if m.error():
                continue
            key = json.loads(m.key()) if m.key() else None
            self.messages.append((key, json.loads(m.value()) if m.value() else None))

    def wait_for(self, cond: Callable[[list], bool], timeout: float, what: str) -> list[tuple[Any, Any]]:
        deadline = time.monotonic() + timeout
        while not cond(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: {what} not seen within {timeout:.0f}s "
                                     f"({len(self.messages)} message(s) read)")
            self.poll()
        return self.messages

    def settle(self, seconds: float) -> list[tuple[Any, Any]]:
        """Read whatever else arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def after_ids(messages, op: str | None = None) -> list[int]:
    """The ``after.id`` of each change event (of one ``op`` when given), in arrival order."""
    return [v["after"]["id"] for _k, v in messages
            if v is not None and v.get("after") is not None and (op is None or v.get("op") == op)]
