"""The least privileges of each process (``snapsync db grants --role R``, ``db check --role R``).

A role is what one kind of process needs, on the source server (practice schema, signal
schema, global privileges) and on the state store's server:

========== ==================================================================================
migrate    ``snapsync db migrate``: creates and upgrades snapsync's own schemas (and, once,
           moves the tables of an earlier release out of the practice schema)
capture    the embedded capture: reads the binlog as a replica, snapshots the practice
           tables, writes its heartbeat row; its position in the state store
debezium   the Debezium connector's login (Kafka Connect): what Debezium documents, plus its
           heartbeat and signal tables
export     export workers, ``snapshot export``, a scheduler that exports itself: reads the
           practice tables in a consistent snapshot, the binlog's end and writes the
           watermark probe; deliveries, claims and incremental state in the state store
sync       the stream worker: Data Sync's applier (and initial copies, undo) writes the sync
           data sets only, its marks in the signal schema; the deltas stage in the state store
web        the web app, a scheduler that publishes jobs, ``status``, ``audit``, ``snapshot
           show``, users: the state store and ``SELECT`` on the practice schema
========== ==================================================================================

Every runtime role gets ``SELECT, INSERT, UPDATE, DELETE`` on the whole state store: it
holds nothing of the practice's, and the separation that protects the billing data is on the
practice schema and the server. No role but ``migrate`` runs DDL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from snapsync.connectors.dialect import Dialect
from snapsync.schemas.catalog import sync_datasets
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError

Role = Literal["migrate", "capture", "debezium", "export", "sync", "web"]
ROLES: tuple[str, ...] = get_args(Role)
Server = Literal["source", "state"]

_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
_DDL = ("CREATE", "ALTER", "INDEX", "DROP", "REFERENCES")
#: What Debezium's MySQL and MariaDB connectors need globally (Debezium's documentation): the
#: snapshot reads and lock, the database list, the binlog as a replica and its position.
DEBEZIUM_GLOBAL = ("SELECT", "RELOAD", "SHOW DATABASES", "REPLICATION SLAVE", "REPLICATION CLIENT")


@dataclass(frozen=True)
class Grant:
    """Privileges on one scope (``*.*``, ``db.*`` or ``db.table``) of one server, and why."""

    server: Server
    privileges: tuple[str, ...]
    scope: str
    why: str
    optional: bool = False  #: printed as a comment: needed only in the case ``why`` names

    def statement(self, who: str) -> str:
        db, _, table = self.scope.partition(".")
        if db == "*":
            on = "*.*"
        elif table == "*":  # a database-level grant: `_` would be a wildcard there
            on = "`" + db.replace("_", "\\_") + "`.*"
        else:
            on = f"`{db}`.`{table}`"
        return f"GRANT {', '.join(self.privileges)} ON {on} TO {who};"


def role_grants(settings: Settings, role: str, dialect: Dialect) -> list[Grant]:
    """Every grant ``role`` needs (see the module docstring).

    Raises:
        ConfigError: an unknown role.
    """
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    practice, signal, state = settings.db.database, settings.signal_schema, settings.state.database
    binlog = ("REPLICATION SLAVE", "REPLICATION CLIENT")  # MariaDB 10.5+ takes both as its new names
    heartbeat = f"{signal}.snapsync_heartbeat"
    signal_version = Grant("source", ("SELECT",), f"{signal}.snapsync_schema_version",
                           "check the signal schema's version")
    state_dml = Grant("state", _DML, f"{state}.*", "snapsync's own state (settings, audit, deliveries, ...)")
    read_practice = Grant("source", ("SELECT",), f"{practice}.*", "read the practice data")
    snapshot = ([Grant("source", dialect.snapshot_privileges, "*.*",
                       f"the consistent snapshot's instant of global read lock ({dialect.name})")]
                if dialect.snapshot_privileges else [])
    if role == "migrate":
        return [Grant("state", (*_DML, *_DDL), f"{state}.*", "create and upgrade the state store"),
                Grant("source", (*_DML, *_DDL), f"{signal}.*", "create and upgrade the signal schema"),
                Grant("source", ("SELECT",), f"{practice}.*", "see tables of an earlier release in the practice schema"),
                Grant("source", ("ALTER", "DROP"), f"{practice}.*", "move the tables of an earlier release out of "
                      "the practice schema (once, when upgrading from 0.1)", optional=True)]
    if role == "capture":
        return [Grant("source", binlog, "*.*", "read the binlog as a replica and list its files"), *snapshot,
                read_practice, Grant("source", ("SELECT", "INSERT", "UPDATE"), heartbeat, "write its heartbeat row"),
                signal_version, state_dml]
    if role == "debezium":
        return [Grant("source", DEBEZIUM_GLOBAL, "*.*",
                      "what Debezium's connector needs (its documentation)"),
                Grant("source", ("INSERT", "UPDATE"), heartbeat, "heartbeat.action.query"),
                Grant("source", ("INSERT", "UPDATE"), f"{signal}.snapsync_debezium_signal",
                      "incremental-snapshot windows in the signal table")]
    if role == "export":
        return [read_practice, *snapshot,
                Grant("source", ("REPLICATION CLIENT",), "*.*",
                      "the binlog's end (watermark, snapshot GTID)"),
                Grant("source", ("SELECT", "INSERT", "UPDATE"), heartbeat, "the incremental watermark's probe row"),
                signal_version, state_dml,
                Grant("source", ("FILE",), "*.*", "only when the server shares the exporter's disk: it writes the "
                      "rows itself (the same-host shortcut)", optional=True)]
    if role == "sync":
        tables = sorted({ds.table for ds in sync_datasets()})
        return [read_practice,
                *(Grant("source", ("INSERT", "UPDATE", "DELETE"), f"{practice}.{t}",
                        "Data Sync writes (DELETE: undo removes the items an application created)") for t in tables),
                Grant("source", _DML, f"{signal}.*", "Data Sync's applied and echo marks, before-images, audit outbox"),
                state_dml]
    return [read_practice, Grant("source", ("SELECT",), heartbeat, "status: when the capture last wrote its "
                                 "heartbeat"), signal_version, state_dml]


def grant_statements(grants: list[Grant], source_user: str, state_user: str, host: str = "%") -> list[str]:
    """The GRANT statements (optional ones as comments), each to the login of its server."""
    lines = []
    for g in grants:
        who = f"'{source_user if g.server == 'source' else state_user}'@'{host}'"
        text = g.statement(who)
        lines.append(f"-- {g.why}:\n-- {text}" if g.optional else f"-- {g.why}\n{text}")
    return lines


def apply_grants(settings: Settings, grants: list[Grant], source_user: str, state_user: str,
                 host: str = "%") -> tuple[list[str], list[tuple[str, str]]]:
    """Run the (non-optional) statements as the configured logins, each on its server: the
    statements run, and those skipped with why (a table-level grant on a table that does not
    exist yet: MySQL refuses those).

    Raises:
        ConfigError: the login may not grant (it needs GRANT OPTION: an administrator's).
    """
    import pymysql

    from snapsync.connectors.mysql import connect

    done, skipped = [], []
    targets = {"source": settings.db, "state": settings.state}
    for server in ("source", "state"):
        mine = [g for g in grants if g.server == server and not g.optional]
        if not mine:
            continue
        with connect(targets[server], database=False, autocommit=True) as conn:
            for g in mine:
                statement = g.statement(f"'{source_user if server == 'source' else state_user}'@'{host}'")
                try:
                    conn.cursor().execute(statement.rstrip(";"))
                    done.append(statement)
                except pymysql.err.ProgrammingError as exc:
                    if exc.args and exc.args[0] == 1146:
                        skipped.append((statement, "the table does not exist yet"))
                        continue
                    raise
                except pymysql.err.OperationalError as exc:
                    if exc.args and exc.args[0] in (1044, 1045, 1142, 1227, 1410):
                        raise ConfigError(f"the login {targets[server].user!r} may not grant (MySQL error "
                                          f"{exc.args[0]}): run `snapsync db grants --apply` as an administrator, or "
                                          "run the printed statements as one") from None
                    raise
    return done, skipped


def missing_for(settings: Settings, role: str) -> tuple[list[Grant], list[str]]:
    """The grants of ``role`` the configured logins lack (each server read with its own
    login: ``database_url``'s and ``state_url``'s), and notes (a login whose grants come
    through roles cannot be read).

    Raises:
        RetriableError / ConfigError: a server is unreachable or refuses the login.
    """
    from snapsync.connectors.mysql import connect, held_privileges, lacks

    with connect(settings.db, database=False) as conn:
        dialect = Dialect.of(conn)
        held = {"source": held_privileges(conn)}
    with connect(settings.state, database=False) as conn:
        held["state"] = held_privileges(conn)
    notes = [f"the {server} login's grants come through roles: not checked" for server, h in held.items() if h is None]
    missing = []
    for g in role_grants(settings, role, dialect):
        h = held[g.server]
        if g.optional or h is None:
            continue
        lacking = tuple(p for p in g.privileges if lacks(h, p, g.scope))
        if lacking:
            missing.append(Grant(g.server, lacking, g.scope, g.why))
    return missing, notes


def check_role(settings: Settings, role: str) -> None:
    """Raises ConfigError naming every grant of ``role`` the logins lack, with the statements."""
    missing, _notes = missing_for(settings, role)
    if missing:
        what = "; ".join(f"{', '.join(g.privileges)} on {g.scope} ({g.why})" for g in missing)
        statements = " ".join(line.splitlines()[-1] for line in
                              grant_statements(missing, settings.db.user, settings.state.user))
        raise ConfigError(f"the database login lacks what the {role} role needs: {what}. As an administrator, run: "
                          f"{statements} (`snapsync db grants --role {role}` prints them all)")
