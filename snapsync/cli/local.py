"""`snapsync local`: the local stack (private MariaDB with binlog, Tansu broker)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, home_dir, out

app = typer.Typer(help="The local stack: private MariaDB (binlog on) and Tansu broker on loopback; "
                  "with --connect, a Kafka Connect worker with Debezium too.", no_args_is_help=True)


@app.command("up")
def local_up(
    db_port: Annotated[Optional[int], typer.Option(help="Preferred MariaDB port (default 3307, or a free one).")] = None,
    kafka_port: Annotated[Optional[int], typer.Option(help="Preferred broker port (default 19092, or a free one).")] = None,
    connect: Annotated[bool, typer.Option(
        "--connect", help="Also start a Kafka Connect worker with the Debezium MySQL connector (Java, about "
        "250-400 MB; `snapsync connector ...` then uses it). Added to a running stack too.")] = False,
    connect_port: Annotated[Optional[int], typer.Option(
        help="Preferred Kafka Connect REST port (default 8083, or a free one).")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start the private MariaDB (binlog ROW/FULL) and the Tansu broker on loopback (and Kafka Connect
    with --connect), and bring snapsync's own schemas to this release (`snapsync db migrate`, as
    the local server's root)."""
    from snapsync.control.migrate import migrate
    from snapsync.local import LocalStack
    from snapsync.schemas.config import load_settings

    home = home_dir(config)
    stack = LocalStack(home)
    st = stack.up(db_port, kafka_port, connect=connect, connect_port=connect_port)
    local = load_settings(config, database_url=st.database_url, kafka_bootstrap=st.kafka_bootstrap, home=str(home))
    migrate(local)
    if json_:
        print(json.dumps(stack.status()))
        return
    worker = f", Kafka Connect pid {st.connect_pid}" if st.connect_pid else ""
    out.print(f"local stack up in {stack.root} (MariaDB pid {st.db_pid}, Tansu pid {st.kafka_pid}{worker})")
    out.print(f"export SNAPSYNC_DATABASE_URL={st.database_url}")
    out.print(f"export SNAPSYNC_KAFKA_BOOTSTRAP={st.kafka_bootstrap}")
    if st.connect_url:
        out.print(f"export SNAPSYNC_CONNECT_URL={st.connect_url}", soft_wrap=True)
    out.print(f"snapsync's own tables: schema `{local.state.database}` (state) and `{local.signal_schema}` (signal), "
              "at this release's version")
    out.print("(commands run from this folder use these settings without the exports)")


@app.command("down")
def local_down(config: ConfigOpt = None) -> None:
    """Stop the local stack, Kafka Connect included (data stays on disk; the broker's topics are
    memory-only and go)."""
    from snapsync.local import LocalStack

    stack = LocalStack(home_dir(config))
    out.print("local stack stopped" if stack.down() else "local stack was not running")


@app.command("status")
def local_status(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Show whether the local database, broker and Kafka Connect worker are running, and their settings
    (exit 1 when a part is down)."""
    from snapsync.local import LocalStack

    st = LocalStack(home_dir(config)).status()
    if json_:
        print(json.dumps(st))
    else:
        for k, v in st.items():
            out.print(f"{k}: {v}")
    if not st["running"]:
        raise typer.Exit(1)
