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
        if any(f"/{d}/" in str(item.fspath) for d in ("integration", "hostile", "web", "ops")):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def mariadb(stack_dir: Path):
    server = MariaDB(stack_dir / "mariadb" / "data", free_port())
    server.start()
    yield server
    stop_pid(server.pid or 0, grace=30)


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
    return load_settings(None, database_url=mariadb.url, kafka_bootstrap=broker.bootstrap,
                         home=str(stack_dir / "home"))


def settings_for(base: Settings, database: str, **extra) -> Settings:
    """The same servers, another database name (each test gets its own)."""
    url = f"mysql://root@{base.db.host}:{base.db.port}/{database}"
    return load_settings(None, database_url=url, kafka_bootstrap=base.kafka_bootstrap,
                         home=str(base.home), **extra)


@pytest.fixture()
def fresh_db(base_settings: Settings, request) -> Settings:
    """A new, empty database on the session's MariaDB, named after the test."""
    from snapsync.connectors.mysql import ensure_database

    name = "t{}_{}".format(next(_counter), "".join(c for c in request.node.name if c.isalnum())[:40])
    s = settings_for(base_settings, name)
    ensure_database(s.db)
    return s


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env.update(SNAPSYNC_DATABASE_URL=base_settings.database_url.get_secret_value(),
               SNAPSYNC_KAFKA_BOOTSTRAP=base_settings.kafka_bootstrap,
               SNAPSYNC_HOME=str(tmp_path / "home"))
    return env
