"""`snapsync connector`: the Debezium connector on Kafka Connect (production capture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, err, out, settings

app = typer.Typer(help="The Debezium MySQL connector on Kafka Connect (production capture).", no_args_is_help=True)

ConnectUrl = Annotated[str, typer.Option("--connect-url", help="Kafka Connect REST URL, e.g. http://connect:8083.",
                                           envvar="SNAPSYNC_CONNECT_URL")]
NameOpt = Annotated[str, typer.Option("--name", help="Connector name.")]


def _rendered(config: Path | None, name: str, server_id: int, snapshot_mode: str) -> dict:
    from snapsync.connectors.debezium import render

    return render(settings(config), name=name, server_id=server_id, snapshot_mode=snapshot_mode)


@app.command("render")
def connector_render(
    name: NameOpt = "snapsync",
    server_id: Annotated[int, typer.Option(help="database.server.id (unique among replicas).")] = 184054,
    snapshot_mode: Annotated[str, typer.Option(help="Debezium snapshot.mode.")] = "initial",
    config: ConfigOpt = None,
) -> None:
    """Print the Debezium MySQL connector config that yields the embedded capture's topics and encodings."""
    print(json.dumps(_rendered(config, name, server_id, snapshot_mode), indent=2))


@app.command("validate")
def connector_validate(
    connect_url: ConnectUrl,
    file: Annotated[Optional[Path], typer.Option(help="A connector JSON ({name, config} or a bare config); default: the rendered one.")] = None,
    name: NameOpt = "snapsync",
    config: ConfigOpt = None,
) -> None:
    """Validate a connector config locally and on the Connect worker; print each failing field."""
    from snapsync.connectors.debezium import ConnectClient, check_config

    connector = json.loads(file.read_text()) if file else _rendered(config, name, 184054, "initial")
    cfg = connector.get("config", connector)
    problems = check_config(cfg) or ConnectClient(connect_url).validate(cfg)
    if problems:
        for p in problems:
            err.print(f"invalid: {p}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    out.print("connector config is valid")


@app.command("deploy")
def connector_deploy(
    connect_url: ConnectUrl,
    file: Annotated[Optional[Path], typer.Option(help="A connector JSON ({name, config}); default: the rendered one.")] = None,
    name: NameOpt = "snapsync",
    server_id: Annotated[int, typer.Option(help="database.server.id.")] = 184054,
    config: ConfigOpt = None,
) -> None:
    """Create or update the connector (validated first)."""
    from snapsync.connectors.debezium import ConnectClient

    connector = json.loads(file.read_text()) if file else _rendered(config, name, server_id, "initial")
    ConnectClient(connect_url).deploy(connector)
    out.print(f"connector {connector['name']} deployed to {connect_url}")


@app.command("status")
def connector_status(connect_url: ConnectUrl, name: NameOpt = "snapsync", json_: JsonOpt = False) -> None:
    """Show the connector's and its tasks' states (exit 1 when not all RUNNING)."""
    from snapsync.connectors.debezium import ConnectClient

    st = ConnectClient(connect_url).status(name)
    if json_:
        print(json.dumps(st))
    else:
        out.print(f"{name}: {st['connector']['state']}")
        for t in st.get("tasks", []):
            out.print(f"  task {t['id']}: {t['state']}" + (f" ({t['trace'].splitlines()[0]})" if t.get("trace") else ""))
    states = [st["connector"]["state"], *(t["state"] for t in st.get("tasks", []))]
    if any(s != "RUNNING" for s in states):
        raise typer.Exit(1)


def _lifecycle(action: str, method):
    def command(connect_url: ConnectUrl, name: NameOpt = "snapsync") -> None:
        from snapsync.connectors.debezium import ConnectClient

        method(ConnectClient(connect_url), name)
        out.print(f"connector {name}: {action} requested")

    command.__doc__ = f"{action.capitalize()} the connector (Kafka Connect REST)."
    return command


def _register_lifecycle() -> None:
    from snapsync.connectors.debezium import ConnectClient

    for action, method in (("pause", ConnectClient.pause), ("resume", ConnectClient.resume),
                           ("restart", ConnectClient.restart), ("delete", ConnectClient.delete)):
        app.command(action)(_lifecycle(action, method))


_register_lifecycle()
