"""`snapsync demo --debezium`: the demo's flow with capture by Debezium on a local Kafka Connect
worker (its own local stack in a temporary folder, on free ports)."""

from __future__ import annotations

from snapsync.connectors.kafka_connect import ConnectClient
from snapsync.demo import run_demo
from snapsync.local import LocalStack


def test_demo_with_debezium_capture(tmp_path):
    home = tmp_path / "home"
    said: list[str] = []
    try:
        summary = run_demo(home, said.append, debezium=True)
        assert summary["captured"] == summary["rows"] + 3  # the snapshot, then the 3 streamed edits
        assert ConnectClient(summary["connect_url"]).status(summary["connector"])["connector"]["state"] == "RUNNING"
        assert summary["synced_code"]  # Data Sync went through Debezium's events
        assert any(line.startswith("3. Debezium (connector ") for line in said), said
    finally:
        LocalStack(home).down()
