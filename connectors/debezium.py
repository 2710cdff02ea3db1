"""The Debezium connector for production capture: its rendered config, the database
preparation it needs (grants, heartbeat and signal tables), and its deployment through
Kafka Connect (:class:`~snapsync.connectors.kafka_connect.ConnectClient`, re-exported here).

The rendered config yields the same topics and value encodings as the embedded capture
(``schemas/events.py`` documents them): topic prefix, table include list from the
catalog (plus the heartbeat and signal tables of the signal schema), JSON converters without
schemas, decimals as strings, adaptive microsecond time precision, base64 binary, BIGINT
UNSIGNED as long, tombstones after deletes, transaction metadata, and the heartbeat action
query writing the same ``snapsync_heartbeat`` row as the embedded capture.

The connector class follows the server: Debezium's MariaDB connector for MariaDB, its MySQL
connector for MySQL (:func:`class_for_version`). ``docs/connector.md`` is the deploy guide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from snapsync.connectors.grants import DEBEZIUM_GLOBAL
from snapsync.connectors.kafka_connect import ConnectClient  # imported from here by others too
from snapsync.connectors.offsets import HEARTBEAT_TABLE, heartbeat_statement
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import DatabaseTarget, Settings
from snapsync.schemas.errors import ConfigError

MYSQL_CONNECTOR = "io.debezium.connector.mysql.MySqlConnector"
MARIADB_CONNECTOR = "io.debezium.connector.mariadb.MariaDbConnector"
#: ``--connector-class`` short names.
CONNECTOR_CLASSES = {"mysql": MYSQL_CONNECTOR, "mariadb": MARIADB_CONNECTOR}
#: The class the local worker runs (Debezium 3.0.7's MySQL connector; FIELD-NOTES).
CONNECTOR_CLASS = MYSQL_CONNECTOR
_JAVA_CLASS = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+")

SIGNAL_TABLE = "snapsync_debezium_signal"

#: Properties the rendered config must carry, with the reason a value is fixed.
REQUIRED = (
    "connector.class", "tasks.max", "database.hostname", "database.port", "database.user",
    "database.server.id", "topic.prefix", "database.include.list", "table.include.list",
    "schema.history.internal.kafka.bootstrap.servers", "schema.history.internal.kafka.topic",
    "heartbeat.interval.ms",
)
FIXED = {
    "decimal.handling.mode": "string",
    "time.precision.mode": "adaptive_time_microseconds",
    "binary.handling.mode": "base64",
    "bigint.unsigned.handling.mode": "long",
    "tombstones.on.delete": "true",
    "provide.transaction.metadata": "true",
    # The watermark reads Debezium's default heartbeat topic, __debezium-heartbeat.<prefix>.
    "topic.heartbeat.prefix": "__debezium-heartbeat",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "false",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "false",
    # Connect 3.9's JsonConverter writes a column's DEFAULT in place of a NULL unless told not to
    # (tests/integration/test_conformance.py: NULL in a column DEFAULT 'x' arrived as "x").
    "value.converter.replace.null.with.default": "false",
}

#: What Debezium's MySQL and MariaDB connectors need globally (``connectors/grants.py``).
DEBEZIUM_GRANTS = DEBEZIUM_GLOBAL
#: On the heartbeat table (``heartbeat.action.query``: INSERT ... ON DUPLICATE KEY UPDATE) and
#: the signal table (Debezium writes incremental-snapshot windows there).
TABLE_GRANTS = ("INSERT", "UPDATE")


def connector_class(choice: str) -> str:
    """The class named by ``--connector-class``: ``mysql``, ``mariadb`` or a full Java class name.

    Raises:
        ConfigError: anything else.
    """
    value = choice.strip()
    if value.lower() in CONNECTOR_CLASSES:
        return CONNECTOR_CLASSES[value.lower()]
    if _JAVA_CLASS.fullmatch(value):
        return value
    raise ConfigError(f"--connector-class {choice!r}: use mysql, mariadb, or a full Java class name "
                      f"(e.g. {MARIADB_CONNECTOR})")


def class_for_version(version: str) -> str:
    """Debezium's connector for a server's ``SELECT VERSION()``: MariaDB's own connector for
    MariaDB (its GTIDs and binlog events differ from MySQL's), the MySQL connector otherwise."""
    return MARIADB_CONNECTOR if "mariadb" in version.lower() else MYSQL_CONNECTOR


def server_version(target: DatabaseTarget) -> str:
    """``SELECT VERSION()`` of the configured server."""
    from snapsync.connectors.mysql import connect

    with connect(target, database=False) as conn:
        cur = conn.cursor()
        cur.execute("SELECT VERSION()")
        return str(cur.fetchone()[0])


#: The replica server id rendered for the connector unless ``--server-id`` says otherwise.
DEFAULT_SERVER_ID = 184054


def render(settings: Settings, *, name: str = "snapsync", server_id: int = DEFAULT_SERVER_ID,
           snapshot_mode: str = "initial", heartbeat_ms: int = 1000, partitions: int = 3,
           connector_class: str = CONNECTOR_CLASS) -> dict[str, Any]:
    """The connector as ``{"name": ..., "config": {...}}`` for ``PUT /connectors/{name}/config``
    (``name`` is inside the config too: Connect's validation requires it there)."""
    db, signal = settings.db, settings.signal_schema
    # The signal table must be captured too: Debezium reads signals from the binlog.
    tables = [f"{db.database}.{d.table}" for d in DATASETS] + [
        f"{signal}.{HEARTBEAT_TABLE}", f"{signal}.{SIGNAL_TABLE}"]
    config = {
        "name": name,
        "connector.class": connector_class,
        "tasks.max": "1",
        "database.hostname": db.host,
        "database.port": str(db.port),
        "database.user": db.user,
        "database.password": db.password,
        "database.server.id": str(server_id),
        "topic.prefix": settings.topic_prefix,
        "database.include.list": f"{db.database},{signal}",
        # Anchored regular expressions, as Debezium matches them against db.table.
        "table.include.list": ",".join(t.replace(".", "\\.") for t in tables),
        "snapshot.mode": snapshot_mode,
        "snapshot.locking.mode": "minimal",
        "include.schema.changes": "false",
        "schema.history.internal.kafka.bootstrap.servers": settings.kafka_bootstrap,
        "schema.history.internal.kafka.topic": f"schemahistory.{settings.topic_prefix}",
        "heartbeat.interval.ms": str(heartbeat_ms),
        # The same row the embedded capture writes, by the same statement.
        "heartbeat.action.query": heartbeat_statement(signal, f"'{name}'"),
        "signal.data.collection": f"{signal}.{SIGNAL_TABLE}",
        "incremental.snapshot.chunk.size": "10000",
        "topic.creation.default.partitions": str(partitions),
        "topic.creation.default.replication.factor": "-1",
        "event.processing.failure.handling.mode": "fail",
        **FIXED,
    }
    return {"name": name, "config": config}


def check_config(config: dict[str, Any]) -> list[str]:
    """Local validation before anything is sent: one message per failing field.

    Any connector class is accepted (the worker says whether it has it); the encodings the
    pipeline relies on (:data:`FIXED`) are not negotiable.
    """
    problems = []
    for key in REQUIRED:
        if str(config.get(key, "")).strip() == "":
            problems.append(f"{key}: missing (required)")
    cls = str(config.get("connector.class", "")).strip()
    if cls and not _JAVA_CLASS.fullmatch(cls):
        problems.append(f"connector.class: {cls!r} is not a Java class name (e.g. {MARIADB_CONNECTOR})")
    for key in ("database.port", "database.server.id", "tasks.max", "heartbeat.interval.ms"):
        value = str(config.get(key, ""))
        if value and not (value.isdigit() and int(value) > 0):
            problems.append(f"{key}: {value!r} is not a positive integer")
    if str(config.get("tasks.max", "1")) not in ("", "1"):
        problems.append("tasks.max: the MySQL and MariaDB connectors run exactly one task; use 1")
    for key, value in FIXED.items():
        if key in config and str(config[key]) != value:
            problems.append(f"{key}: must be {value!r} so events match the embedded capture's encoding")
    return problems


# --- the database side ---------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` found: the server, and the signal schema holding the heartbeat and
    signal tables (created by ``snapsync db migrate``)."""

    server: str  #: host:port and version
    schema: str


def _target(config: dict[str, Any]) -> tuple[DatabaseTarget, str]:
    """The connector's own database login (the grants checked are the ones Debezium will have),
    and the signal schema holding the heartbeat and signal tables."""
    signal = str(config.get("signal.data.collection") or "")
    schema = signal.split(".")[0] if "." in signal else ""
    practice = str(config.get("database.include.list", "")).split(",")[0].strip()
    port = str(config.get("database.port") or "3306")
    if not schema.strip() or not practice or not port.isdigit():
        raise ConfigError("the connector config names no database (database.include.list), no signal table "
                          "(signal.data.collection) or no valid database.port: render it with `snapsync connector "
                          "render`")
    return DatabaseTarget(str(config.get("database.hostname", "")), int(port), str(config.get("database.user", "")),
                          str(config.get("database.password", "")), practice), schema.strip()


def grant_statements(user: str, database: str, missing_global: list[str],
                     missing_tables: dict[str, list[str]]) -> list[str]:
    """The GRANT statements that give what is missing (``user`` as ``CURRENT_USER()`` prints it;
    ``database``: the schema of the tables)."""
    name, _, host = user.rpartition("@")
    who = f"'{name or user}'@'{host or '%'}'"
    out = []
    if missing_global:
        privs = ", ".join(p.split(" (")[0] for p in missing_global)
        out.append(f"GRANT {privs} ON *.* TO {who};")
    for table, privs in missing_tables.items():
        out.append(f"GRANT {', '.join(privs)} ON `{database}`.`{table}` TO {who};")
    return out


def prepare(config: dict[str, Any]) -> Prepared:
    """Check that the source database is ready for the connector, as the connector's user:
    binary logging (ROW, FULL row image), every grant Debezium needs (:data:`DEBEZIUM_GRANTS`
    globally, :data:`TABLE_GRANTS` on the heartbeat and signal tables), and those two tables
    (made by ``snapsync db migrate``; this never runs DDL). Idempotent.

    Raises:
        ConfigError: a server setting, grant or table is missing; the message gives the fix
            (the GRANT statements to run, or the migration).
        RetriableError: the database did not answer.
    """
    from snapsync.connectors.mysql import connect, missing_grants

    target, schema = _target(config)
    signal_table = str(config.get("signal.data.collection")).split(".", 1)[1] or SIGNAL_TABLE
    tables = (HEARTBEAT_TABLE, signal_table)
    with connect(target) as conn:
        cur = conn.cursor()
        cur.execute("SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image, CURRENT_USER()")
        version, log_bin, fmt, image, user = cur.fetchone()
        server = f"{target.host}:{target.port}"
        wrong = []
        if not int(log_bin):
            wrong.append("binary logging is off (start the server with --log-bin)")
        if str(fmt).upper() != "ROW":
            wrong.append(f"binlog_format is {fmt} (SET GLOBAL binlog_format = 'ROW', and in the server's config)")
        if str(image).upper() != "FULL":
            wrong.append(f"binlog_row_image is {image} (SET GLOBAL binlog_row_image = 'FULL', and in the config)")
        if wrong:
            raise ConfigError(f"the database server {server} is not ready for Debezium: " + "; ".join(wrong))
        missing_global = missing_grants(conn, target.database, DEBEZIUM_GRANTS)
        missing_tables = {}
        for table in tables:
            lacking = missing_grants(conn, schema, TABLE_GRANTS, table=table)
            if lacking:
                missing_tables[table] = lacking
        if missing_global or missing_tables:
            lacks = [*missing_global, *(f"{', '.join(p)} on {t}" for t, p in missing_tables.items())]
            raise ConfigError(
                f"the database user {str(user).rpartition('@')[0]!r} on {server} lacks what Debezium needs: "
                f"{'; '.join(lacks)}. As an administrator, run: "
                + " ".join(grant_statements(str(user), schema, missing_global, missing_tables)))
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
        existing = {r[0] for r in cur.fetchall()}
        absent = [t for t in tables if t not in existing]
        if absent:
            raise ConfigError(f"the signal schema `{schema}` on {server} has no {', '.join(absent)}: run "
                              "`snapsync db migrate` once (as the migrate role) before deploying the connector")
        conn.commit()
    return Prepared(f"{server}, {version}", schema)


def deploy(client: ConnectClient, connector: dict[str, Any], *, prepare_database: bool = True,
           wait: float = 0.0) -> tuple[bool, dict[str, Any] | None]:
    """Check the config here, have the worker validate it, prepare the database, then create or
    update the connector; with ``wait``, wait that long for it to run.

    Returns:
        (created, status): whether the connector is new, and its status when waited for.

    Raises:
        ConfigError: the config is refused (every failing field named) or the database is not ready.
    """
    name, config = connector.get("name") or connector["config"].get("name"), connector["config"]
    if not name:
        raise ConfigError("the connector has no name: give --name, or a file with {\"name\": ..., \"config\": ...}")
    problems = check_config(config)
    if problems:
        raise ConfigError("the connector config is invalid:\n  - " + "\n  - ".join(problems))
    remote = client.validate(config, name)
    if remote:
        raise ConfigError("Kafka Connect rejected the connector config:\n  - " + "\n  - ".join(remote))
    if prepare_database:
        prepare(config)
    created = client.put_config(name, config)
    return created, (client.wait_status(name, wait, "RUNNING") if wait > 0 else None)
