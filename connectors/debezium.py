"""Debezium MySQL connector deployment: the rendered config, and a Kafka Connect REST
client (``requests``) to deploy and manage it.

The rendered config yields the same topics and value encodings as the embedded capture
(``schemas/events.py`` documents them): topic prefix, table include list from the
catalog (plus the heartbeat table), JSON converters without schemas, decimals as strings,
adaptive microsecond time precision, base64 binary, tombstones after deletes, transaction
metadata, and the heartbeat action query writing the same ``snapsync_heartbeat`` row.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError

CONNECTOR_CLASS = "io.debezium.connector.mysql.MySqlConnector"
SIGNAL_TABLE = "snapsync_debezium_signal"
SIGNAL_DDL = f"""CREATE TABLE IF NOT EXISTS `{SIGNAL_TABLE}` (
  `id` VARCHAR(42) NOT NULL,
  `type` VARCHAR(32) NOT NULL,
  `data` VARCHAR(2048) NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

#: Properties the rendered config must carry, with the reason a value is fixed.
REQUIRED = (
    "connector.class", "tasks.max", "database.hostname", "database.port", "database.user",
    "database.server.id", "topic.prefix", "database.include.list", "table.include.list",
    "schema.history.internal.kafka.bootstrap.servers", "schema.history.internal.kafka.topic",
)
FIXED = {
    "decimal.handling.mode": "string",
    "time.precision.mode": "adaptive_time_microseconds",
    "binary.handling.mode": "base64",
    "bigint.unsigned.handling.mode": "long",
    "tombstones.on.delete": "true",
    "provide.transaction.metadata": "true",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "false",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "false",
}


def render(settings: Settings, *, name: str = "snapsync", server_id: int = 184054,
           snapshot_mode: str = "initial", heartbeat_ms: int = 1000, partitions: int = 3) -> dict[str, Any]:
    """The connector as ``{"name": ..., "config": {...}}`` for ``POST /connectors``."""
    db = settings.db
    # The signal table must be captured too: Debezium reads signals from the binlog.
    tables = [f"{db.database}.{d.table}" for d in DATASETS] + [
        f"{db.database}.snapsync_heartbeat", f"{db.database}.{SIGNAL_TABLE}"]
    config = {
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",
        "database.hostname": db.host,
        "database.port": str(db.port),
        "database.user": db.user,
        "database.password": db.password,
        "database.server.id": str(server_id),
        "topic.prefix": settings.topic_prefix,
        "database.include.list": db.database,
        # Anchored regular expressions, as Debezium matches them against db.table.
        "table.include.list": ",".join(t.replace(".", "\\.") for t in tables),
        "snapshot.mode": snapshot_mode,
        "snapshot.locking.mode": "minimal",
        "include.schema.changes": "false",
        "schema.history.internal.kafka.bootstrap.servers": settings.kafka_bootstrap,
        "schema.history.internal.kafka.topic": f"schemahistory.{settings.topic_prefix}",
        "heartbeat.interval.ms": str(heartbeat_ms),
        "topic.heartbeat.prefix": "__debezium-heartbeat",
        "heartbeat.action.query": (
            f"REPLACE INTO {db.database}.snapsync_heartbeat (connector, ts_us) "
            f"VALUES ('{name}', CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED))"
        ),
        "signal.data.collection": f"{db.database}.{SIGNAL_TABLE}",
        "incremental.snapshot.chunk.size": "10000",
        "topic.creation.default.partitions": str(partitions),
        "topic.creation.default.replication.factor": "-1",
        "event.processing.failure.handling.mode": "fail",
        **FIXED,
    }
    return {"name": name, "config": config}


def check_config(config: dict[str, Any]) -> list[str]:
    """Local validation before anything is sent: one message per failing field."""
    problems = []
    for key in REQUIRED:
        if str(config.get(key, "")).strip() == "":
            problems.append(f"{key}: missing (required)")
    if config.get("connector.class") not in (None, "", CONNECTOR_CLASS):
        problems.append(f"connector.class: must be {CONNECTOR_CLASS}")
    for key in ("database.port", "database.server.id", "tasks.max"):
        value = str(config.get(key, ""))
        if value and not value.isdigit():
            problems.append(f"{key}: {value!r} is not a positive integer")
    if str(config.get("tasks.max", "1")) not in ("", "1"):
        problems.append("tasks.max: the MySQL connector runs exactly one task; use 1")
    for key, value in FIXED.items():
        if key in config and str(config[key]) != value:
            problems.append(f"{key}: must be {value!r} so events match the embedded capture's encoding")
    return problems


class ConnectClient:
    """Kafka Connect REST API client.

    Retries 409 (rebalance in progress) with back-off; turns connection failures and
    error bodies (``{"error_code": N, "message": "..."}``) into clear errors.
    """

    def __init__(self, url: str, *, retries: int = 8, backoff: float = 0.5, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--connect-url {url!r} must start with http:// or https:// (e.g. http://connect:8083)")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})

    def _call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                r = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
            except requests.RequestException as exc:
                raise RetriableError(
                    f"Kafka Connect at {self.url} is unreachable ({type(exc).__name__}): "
                    "check --connect-url and that the Connect worker is running"
                ) from None
            if r.status_code == 409 and attempt < self.retries:
                time.sleep(delay)  # rebalance in progress: the leader may change, try again
                delay = min(delay * 2, 5.0)
                continue
            if r.status_code in ok:
                return r.json() if r.content else None
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            if r.status_code == 404:
                raise FatalError(f"Kafka Connect: {message} (HTTP 404)")
            if r.status_code == 409:
                raise RetriableError(f"Kafka Connect is still rebalancing after {self.retries} retries: {message}")
            raise FatalError(f"Kafka Connect refused {method} {path}: {message} (HTTP {r.status_code})")
        raise AssertionError("unreachable")

    def validate(self, config: dict[str, Any]) -> list[str]:
        """``PUT /connector-plugins/{class}/config/validate``: each failing field with its errors."""
        result = self._call("PUT", f"/connector-plugins/{CONNECTOR_CLASS}/config/validate", config)
        failing = []
        for item in result.get("configs", []):
            value = item.get("value", {})
            for error in value.get("errors", []):
                failing.append(f"{value.get('name')}: {error}")
        return failing

    def deploy(self, connector: dict[str, Any]) -> dict[str, Any]:
        """Validate (locally, then on the worker), then create or update the connector."""
        problems = check_config(connector["config"])
        if problems:
            raise ConfigError("the connector config is invalid:\n  - " + "\n  - ".join(problems))
        remote = self.validate(connector["config"])
        if remote:
            raise ConfigError("Kafka Connect rejected the connector config:\n  - " + "\n  - ".join(remote))
        return self._call("PUT", f"/connectors/{connector['name']}/config", connector["config"])

    def status(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/connectors/{name}/status")

    def pause(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str) -> None:
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=false")

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{name}")

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """``GET /connectors/{name}/offsets`` (Kafka Connect 3.6+): the committed source offsets,
        ``[{"partition": {"server": prefix}, "offset": {"file", "pos", "row"?, "gtids"?, ...}}]``."""
        return (self._call("GET", f"/connectors/{name}/offsets") or {}).get("offsets", [])
