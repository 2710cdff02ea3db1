"""`snapsync connector`: the Debezium connector on Kafka Connect (production capture).

``docs/connector.md`` is the deploy guide: prepare, render, validate, deploy, status, and
the retries and waits of every command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, err, home_dir, out, settings
from snapsync.schemas.errors import ConfigError

if TYPE_CHECKING:
    from snapsync.connectors.kafka_connect import ConnectClient

app = typer.Typer(help="The Debezium connector on Kafka Connect (production capture; docs/connector.md).",
                  no_args_is_help=True)

ConnectUrl = Annotated[Optional[str], typer.Option(
    "--connect-url", envvar="SNAPSYNC_CONNECT_URL", show_envvar=True,
    help="Kafka Connect REST URL, e.g. http://connect:8083 (default: the worker of `snapsync local up --connect`).")]
NameOpt = Annotated[str, typer.Option("--name", envvar="SNAPSYNC_CONNECTOR", show_envvar=True,
                                      help="Connector name (unique on the Connect cluster).")]
ServerIdOpt = Annotated[Optional[int], typer.Option("--server-id", min=1, max=4294967295,
                                                    help="database.server.id: unique among the server's replicas "
                                                    "(default 184054, connectors/debezium.py DEFAULT_SERVER_ID).")]
ClassOpt = Annotated[Optional[str], typer.Option(
    "--connector-class",
    help="mysql, mariadb or a full class name (default: chosen from the server's SELECT VERSION(): "
         "MariaDB -> Debezium's MariaDbConnector, MySQL -> MySqlConnector).")]
SnapshotOpt = Annotated[str, typer.Option("--snapshot-mode", help="Debezium snapshot.mode.")]
FileOpt = Annotated[Optional[Path], typer.Option(
    "--file", exists=True, dir_okay=False,
    help="A connector JSON ({name, config} or a bare config) instead of the rendered one.")]
RetriesOpt = Annotated[int, typer.Option(
    "--retries", min=0, max=30,
    help="Retries of a request that failed to connect or got 409 (rebalance) / 5xx, with back-off.")]
SkipPrepareOpt = Annotated[bool, typer.Option(
    "--skip-prepare", help="Do not check binlog settings, grants and the heartbeat and signal tables (when the database "
    "is not reachable from here, or a DBA prepared it).")]


def WaitOpt(what: str):  # an option type, named like the others
    return Annotated[float, typer.Option("--wait", min=0, metavar="SECONDS",
                                         help=f"Wait up to SECONDS for {what} (0: do not wait).")]


def _client(connect_url: str | None, retries: int, config: Path | None, secret: str | None = None) -> ConnectClient:
    """The client for ``--connect-url`` (or ``SNAPSYNC_CONNECT_URL``), else the config file's
    ``connect_url``, else the local stack's worker."""
    from snapsync.connectors.kafka_connect import ConnectClient
    from snapsync.local import LocalStack

    from snapsync.schemas.config import configured_values

    url = connect_url or configured_values(config).get("connect_url")  # the config file's connect_url
    if not url:
        st = LocalStack(home_dir(config)).state()
        url = st.connect_url if st is not None else None
        if not url:
            raise ConfigError("no Kafka Connect URL: give --connect-url (or SNAPSYNC_CONNECT_URL), or start a local "
                              "worker with `snapsync local up --connect`")
    return ConnectClient(url, retries=retries, secret=secret)


def _connector_class(choice: str | None, config: Path | None) -> str:
    from snapsync.connectors.debezium import class_for_version, connector_class, server_version

    if choice:
        return connector_class(choice)
    version = server_version(settings(config).db)
    cls = class_for_version(version)
    err.print(f"connector class {cls} (the server says VERSION() = {version}; --connector-class overrides)",
              highlight=False, soft_wrap=True)
    return cls


