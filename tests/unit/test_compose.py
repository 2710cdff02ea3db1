"""docker-compose.yml, checked as far as it can be without a Docker engine (docs/deploy.md):
the compose-spec JSON schema, snapsync's settings and CLI, each service's login and role, the
MySQL init script, the connector config it deploys, and the images' documented variables."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml

from snapsync.cli import app as cli_app
from snapsync.connectors.debezium import check_config, render
from snapsync.connectors.grants import ROLES
from snapsync.schemas.config import Settings, load_settings
from snapsync.sinks.scheduler import delivery_root

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
#: compose-spec/compose-spec schema/compose-spec.json, vendored (tests/fixtures/README.md).
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
INIT = ROOT / "docker" / "mysql-init"

#: Variables the quay.io/debezium/connect:3.0 entrypoint reads itself (debezium/container-images,
#: connect-base/3.0/docker-entrypoint.sh and connect/3.0/README.md); any CONNECT_* variable
#: becomes a worker property.
DEBEZIUM_CONNECT_VARS = {
    "BOOTSTRAP_SERVERS", "GROUP_ID", "CONFIG_STORAGE_TOPIC", "OFFSET_STORAGE_TOPIC", "STATUS_STORAGE_TOPIC",
    "HOST_NAME", "ADVERTISED_HOST_NAME", "ADVERTISED_PORT", "REST_HOST_NAME", "REST_PORT", "KEY_CONVERTER",
    "VALUE_CONVERTER", "OFFSET_FLUSH_INTERVAL_MS", "OFFSET_FLUSH_TIMEOUT_MS", "SHUTDOWN_TIMEOUT", "HEAP_OPTS",
    "LOG_LEVEL", "ENABLE_APICURIO_CONVERTERS", "ENABLE_DEBEZIUM_KC_REST_EXTENSION", "ENABLE_DEBEZIUM_SCRIPTING",
    "ENABLE_OTEL", "ENABLE_JFR", "ENABLE_JOLOKIA", "ENABLE_JMX_EXPORTER", "JMXHOST", "JMXPORT",
}
#: The mysql image's documented variables (Docker Official Image "mysql", "Environment Variables").
MYSQL_VARS = {"MYSQL_ROOT_PASSWORD", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD",
              "MYSQL_RANDOM_ROOT_PASSWORD", "MYSQL_ONETIME_PASSWORD", "MYSQL_INITDB_SKIP_TZINFO", "MYSQL_ROOT_HOST"}
#: Connect worker properties the CONNECT_* variables may name (Kafka Connect 3.9 worker configs).
CONNECT_PROPERTIES = {
    "key.converter.schemas.enable", "value.converter.schemas.enable", "config.storage.replication.factor",
    "offset.storage.replication.factor", "status.storage.replication.factor", "offset.storage.partitions",
    "status.storage.partitions",
}
#: Kafka broker properties the KAFKA_* variables of the apache/kafka image may name (its
#: docker/examples/README.md: '.' -> '_', prefix KAFKA_).
KAFKA_PROPERTIES = {
    "node.id", "process.roles", "listeners", "advertised.listeners", "controller.listener.names",
    "listener.security.protocol.map", "controller.quorum.voters", "log.dirs", "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms", "num.partitions",
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of ``${VAR}``, ``${VAR:-default}`` and ``$$`` (the subset the file uses)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    out = _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    return out.replace("$$", "$")


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, {})  # no .env: every default applies


def services_built_here(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("build") is not None}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def long_running(compose: dict) -> dict[str, dict]:
    """Services that stay up (not one-shot, not the tools profile)."""
    return {n: s for n, s in compose["services"].items()
            if "tools" not in s.get("profiles", []) and s.get("restart") not in ("no",)
            and not str(s.get("restart", "")).startswith("on-failure")}


def test_valid_against_the_compose_spec_schema(raw):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake(raw):
    """The schema check is not vacuous: an unknown service key and a bad depends_on condition fail."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    bad = json.loads(json.dumps(raw))
    bad["services"]["worker"]["healtcheck"] = {"test": "true"}
    bad["services"]["connector-deploy"]["depends_on"]["connect"]["condition"] = "service_up"
    messages = [e.message for e in validator.iter_errors(bad)]
    assert any("healtcheck" in m for m in messages) and any("service_up" in m for m in messages)


def settings_of(service: dict):
    env = env_of(service)
    return load_settings(None, **{k.removeprefix("SNAPSYNC_").lower(): v for k, v in env.items()})


#: The role each service's login holds (docs/deploy.md): the admin tools and db-setup are root.
ROLE_OF = {"worker": "sync", "scheduler": "web", "export-worker": "export", "web": "web", "capture": "capture",
           "connector-deploy": "debezium", "snapsync": "web"}


