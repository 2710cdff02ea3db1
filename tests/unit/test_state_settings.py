"""Where snapsync's state lives (settings), the schema versions this release needs, and each
role's printed grants."""

from __future__ import annotations

import pytest

from snapsync.connectors.dialect import Dialect
from snapsync.connectors.grants import ROLES, grant_statements, role_grants
from snapsync.schemas.catalog import sync_datasets
from snapsync.schemas.config import load_settings, settings_env
from snapsync.schemas.errors import ConfigError
from snapsync.schemas.state import LEGACY_HOME, MIGRATIONS, SCHEMA_VERSIONS, SIGNAL_TABLES, STATE_TABLES

URL = "mysql://app:pw@db.example:3306/practice"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("SNAPSYNC_DATABASE_URL", "SNAPSYNC_KAFKA_BOOTSTRAP", "SNAPSYNC_CONFIG", "SNAPSYNC_HOME",
              "SNAPSYNC_STATE_URL", "SNAPSYNC_SIGNAL_SCHEMA"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir("/")


def _settings(**kw):
    return load_settings(None, database_url=URL, kafka_bootstrap="k:9092", home="/tmp/snapsync-unit", **kw)


def test_the_state_store_defaults_to_its_own_schema_on_the_practice_server():
    s = _settings()
    assert (s.state.host, s.state.port, s.state.user, s.state.database) == ("db.example", 3306, "app", "snapsync")
    assert s.signal_schema == "snapsync_signal"
    other = _settings(state_url="mysql://state:pw2@state.example:3307/snap")
    assert (other.state.host, other.state.user, other.state.database) == ("state.example", "state", "snap")
    env = settings_env(other)
    assert env["SNAPSYNC_STATE_URL"] == "mysql://state:pw2@state.example:3307/snap"
    assert load_settings(None, **{k[9:].lower(): v for k, v in env.items()}).state == other.state


@pytest.mark.parametrize("kw, key", [
    ({"state_url": "mysql://other@db.example:3306/practice"}, "SNAPSYNC_STATE_URL"),
    ({"signal_schema": "practice"}, "SNAPSYNC_SIGNAL_SCHEMA"),
    ({"signal_schema": "snapsync"}, "SNAPSYNC_SIGNAL_SCHEMA"),
    ({"signal_schema": "bad-name"}, "SNAPSYNC_SIGNAL_SCHEMA"),
    ({"state_url": "postgres://x/y"}, "SNAPSYNC_STATE_URL"),
])
def test_a_state_or_signal_schema_that_is_not_snapsyncs_own_is_refused(kw, key):
    with pytest.raises(ConfigError) as e:
        _settings(**kw)
    assert key in str(e.value) and "pw" not in str(e.value)


def test_the_same_schema_name_on_another_server_is_fine():
    s = _settings(state_url="mysql://app@state.example:3306/practice")
    assert s.state.database == "practice" and s.state.host == "state.example"


def test_every_table_has_one_home_and_version_one_creates_them_all():
    assert set(STATE_TABLES).isdisjoint(SIGNAL_TABLES)
    assert set(LEGACY_HOME) == set(STATE_TABLES) | set(SIGNAL_TABLES)
    assert all(name.startswith("snapsync_") for name in LEGACY_HOME)
    assert {t for m in MIGRATIONS["state"] for t in m.tables} == set(STATE_TABLES)
    assert {t for m in MIGRATIONS["signal"] for t in m.tables} == set(SIGNAL_TABLES)
    assert SCHEMA_VERSIONS == {c: len(m) for c, m in MIGRATIONS.items()}
    assert all([m.version for m in ms] == list(range(1, len(ms) + 1)) for ms in MIGRATIONS.values())


MARIA = Dialect.from_version("10.11.19-MariaDB")
MYSQL84 = Dialect.from_version("8.4.3")


def _statements(role, dialect=MARIA, optional=False):
    lines = grant_statements(role_grants(_settings(), role, dialect), "snap_" + role, "snap_" + role, "10.0.0.%")
    return [line.splitlines()[-1].removeprefix("-- ") for line in lines
            if optional or not line.splitlines()[-1].startswith("-- ")]


def test_no_runtime_role_runs_ddl_or_writes_outside_its_data():
    for role in ROLES:
        if role == "migrate":
            continue
        text = " ".join(_statements(role))
        for ddl in ("CREATE", "ALTER", "DROP", "INDEX"):
            assert ddl not in text.replace("SHOW DATABASES", ""), (role, text)
        # writes to the practice schema: only the sync role, only on the sync data sets
        practice_writes = [s for s in _statements(role) if "`practice`" in s and ("INSERT" in s or "UPDATE" in s)]
        if role == "sync":
            assert {s.split("`practice`.`")[1].split("`")[0] for s in practice_writes} == {
                ds.table for ds in sync_datasets()}
        else:
            assert practice_writes == [], role


def test_the_roles_grants_as_printed():
    assert _statements("web") == [
        "GRANT SELECT ON `practice`.* TO 'snap_web'@'10.0.0.%';",
        "GRANT SELECT ON `snapsync_signal`.`snapsync_heartbeat` TO 'snap_web'@'10.0.0.%';",
        "GRANT SELECT ON `snapsync_signal`.`snapsync_schema_version` TO 'snap_web'@'10.0.0.%';",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON `snapsync`.* TO 'snap_web'@'10.0.0.%';"]
    capture = _statements("capture")
    assert "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'snap_capture'@'10.0.0.%';" in capture
    assert ("GRANT SELECT, INSERT, UPDATE ON `snapsync_signal`.`snapsync_heartbeat` TO "
            "'snap_capture'@'10.0.0.%';") in capture
    assert not any("RELOAD" in s for s in capture)  # MariaDB's snapshot takes no lock
    assert any(s.startswith("GRANT RELOAD ON *.*") for s in _statements("capture", MYSQL84))  # MySQL's takes FTWRL
    export = _statements("export", optional=True)
    assert "GRANT FILE ON *.* TO 'snap_export'@'10.0.0.%';" in export  # optional: the same-host shortcut
    assert "GRANT FILE ON *.* TO 'snap_export'@'10.0.0.%';" not in _statements("export")
    migrate = _statements("migrate")
    assert ("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES ON `snapsync\\_signal`.* "
            "TO 'snap_migrate'@'10.0.0.%';") in migrate  # `_` escaped: a database-level grant takes wildcards
    with pytest.raises(ConfigError, match="unknown role"):
        role_grants(_settings(), "root", MARIA)