def _connector(file: Path | None, config: Path | None, name: str, server_id: int | None, snapshot_mode: str,
               choice: str | None) -> dict[str, Any]:
    """The connector from ``--file`` ({name, config} or a bare config), else the rendered one."""
    from snapsync.connectors.debezium import DEFAULT_SERVER_ID, render

    if file is None:
        return render(settings(config), name=name, server_id=server_id or DEFAULT_SERVER_ID,
                      snapshot_mode=snapshot_mode, connector_class=_connector_class(choice, config))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {file} is not JSON ({type(exc).__name__}): give the output of "
                          "`snapsync connector render`") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", data), dict):
        raise ConfigError(f"--file {file}: expected {{\"name\": ..., \"config\": {{...}}}} or a bare config object")
    cfg = dict(data.get("config", data))
    if choice:
        cfg["connector.class"] = _connector_class(choice, config)
    return {"name": data.get("name") or cfg.get("name") or name, "config": cfg}


def _say(text: str) -> None:
    out.print(text, highlight=False, soft_wrap=True)


def _print_status(name: str, st: dict[str, Any], as_json: bool) -> None:
    """The states; a failed task's trace is reduced to its exception class (a message may quote
    row values; the worker's log and REST API have the full trace)."""
    tasks = [{"id": t.get("id"), "state": t.get("state"), "worker_id": t.get("worker_id"),
              **({"error": t["trace"].split(":", 1)[0].split("\n")[0]} if t.get("trace") else {})}
             for t in st.get("tasks", [])]
    conn = st.get("connector", {})
    if as_json:
        print(json.dumps({"name": name, "state": conn.get("state"), "worker_id": conn.get("worker_id"),
                          "tasks": tasks, "type": st.get("type")}))
        return
    _say(f"{name}: {conn.get('state')}" + ("" if tasks else " (no task assigned yet)"))
    for t in tasks:
        _say(f"  task {t['id']}: {t['state']} on {t['worker_id']}" +
                  (f" ({t['error']}: see the Connect worker's log)" if "error" in t else ""))


def _exit_unless(st: dict[str, Any], want: str) -> None:
    from snapsync.connectors.kafka_connect import states

    if any(s != want for s in states(st)) or len(states(st)) < 2:
        raise typer.Exit(1)


