"""The rendered Debezium config against the documented property names and our encodings."""

from snapsync.connectors.debezium import FIXED, check_config, render
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import load_settings

# Property names from the Debezium 2.x MySQL connector and Kafka Connect documentation.
DOCUMENTED = {
    "connector.class", "tasks.max", "database.hostname", "database.port", "database.user", "database.password",
    "database.server.id", "topic.prefix", "database.include.list", "table.include.list", "snapshot.mode",
    "snapshot.locking.mode", "include.schema.changes", "schema.history.internal.kafka.bootstrap.servers",
    "schema.history.internal.kafka.topic", "heartbeat.interval.ms", "topic.heartbeat.prefix",
    "heartbeat.action.query", "signal.data.collection", "incremental.snapshot.chunk.size",
    "topic.creation.default.partitions", "topic.creation.default.replication.factor",
    "event.processing.failure.handling.mode", "decimal.handling.mode", "time.precision.mode",
    "binary.handling.mode", "bigint.unsigned.handling.mode", "tombstones.on.delete", "provide.transaction.metadata",
    "key.converter", "key.converter.schemas.enable", "value.converter", "value.converter.schemas.enable",
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
    assert cfg["topic.prefix"] == "practice" and cfg["database.include.list"] == "practice"
    tables = cfg["table.include.list"].split(",")
    assert len(tables) == len(DATASETS) + 2
    assert "practice\\.patient" in tables and "practice\\.snapsync_heartbeat" in tables
    assert "snapsync_heartbeat" in cfg["heartbeat.action.query"]
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
