"""Capture by Debezium on the local Kafka Connect worker, for ``snapsync demo --debezium``.

The connector is deployed the way an operator deploys it (``connectors/debezium.py``:
prepare, validate, create, wait until RUNNING), with the topic prefix the workers read, so the
rest of the demo cannot tell it from the embedded capture. Progress is read from the broker
(the change events themselves), never from Debezium's logs. Each run deploys a connector of
its own name (a new snapshot) and removes the previous run's.
"""

from __future__ import annotations

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from snapsync.connectors.debezium import MYSQL_CONNECTOR, deploy, render
from snapsync.connectors.kafka_connect import ConnectClient, states
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import FatalError
from snapsync.schemas.topics import change_topic

NAME_PREFIX = "snapsync-demo-"
SERVER_ID = 184060


class DebeziumCapture:
    """One demo run's Debezium connector and a reader of the change topics it writes."""

    def __init__(self, settings: Settings, connect_url: str) -> None:
        self.settings = settings
        self.client = ConnectClient(connect_url)
        self.name = f"{NAME_PREFIX}{int(time.time())}"
        self.started_ms = 0
        self.topic_prefix = change_topic(settings.topic_prefix, settings.db.database, "")
        self.consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"demo-{self.name}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        self._assigned: dict[str, int] = {}
        self.counts: dict[str, int] = {}  # op -> events of this run
        self.by_table: dict[tuple[str, str], int] = {}
        self.snapshot_done = False

    def start(self, timeout: float = 180.0) -> None:
        """Remove earlier demo connectors, deploy this run's (the local worker has Debezium 3.0.7's
        MySQL connector only: docs/connector.md "Known limits") and wait until it runs."""
        for old in self.client.connectors():
            if old.startswith(NAME_PREFIX):
                self.client.delete(old)
                self.client.wait_gone(old, 30)
        connector = render(self.settings, name=self.name, server_id=SERVER_ID, connector_class=MYSQL_CONNECTOR)
        # A schema history of its own: the new connector snapshots afresh.
        connector["config"]["schema.history.internal.kafka.topic"] = f"schemahistory.{self.name}"
        self.started_ms = int(time.time()) * 1000  # snapshot events carry whole seconds
        _created, st = deploy(self.client, connector, wait=timeout)
        if st is None or any(s != "RUNNING" for s in states(st)):
            raise FatalError(f"the Debezium connector {self.name} is not running ({', '.join(states(st or {}))}): "
                             f"see `snapsync connector status --name {self.name}` and the Connect log")

    def _poll(self) -> None:
        topics = self.consumer.list_topics(timeout=5).topics
        new = {t: len(md.partitions) for t, md in topics.items()
               if t.startswith(self.topic_prefix) and md.error is None and len(md.partitions) > self._assigned.get(t, 0)}
        if new:
            self._assigned.update(new)
            self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, n in self._assigned.items()
                                  for p in range(n)])
            self.counts.clear()
            self.by_table.clear()
            self.snapshot_done = False
        for m in self.consumer.consume(5000, 0.3):
            if m.error() or not m.value():
                continue
            event = json.loads(m.value())
            source = event.get("source") or {}
            if int(source.get("ts_ms") or 0) < self.started_ms:
                continue  # an earlier run's event
            op = event.get("op", "?")
            self.counts[op] = self.counts.get(op, 0) + 1
            table = str(source.get("table"))
            self.by_table[(table, op)] = self.by_table.get((table, op), 0) + 1
            if source.get("snapshot") == "last":
                self.snapshot_done = True

    def wait_snapshot(self, timeout: float = 180.0) -> int:
        """Rows of the initial snapshot, once its last record and everything before it was read."""
        deadline = time.monotonic() + timeout
        while not self.snapshot_done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Debezium snapshot did not finish in {timeout:.0f}s")
            self._poll()
        quiet_since, seen = time.monotonic(), self.counts.get("r", 0)
        while time.monotonic() - quiet_since < 1.0:  # partitions read after the "last" one
            self._poll()
            if self.counts.get("r", 0) != seen:
                quiet_since, seen = time.monotonic(), self.counts.get("r", 0)
        return seen

    def wait_changes(self, table: str, op: str, n: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.by_table.get((table, op), 0) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} streamed change(s) of {table} did not arrive in {timeout:.0f}s")
            self._poll()
        return self.by_table[(table, op)]

    def close(self) -> None:
        self.consumer.close()
