"""The Kafka Connect client and CLI against a local HTTP server answering as the REST API does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snapsync.connectors.debezium import ConnectClient, render
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError
from tests.fake_connect import FakeConnect

BIN = str(Path(sys.executable).with_name("snapsync"))


@pytest.fixture()
def connect():
    fake = FakeConnect()
    yield fake
    fake.close()


def test_deploy_status_pause_resume_restart_delete(connect, base_settings):
    client = ConnectClient(connect.url, backoff=0.01)
    connector = render(base_settings, name="cdc")
    connect.rebalance_409s = 2  # rebalance in progress: retried, then it goes through
    client.deploy(connector)
    assert connect.connectors["cdc"]["topic.prefix"] == base_settings.topic_prefix
    assert client.status("cdc")["connector"]["state"] == "RUNNING"
    client.pause("cdc")
    assert client.status("cdc")["tasks"][0]["state"] == "PAUSED"
    client.resume("cdc")
    client.restart("cdc")
    assert ("POST", "/connectors/cdc/restart?includeTasks=true&onlyFailed=false") in connect.requests
    client.delete("cdc")
    with pytest.raises(FatalError, match="Connector cdc not found"):
        client.status("cdc")


def test_persistent_409_is_a_clear_retriable_error(connect, base_settings):
    connect.rebalance_409s = 100
    with pytest.raises(RetriableError, match="rebalancing"):
        ConnectClient(connect.url, retries=2, backoff=0.01).pause("x")


def test_unreachable_connect():
    from snapsync.local import free_port

    with pytest.raises(RetriableError, match="unreachable"):
        ConnectClient(f"http://127.0.0.1:{free_port()}", retries=0).status("x")
    with pytest.raises(ConfigError, match="http://"):
        ConnectClient("connect:8083")


def test_malformed_config_refused_with_failing_fields(connect, base_settings, tmp_path, cli_env):
    bad = render(base_settings, name="bad")
    bad["config"]["database.hostname"] = ""
    bad["config"]["database.port"] = "abc"
    with pytest.raises(ConfigError) as e:
        ConnectClient(connect.url).deploy(bad)
    assert "database.hostname" in str(e.value) and "database.port" in str(e.value)
    assert "bad" not in connect.connectors
    # the worker's own validation answer is reported field by field too
    remote = ConnectClient(connect.url).validate({"connector.class": "io.debezium.connector.mysql.MySqlConnector"})
    assert any(r.startswith("database.hostname:") for r in remote)
    # and through the CLI
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    r = subprocess.run([BIN, "connector", "validate", "--connect-url", connect.url, "--file", str(f)],
                       env=cli_env, capture_output=True, text=True)
    assert r.returncode == 2 and "invalid: database.hostname" in r.stderr and "invalid: database.port" in r.stderr


def test_cli_render_and_deploy(connect, cli_env):
    r = subprocess.run([BIN, "connector", "render", "--name", "cli"], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["decimal.handling.mode"] == "string"
    r = subprocess.run([BIN, "connector", "deploy", "--connect-url", connect.url, "--name", "cli"], env=cli_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([BIN, "connector", "status", "--connect-url", connect.url, "--name", "cli", "--json"],
                       env=cli_env, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["connector"]["state"] == "RUNNING"
