"""The rendered Debezium config against the documented property names and our encodings; the
connector class choice, the GRANT statements, and when a Connect status has settled."""

import pytest

from snapsync.connectors.debezium import (
    FIXED,
    MARIADB_CONNECTOR,
    MYSQL_CONNECTOR,
    check_config,
    class_for_version,
    connector_class,
    grant_statements,
    render,
)
from snapsync.connectors.kafka_connect import ConnectClient, settled
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import load_settings
from snapsync.schemas.errors import ConfigError

# Property names from the Debezium 2.x/3.x MySQL and MariaDB connectors' and Kafka Connect's documentation.
DOCUMENTED = {
    "name", "connector.class", "tasks.max", "database.hostname", "database.port", "database.user", "database.password",
    "database.server.id", "topic.prefix", "database.include.list", "table.include.list", "snapshot.mode",
    "snapshot.locking.mode", "include.schema.changes", "schema.history.internal.kafka.bootstrap.servers",
    "schema.history.internal.kafka.topic", "heartbeat.interval.ms", "topic.heartbeat.prefix",
    "heartbeat.action.query", "signal.data.collection", "incremental.snapshot.chunk.size",
    "topic.creation.default.partitions", "topic.creation.default.replication.factor",
    "event.processing.failure.handling.mode", "decimal.handling.mode", "time.precision.mode",
    "binary.handling.mode", "bigint.unsigned.handling.mode", "tombstones.on.delete", "provide.transaction.metadata",
    "key.converter", "key.converter.schemas.enable", "value.converter", "value.converter.schemas.enable",
    "value.converter.replace.null.with.default",  # Kafka Connect JsonConverter (KIP-581), Connect 3.5+
}


def _settings():
    return load_settings(None, database_url="mysql://cdc:pw@db.internal:3306/practice", kafka_bootstrap="k:9092",
                         topic_prefix="practice")


def test_only_documented_properties_and_our_encodings():
    r = render(_settings(), name="snapsync")
    cfg = r["config"]
    assert set(cfg) <= DOCUMENTED, set(cfg) - DOCUMENTED
    for k, v in FIXED.items():
        assert cfg[k] == v
    # the practice schema, and the signal schema for the heartbeat and signal tables (nothing else)
    assert cfg["topic.prefix"] == "practice" and cfg["database.include.list"] == "practice,snapsync_signal"
    tables = cfg["table.include.list"].split(",")
    assert len(tables) == len(DATASETS) + 2
    assert "practice\\.patient" in tables and "snapsync_signal\\.snapsync_heartbeat" in tables
    assert "snapsync_signal\\.snapsync_debezium_signal" in tables
    assert "`snapsync_signal`.`snapsync_heartbeat`" in cfg["heartbeat.action.query"]
    assert cfg["signal.data.collection"] == "snapsync_signal.snapsync_debezium_signal"
    assert "ON DUPLICATE KEY UPDATE" in cfg["heartbeat.action.query"]  # INSERT and UPDATE grants suffice
    assert cfg["name"] == r["name"] == "snapsync"  # real Connect validates `name` inside the config
    assert cfg["connector.class"] == MYSQL_CONNECTOR
    assert check_config(cfg) == []


def test_check_config_names_each_failing_field():
    cfg = render(_settings())["config"]
    cfg.pop("database.hostname")
    cfg["database.port"] = "33o6"
    cfg["decimal.handling.mode"] = "precise"
    problems = check_config(cfg)
    assert any(p.startswith("database.hostname: missing") for p in problems)
    assert any(p.startswith("database.port:") for p in problems)
    assert any(p.startswith("decimal.handling.mode:") for p in problems)


def test_check_config_accepts_either_connector_class_and_refuses_junk():
    for cls in (MYSQL_CONNECTOR, MARIADB_CONNECTOR, "com.example.cdc.OtherConnector"):
        assert check_config(render(_settings(), connector_class=cls)["config"]) == []
    cfg = render(_settings())["config"]
    cfg["connector.class"] = "not a class"
    cfg["heartbeat.interval.ms"] = "0"
    cfg["topic.heartbeat.prefix"] = "beats"
    problems = check_config(cfg)
    assert any(p.startswith("connector.class: 'not a class' is not a Java class name") for p in problems)
    assert any(p.startswith("heartbeat.interval.ms:") for p in problems)
    assert any(p.startswith("topic.heartbeat.prefix: must be '__debezium-heartbeat'") for p in problems)


def test_connector_class_follows_the_server_and_the_option():
    assert class_for_version("10.11.19-MariaDB-0+deb12u1-log") == MARIADB_CONNECTOR
    assert class_for_version("11.4.2-MariaDB") == MARIADB_CONNECTOR
    assert class_for_version("8.0.36") == MYSQL_CONNECTOR
    assert class_for_version("8.4.0-commercial") == MYSQL_CONNECTOR
    assert connector_class("mysql") == MYSQL_CONNECTOR and connector_class(" MariaDB ") == MARIADB_CONNECTOR
    assert connector_class("io.debezium.connector.mysql.MySqlConnector") == MYSQL_CONNECTOR
    with pytest.raises(ConfigError, match="use mysql, mariadb"):
        connector_class("postgres please")


def test_grant_statements_name_the_user_and_each_table():
    stmts = grant_statements("cdc@10.0.0.%", "practice", ["RELOAD", "REPLICATION CLIENT (BINLOG MONITOR)"],
                             {"snapsync_heartbeat": ["INSERT", "UPDATE", "CREATE"]})
    assert stmts == ["GRANT RELOAD, REPLICATION CLIENT ON *.* TO 'cdc'@'10.0.0.%';",
                     "GRANT INSERT, UPDATE, CREATE ON `practice`.`snapsync_heartbeat` TO 'cdc'@'10.0.0.%';"]


def _status(connector: str, *tasks: str) -> dict:
    return {"connector": {"state": connector}, "tasks": [{"id": i, "state": t} for i, t in enumerate(tasks)]}


def test_when_a_status_has_settled():
    assert not settled(_status("RUNNING"))  # created, no task assigned yet
    assert not settled(_status("RUNNING", "UNASSIGNED"))
    assert not settled(_status("RUNNING", "RESTARTING"))
    assert settled(_status("RUNNING", "RUNNING"))
    assert settled(_status("RUNNING", "FAILED"), "RUNNING")  # waiting would not change it
    assert not settled(_status("RUNNING", "RUNNING"), "PAUSED")
    assert settled(_status("PAUSED", "PAUSED"), "PAUSED")
    assert settled(_status("STOPPED"))


def test_client_refuses_a_url_without_scheme_and_masks_the_password():
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        ConnectClient("connect:8083")
    client = ConnectClient("http://connect:8083", secret="s3cret-pw")
    assert client._mask("Access denied for 'cdc' with s3cret-pw") == "Access denied for 'cdc' with ****"