def test_snapsync_variables_are_settings_keys_and_valid(compose):
    allowed = {f"SNAPSYNC_{k.upper()}" for k in Settings.model_fields}
    for name, service in services_built_here(compose).items():
        env = env_of(service)
        unknown = {k for k in env if k.startswith("SNAPSYNC_")} - allowed
        assert not unknown, f"{name}: {unknown} are not keys of schemas/config.py ({sorted(allowed)})"
    s = settings_of(compose["services"]["worker"])
    assert (s.db.host, s.db.port, s.db.database) == ("mysql", 3306, "practice")
    assert (s.state.host, s.state.database, s.signal_schema) == ("mysql", "snapsync", "snapsync_signal")
    assert s.kafka_bootstrap == "kafka:9092"
    assert s.db.database == env_of(compose["services"]["mysql"])["MYSQL_DATABASE"]
    # The Kafka bootstrap is the broker's advertised listener.
    assert "PLAINTEXT://" + s.kafka_bootstrap in env_of(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]


def test_each_service_connects_with_the_login_of_its_role(compose):
    """Never root but for the administrator's one-shots; each login is made by the init script
    with the password the mysql service is given, and db-setup grants it exactly its role."""
    mysql = env_of(compose["services"]["mysql"])
    script = (INIT / "01-snapsync-users.sh").read_text()
    made = re.search(r"for role in ([a-z ]+); do", script).group(1).split()
    setup = " ".join(compose["services"]["db-setup"]["command"])
    granted = dict(re.findall(r"db grants --apply --role (\w+) --user (\w+)", setup))
    assert setup.startswith("snapsync db migrate &&")
    for name, service in services_built_here(compose).items():
        if name == "snapsync-init":  # no database at all
            continue
        s = settings_of(service)
        if name in ("db-setup", "admin"):
            assert s.db.user == "root", name
            continue
        role = ROLE_OF[name]
        assert s.db.user == f"snapsync_{role}" and role in made and role in ROLES, name
        assert granted[role] == s.db.user, name
        assert s.db.password == mysql[f"SNAPSYNC_{role.upper()}_DB_PASSWORD"], name
    assert set(granted) == set(made) == set(ROLE_OF.values())


def test_deliveries_bind_mount_is_where_the_scheduler_writes(compose):
    for name in ("scheduler", "export-worker", "web"):
        service = compose["services"][name]
        home = Path(env_of(service)["SNAPSYNC_HOME"])
        s = load_settings(None, database_url="mysql://u@h/practice", kafka_bootstrap="k:9092", home=str(home))
        root = delivery_root(s, 7)
        binds = [v for v in service["volumes"] if v.startswith("./")]
        assert binds, f"{name}: no bind mount"
        host, target = binds[0].split(":")[:2]
        assert host == "./deliveries" and root.is_relative_to(Path(target)), (name, root, target)
        # the named volume holds the rest of SNAPSYNC_HOME
        assert any(v.split(":")[1] == str(home) for v in service["volumes"] if not v.startswith("./"))


def _resolve(args: list[str]):
    """(the command, its remaining arguments) for ``snapsync <args>``. Typer carries its own
    copy of click, so groups are recognised by what they do, not by click's classes."""
    root = typer.main.get_command(cli_app)
    cmd, rest = root, list(args)
    while hasattr(cmd, "list_commands"):
        name = rest.pop(0)
        sub = cmd.get_command(cmd.context_class(cmd), name)
        assert sub is not None, f"`snapsync {' '.join(args)}`: no command {name!r}"
        cmd = sub
    return cmd, rest


def test_every_snapsync_command_parses(compose):
    """Each service's command is a real snapsync command whose options parse (nothing is run)."""
    for name, service in services_built_here(compose).items():
        command = service.get("command")
        if not command or service.get("entrypoint"):
            continue
        cmd, rest = _resolve(list(command))
        cmd.make_context(cmd.name, rest)  # raises a UsageError on an unknown option or bad value


def test_the_web_app_trusts_its_proxy_and_serves_its_hosts_only(compose):
    """Issue 24: the web service names the proxy whose X-Forwarded-Proto/For it believes (else
    every client shares one sign-in throttle and cookies are never Secure) and the host names it
    answers to (else a forged Host header reaches links and redirects)."""
    cmd, rest = _resolve(list(compose["services"]["web"]["command"]))
    params = cmd.make_context(cmd.name, rest).params
    proxies = [p.strip() for p in params["forwarded_allow_ips"].split(",") if p.strip()]
    hosts = [h.strip() for h in params["allowed_hosts"].split(",") if h.strip()]
    assert proxies and "*" not in proxies, proxies
    for p in proxies:
        ipaddress.ip_network(p)  # an address or network, not a name
    assert hosts and "*" not in hosts, hosts


