"""Session fixtures: the real local MariaDB (binlog on), Tansu broker and Kafka Connect worker
(with the real Debezium connector) on free ports.

No mocks: every integration test talks to these two real servers. They are started
once per test session in a temporary folder and stopped at the end.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from snapsync.local import MariaDB, Tansu, free_port, stop_pid
from snapsync.schemas.config import Settings, load_settings

_counter = itertools.count()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(f"/{d}/" in str(item.fspath) for d in ("integration", "hostile", "web", "ops", "production")):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def no_gpg_agent_left(tmp_path_factory):
    """gpg starts an agent per home it signs or decrypts in (receivers' keyrings in the tests);
    none outlives the session."""
    yield
    import subprocess

    from snapsync.connectors.crypto import _sweep

    subprocess.run(["pkill", "-f", f"gpg-agent --homedir {tmp_path_factory.getbasetemp()}"], capture_output=True)
    _sweep()  # the signing homes of the processes the tests stopped (web apps, export workers)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def mariadb(stack_dir: Path):
    server = MariaDB(stack_dir / "mariadb" / "data", free_port())
    server.start()
    yield server
    try:
        left = snapsync_tables_in_practice_schemas(server)
    finally:
        stop_pid(server.pid or 0, grace=30)
    # After the whole run: no practice schema holds a table of snapsync's (issue 19).
    assert left == [], f"snapsync tables left in practice schemas: {left[:10]}"


def snapsync_tables_in_practice_schemas(server: MariaDB) -> list[str]:
    """``schema.table`` of every ``snapsync_*`` table outside snapsync's own schemas."""
    import pymysql

    with pymysql.connect(host="127.0.0.1", port=server.port, user="root") as conn:
        cur = conn.cursor()
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_NAME LIKE 'snapsync\\_%%'")
        return [f"{s}.{t}" for s, t in cur.fetchall()
                if not (s in ("snapsync", "snapsync_signal") or s.endswith(("_state", "_signal")))]


@pytest.fixture(scope="session")
def broker(stack_dir: Path):
    b = Tansu(stack_dir, free_port())
    b.start()
    yield b
    stop_pid(b.pid or 0)


@pytest.fixture(scope="session")
def connect(broker: Tansu, stack_dir: Path):
    """A real Kafka Connect worker with the Debezium MySQL connector, on the session's broker
    (started only when a test asks for it; about 4 s)."""
    from snapsync.connect_worker import ConnectWorker

    worker = ConnectWorker(stack_dir / "connect", free_port(), broker.bootstrap)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def base_settings(mariadb: MariaDB, broker: Tansu, stack_dir: Path) -> Settings:
    s = load_settings(None, database_url=mariadb.url, kafka_bootstrap=broker.bootstrap,
                      home=str(stack_dir / "home"))
    new_database(s)
    return s


def settings_for(base: Settings, database: str, **extra) -> Settings:
    """The same servers, another practice database (each test gets its own), with its own state
    store (``<database>_state``) and signal schema (``<database>_signal``) beside it."""
    url = f"mysql://root@{base.db.host}:{base.db.port}/{database}"
    extra.setdefault("state_url", f"mysql://root@{base.db.host}:{base.db.port}/{database[:56]}_state")
    extra.setdefault("signal_schema", f"{database[:56]}_signal")
    extra.setdefault("home", str(base.home))
    return load_settings(None, database_url=url, kafka_bootstrap=base.kafka_bootstrap, **extra)


def new_database(s: Settings) -> Settings:
    """The practice database of ``s`` created when missing, and snapsync's schemas migrated (as
    root: ``snapsync db migrate``)."""
    from snapsync.connectors.mysql import ensure_database
    from snapsync.control.migrate import migrate

    ensure_database(s.db)
    migrate(s)
    return s


@pytest.fixture()
def fresh_db(base_settings: Settings, request) -> Settings:
    """A new, empty database on the session's MariaDB, named after the test (snapsync's schemas
    migrated beside it)."""
    name = "t{}_{}".format(next(_counter), "".join(c for c in request.node.name if c.isalnum())[:40])
    return new_database(settings_for(base_settings, name))


@pytest.fixture()
def seeded_db(fresh_db: Settings) -> Settings:
    """A database seeded with 3 customers at tiny scale (deterministic)."""
    from snapsync.connectors.mysql import connect
    from snapsync.seed import seed

    with connect(fresh_db.db) as conn:
        seed(conn, customers=3, scale=0.005, seed_value=7)
    return fresh_db


@pytest.fixture()
def cli_env(base_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Environment for running the ``snapsync`` console script as a user would."""
    return env_for(base_settings, SNAPSYNC_HOME=str(tmp_path / "home"))


def db_env(s: Settings) -> dict[str, str]:
    """The environment variables that name the databases of ``s``: its practice database, state
    store and signal schema."""
    env = {"SNAPSYNC_DATABASE_URL": s.database_url.get_secret_value(), "SNAPSYNC_SIGNAL_SCHEMA": s.signal_schema}
    if s.state_url is not None:
        env["SNAPSYNC_STATE_URL"] = s.state_url.get_secret_value()
    return env


def env_for(s: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without its SNAPSYNC_* variables, plus those of ``s`` (and
    ``extra``): what a child ``snapsync`` process needs to use the same settings."""
    from snapsync.schemas.config import settings_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_") or k == "SNAPSYNC_DEBUG"}
    env.update(settings_env(s))
    env.update(extra)
    return env


def qs(s: Settings, sql: str, args=()) -> tuple:
    """Run one statement on the state store of ``s`` (autocommit); its rows."""
    from snapsync.connectors.mysql import connect

    with connect(s.state, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall()


def sig(s: Settings, table: str) -> str:
    """A table of the signal schema of ``s``, for SQL on the practice database's server."""
    return f"`{s.signal_schema}`.`{table}`"