@app.command("render")
def connector_render(
    name: NameOpt = "snapsync",
    server_id: ServerIdOpt = None,
    snapshot_mode: SnapshotOpt = "initial",
    connector_class: ClassOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the connector config ({name, config}) that yields the embedded capture's topics and
    encodings. It holds the database password: keep the output private."""
    print(json.dumps(_connector(None, config, name, server_id, snapshot_mode, connector_class), indent=2))


@app.command("prepare")
def connector_prepare(
    file: FileOpt = None,
    name: NameOpt = "snapsync",
    config: ConfigOpt = None,
) -> None:
    """Check the connector user's grants, the binlog settings and the heartbeat and signal tables
    (made by `snapsync db migrate`); deploy does this too, unless --skip-prepare."""
    from snapsync.connectors.debezium import MYSQL_CONNECTOR, prepare

    # The class does not matter here: no need to ask the server for it.
    connector = _connector(file, config, name, None, "initial", None if file else MYSQL_CONNECTOR)
    done = prepare(connector["config"])
    made = f"heartbeat and signal tables ready in `{done.schema}`"
    _say(f"database ready for Debezium ({done.server}): grants and binlog settings OK; {made}")


@app.command("validate")
def connector_validate(
    connect_url: ConnectUrl = None,
    file: FileOpt = None,
    name: NameOpt = "snapsync",
    connector_class: ClassOpt = None,
    retries: RetriesOpt = 6,
    config: ConfigOpt = None,
) -> None:
    """Validate a connector config here and on the Connect worker; print each failing field (exit 2)."""
    from snapsync.connectors.debezium import check_config

    connector = _connector(file, config, name, None, "initial", connector_class)
    cfg = connector["config"]
    problems = check_config(cfg) or _client(connect_url, retries, config, cfg.get("database.password")).validate(
        cfg, connector["name"])
    if problems:
        for p in problems:
            err.print(f"invalid: {p}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    _say(f"connector config is valid ({cfg.get('connector.class')})")


@app.command("deploy")
def connector_deploy(
    connect_url: ConnectUrl = None,
    file: FileOpt = None,
    name: NameOpt = "snapsync",
    server_id: ServerIdOpt = None,
    snapshot_mode: SnapshotOpt = "initial",
    connector_class: ClassOpt = None,
    skip_prepare: SkipPrepareOpt = False,
    wait: WaitOpt("the connector and its task to be RUNNING") = 60.0,
    retries: RetriesOpt = 6,
    config: ConfigOpt = None,
) -> None:
    """Prepare the database, validate, then create or update the connector and wait until it runs
    (exit 1 when it is not RUNNING by then)."""
    from snapsync.connectors.debezium import deploy

    connector = _connector(file, config, name, server_id, snapshot_mode, connector_class)
    client = _client(connect_url, retries, config, connector["config"].get("database.password"))
    created, st = deploy(client, connector, prepare_database=not skip_prepare, wait=wait)
    _say(f"connector {connector['name']} {'created' if created else 'updated'} on {client.url}")
    if st is not None:
        _print_status(connector["name"], st, False)
        _exit_unless(st, "RUNNING")


@app.command("status")
def connector_status(
    connect_url: ConnectUrl = None,
    name: NameOpt = "snapsync",
    wait: WaitOpt("a settled state (a new connector is unknown, then UNASSIGNED, for a few seconds)") = 0.0,
    retries: RetriesOpt = 6,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show the connector's and its tasks' states (exit 1 when not all RUNNING)."""
    client = _client(connect_url, retries, config)
    st = client.wait_status(name, wait) if wait > 0 else client.status(name)
    _print_status(name, st, json_)
    _exit_unless(st, "RUNNING")


@app.command("pause")
def connector_pause(connect_url: ConnectUrl = None, name: NameOpt = "snapsync",
                    wait: WaitOpt("PAUSED") = 30.0, retries: RetriesOpt = 6, config: ConfigOpt = None) -> None:
    """Pause the connector and its tasks (the worker keeps them, reading nothing)."""
    client = _client(connect_url, retries, config)
    client.status(name)  # an unknown name is reported as such, not as a bare 404
    client.pause(name)
    _after(client, name, "PAUSED", wait, "pause")


@app.command("resume")
def connector_resume(connect_url: ConnectUrl = None, name: NameOpt = "snapsync",
                     wait: WaitOpt("RUNNING") = 30.0, retries: RetriesOpt = 6, config: ConfigOpt = None) -> None:
    """Resume a paused connector."""
    client = _client(connect_url, retries, config)
    client.status(name)
    client.resume(name)
    _after(client, name, "RUNNING", wait, "resume")


@app.command("restart")
def connector_restart(connect_url: ConnectUrl = None, name: NameOpt = "snapsync",
                      wait: WaitOpt("RUNNING again") = 60.0, retries: RetriesOpt = 6,
                      config: ConfigOpt = None) -> None:
    """Restart the connector and all its tasks (docs/connector.md: a known limit on MariaDB)."""
    client = _client(connect_url, retries, config)
    client.status(name)
    client.restart(name)
    if wait <= 0:
        _say(f"connector {name}: restart requested")
        return
    st = client.wait_restarted(name, wait)
    _print_status(name, st, False)
    _exit_unless(st, "RUNNING")


@app.command("delete")
def connector_delete(connect_url: ConnectUrl = None, name: NameOpt = "snapsync",
                     wait: WaitOpt("the worker to drop it") = 30.0, retries: RetriesOpt = 6,
                     config: ConfigOpt = None) -> None:
    """Delete the connector (its committed offsets stay in Connect's offset topic)."""
    client = _client(connect_url, retries, config)
    client.status(name)
    client.delete(name)
    if wait > 0 and not client.wait_gone(name, wait):
        _say(f"connector {name}: delete requested; the worker still lists it after {wait:g}s")
        raise typer.Exit(1)
    _say(f"connector {name}: deleted")


def _after(client: ConnectClient, name: str, want: str, wait: float, action: str) -> None:
    if wait <= 0:
        _say(f"connector {name}: {action} requested")
        return
    st = client.wait_status(name, wait, want)
    _print_status(name, st, False)
    _exit_unless(st, want)