def test_the_command_check_catches_a_mistake():
    for args in (["worker", "--metrics-prt", "1"], ["export-worker", "--metrics-port", "x"]):
        cmd, rest = _resolve(args)
        with pytest.raises(Exception, match="metrics-prt|integer"):
            cmd.make_context(cmd.name, rest)
    with pytest.raises(AssertionError, match="schedulr"):
        _resolve(["snapshot", "schedulr"])


def test_long_running_services_have_healthchecks_and_restart_policies(compose):
    for name, service in long_running(compose).items():
        assert service.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy"
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        command = service.get("command") or []
        if service.get("build") is not None and "--metrics-port" in command:
            port = command[command.index("--metrics-port") + 1]
            test = " ".join(service["healthcheck"]["test"])
            assert f"127.0.0.1:{port}/healthz" in test, f"{name}: healthcheck not on its metrics port {port}"
            assert command[command.index("--metrics-host") + 1] == "0.0.0.0"  # Prometheus on another host


def test_one_shot_services_wait_for_what_they_need(compose):
    deploy = compose["services"]["connector-deploy"]
    assert deploy["command"][:2] == ["connector", "deploy"]
    assert deploy["depends_on"]["connect"]["condition"] == "service_healthy"
    assert deploy["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert deploy["depends_on"]["db-setup"]["condition"] == "service_completed_successfully"
    assert str(deploy["restart"]).startswith("on-failure")
    setup = compose["services"]["db-setup"]
    assert setup["depends_on"]["mysql"]["condition"] == "service_healthy" and setup["restart"] == "no"
    for name, service in services_built_here(compose).items():
        if name in ("snapsync-init", "connector-deploy", "db-setup"):
            continue
        assert service["depends_on"]["snapsync-init"]["condition"] == "service_completed_successfully", name
        # no process starts before snapsync's schemas are at this release's version
        assert service["depends_on"]["db-setup"]["condition"] == "service_completed_successfully", name
    init = compose["services"]["snapsync-init"]
    assert init["user"] == "0" and "10001:10001" in " ".join(init["entrypoint"])


def test_the_deployed_connector_config_is_valid_for_this_stack(compose):
    env = env_of(compose["services"]["connector-deploy"])
    s = load_settings(None, **{k.removeprefix("SNAPSYNC_").lower(): v for k, v in env.items()})
    config = render(s)["config"]
    assert not check_config(config)
    assert config["database.hostname"] == "mysql" and config["schema.history.internal.kafka.bootstrap.servers"] == "kafka:9092"
    # The tables the connector config names are the signal schema's, made by db-setup's migrate.
    assert f"`{s.signal_schema}`.`snapsync_heartbeat`" in config["heartbeat.action.query"]
    assert config["signal.data.collection"] == f"{s.signal_schema}.snapsync_debezium_signal"
    assert config["database.user"] == "snapsync_debezium"


def test_mysql_init_script(compose):
    mysql = compose["services"]["mysql"]
    assert mysql["image"] == "mysql:8.4"  # the LTS: snapsync asks for SHOW BINARY LOG STATUS there
    assert any(v.startswith("./docker/mysql-init:/docker-entrypoint-initdb.d") for v in mysql["volumes"])
    script = (INIT / "01-snapsync-users.sh").read_text()
    assert "CREATE USER IF NOT EXISTS 'snapsync_${role}'@'%' IDENTIFIED BY '${password}';" in script
    assert "GRANT" not in script  # the grants come from `snapsync db grants`, once the tables exist
    flags = mysql["command"]
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--log-bin=mysql-bin"):
        assert flag in flags


def test_image_variables_are_documented_ones(compose):
    connect = env_of(compose["services"]["connect"])
    for k in connect:
        if k.startswith("CONNECT_"):
            assert k.removeprefix("CONNECT_").lower().replace("_", ".") in CONNECT_PROPERTIES, k
        else:
            assert k in DEBEZIUM_CONNECT_VARS, k
    assert compose["services"]["connect"]["image"] == "quay.io/debezium/connect:3.0.7.Final"
    for k in env_of(compose["services"]["mysql"]):  # the image's, or read by docker/mysql-init's script
        assert k in MYSQL_VARS or re.fullmatch(r"SNAPSYNC_[A-Z]+_DB_PASSWORD", k), k
    for k in env_of(compose["services"]["kafka"]):
        assert k.startswith("KAFKA_") and k.removeprefix("KAFKA_").lower().replace("_", ".") in KAFKA_PROPERTIES, k


def test_pymysql_can_answer_caching_sha2_password():
    """MySQL 8's default authentication over a connection without TLS needs cryptography."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("pymysql[rsa]") for d in deps)
    import cryptography  # noqa: F401 - installed with the extra
    from pymysql import _auth

    assert _auth.sha2_rsa_encrypt(b"pw", b"0" * 20, _public_key()) != b""


def _public_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
