"""The ``snapsync`` command line: one entry point for every command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from schemas.config import Settings, load_settings
from schemas.errors import SnapsyncError

app = typer.Typer(
    name="snapsync",
    help="Change-data-capture pipeline for multi-tenant medical-billing databases: "
    "recurring data snapshots and Data Sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="The local stack: private MariaDB (binlog on) and Tansu broker on loopback.",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")
connector_app = typer.Typer(help="The Debezium MySQL connector on Kafka Connect (production capture).",
                            no_args_is_help=True)
app.add_typer(connector_app, name="connector")
snapshot_app = typer.Typer(help="Recurring data snapshots: export, sample, settings, scheduler.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")
sync_app = typer.Typer(help="Data Sync: groups of a sync-from customer and its sync-to customers.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="TOML config file (keys database_url, kafka_bootstrap, topic_prefix, home).",
                 envvar="SNAPSYNC_CONFIG", show_envvar=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings(config: Path | None) -> Settings:
    """Load settings or stop with the message of every bad key."""
    return load_settings(config)


def home_dir(config: Path | None) -> Path:
    """The data folder, without requiring database and broker settings."""
    from schemas.config import configured_values

    return Path(configured_values(config).get("home", ".snapsync"))


@app.command()
def demo(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Run the whole pipeline on the local default stack and print where the results are."""
    from snapsync.demo import run_demo

    summary = run_demo(home_dir(config), say=(lambda m: None) if json_ else out.print)
    if json_:
        print(json.dumps(summary))


@app.command()
def catalog(json_: JsonOpt = False) -> None:
    """List every data set of the practice database with its metadata."""
    from schemas.catalog import DATASETS

    if json_:
        print(json.dumps([d.to_json() for d in DATASETS], indent=2))
        return
    from rich.table import Table

    t = Table("data set", "table", "incremental", "sync category", "natural key", "never copied")
    for d in DATASETS:
        t.add_row(d.name, d.table, "yes" if d.incremental else "", d.sync_category or "",
                  ", ".join(d.natural_key), ", ".join(d.never_copied))
    out.print(t)


@app.command()
def seed(
    customers: Annotated[int, typer.Option(help="Number of customers.", min=1)] = 3,
    scale: Annotated[float, typer.Option(help="Rows per customer = weight x scale; 1 is ~81,000 rows per customer.")] = 0.01,
    seed_: Annotated[int, typer.Option("--seed", help="Random seed: same arguments, same data.")] = 1,
    accounts: Annotated[Optional[int], typer.Option(help="Accounts owning the customers (default: one per 3 customers).")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """(Re)create the practice schema and fill it with deterministic synthetic data (fake PHI).

    Drops and recreates the practice tables; snapsync's control tables are kept.
    """
    from snapsync.db import connect, ensure_database
    from snapsync import seed as seeding

    if scale <= 0:
        raise typer.BadParameter("--scale must be greater than 0")
    s = settings(config)
    ensure_database(s.db)
    started = time.monotonic()
    p = seeding.plan(customers, scale)
    with connect(s.db) as conn:
        if json_ or not sys.stderr.isatty():
            seeding.seed(conn, customers, scale, seed_, accounts=accounts)
        else:
            from rich.progress import Progress

            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("seeding", total=p.total_rows)
                seeding.seed(conn, customers, scale, seed_, accounts=accounts,
                             progress=lambda table, n: bar.update(task, advance=n, description=f"seeding {table}"))
    elapsed = time.monotonic() - started
    result = {"database": s.db.redacted(), "customers": customers, "scale": scale, "seed": seed_,
              "rows": p.total_rows, "tables": len(p.counts), "seconds": round(elapsed, 2)}
    if json_:
        print(json.dumps(result))
    else:
        out.print(f"seeded {result['rows']:,} rows in {result['tables']} tables for {customers} customers "
                  f"into {result['database']} in {elapsed:.1f}s")


def _logging(verbose: bool = False) -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def capture(
    connector: Annotated[str, typer.Option(help="Connector name: keys the stored position and the heartbeat row.")] = "snapsync",
    server_id: Annotated[Optional[int], typer.Option(help="Replica server id (unique among the server's replicas; default derived from --connector).")] = None,
    partitions: Annotated[int, typer.Option(help="Partitions of the change topics created.", min=1)] = 3,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds between heartbeats (0: none).", min=0)] = 1.0,
    commit_interval: Annotated[float, typer.Option(help="Seconds between flush-and-store of the restart point.", min=0.05)] = 1.0,
    resnapshot: Annotated[bool, typer.Option("--resnapshot", help="Forget the stored position and take a new initial snapshot.")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Stream every row change of the catalog tables from the binlog into Kafka (Debezium envelope).

    First start: a consistent initial snapshot (op r), then streaming from that exact
    position. Stops cleanly on SIGTERM/SIGINT; resumes at the stored position.
    """
    from connectors.binlog_capture import Capture

    _logging()
    s = settings(config)
    cap = Capture(s, connector=connector, server_id=server_id, partitions=partitions,
                  heartbeat_interval=heartbeat_interval, commit_interval=commit_interval)
    stats = cap.run(resnapshot=resnapshot)
    summary = {"snapshot_rows": stats.snapshot_rows, "streamed_rows": stats.streamed_rows,
               "transactions": stats.transactions, "heartbeats": stats.heartbeats,
               "position": None if stats.last_position is None else
               f"{stats.last_position.file}:{stats.last_position.pos}"}
    print(json.dumps(summary) if json_ else
          f"capture stopped: {stats.snapshot_rows} snapshot rows, {stats.streamed_rows} streamed row changes")


ConnectUrl = Annotated[str, typer.Option("--connect-url", help="Kafka Connect REST URL, e.g. http://connect:8083.",
                                           envvar="SNAPSYNC_CONNECT_URL")]
NameOpt = Annotated[str, typer.Option("--name", help="Connector name.")]


def _rendered(config: Path | None, name: str, server_id: int, snapshot_mode: str) -> dict:
    from connectors.debezium import render

    return render(settings(config), name=name, server_id=server_id, snapshot_mode=snapshot_mode)


@connector_app.command("render")
def connector_render(
    name: NameOpt = "snapsync",
    server_id: Annotated[int, typer.Option(help="database.server.id (unique among replicas).")] = 184054,
    snapshot_mode: Annotated[str, typer.Option(help="Debezium snapshot.mode.")] = "initial",
    config: ConfigOpt = None,
) -> None:
    """Print the Debezium MySQL connector config that yields the embedded capture's topics and encodings."""
    print(json.dumps(_rendered(config, name, server_id, snapshot_mode), indent=2))


@connector_app.command("validate")
def connector_validate(
    connect_url: ConnectUrl,
    file: Annotated[Optional[Path], typer.Option(help="A connector JSON ({name, config} or a bare config); default: the rendered one.")] = None,
    name: NameOpt = "snapsync",
    config: ConfigOpt = None,
) -> None:
    """Validate a connector config locally and on the Connect worker; print each failing field."""
    from connectors.debezium import ConnectClient, check_config

    connector = json.loads(file.read_text()) if file else _rendered(config, name, 184054, "initial")
    cfg = connector.get("config", connector)
    problems = check_config(cfg) or ConnectClient(connect_url).validate(cfg)
    if problems:
        for p in problems:
            err.print(f"invalid: {p}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    out.print("connector config is valid")


@connector_app.command("deploy")
def connector_deploy(
    connect_url: ConnectUrl,
    file: Annotated[Optional[Path], typer.Option(help="A connector JSON ({name, config}); default: the rendered one.")] = None,
    name: NameOpt = "snapsync",
    server_id: Annotated[int, typer.Option(help="database.server.id.")] = 184054,
    config: ConfigOpt = None,
) -> None:
    """Create or update the connector (validated first)."""
    from connectors.debezium import ConnectClient

    connector = json.loads(file.read_text()) if file else _rendered(config, name, server_id, "initial")
    ConnectClient(connect_url).deploy(connector)
    out.print(f"connector {connector['name']} deployed to {connect_url}")


@connector_app.command("status")
def connector_status(connect_url: ConnectUrl, name: NameOpt = "snapsync", json_: JsonOpt = False) -> None:
    """Show the connector's and its tasks' states (exit 1 when not all RUNNING)."""
    from connectors.debezium import ConnectClient

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
        from connectors.debezium import ConnectClient

        method(ConnectClient(connect_url), name)
        out.print(f"connector {name}: {action} requested")

    command.__doc__ = f"{action.capitalize()} the connector (Kafka Connect REST)."
    return command


def _register_lifecycle() -> None:
    from connectors.debezium import ConnectClient

    for action, method in (("pause", ConnectClient.pause), ("resume", ConnectClient.resume),
                           ("restart", ConnectClient.restart), ("delete", ConnectClient.delete)):
        connector_app.command(action)(_lifecycle(action, method))


_register_lifecycle()


def _customer_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of customer ids (e.g. 1,2,3)") from None


FormatOpt = Annotated[str, typer.Option("--format", help="dat (tab-delimited .DAT files) or mysql (a .sql dump).")]
PackagingOpt = Annotated[str, typer.Option("--packaging", help="per-customer (one package each) or combined.")]
ContainerOpt = Annotated[str, typer.Option("--container", help="folder or zip.")]


def _run_export(config, customers: str, format_: str, packaging: str, container: str, dest: Path,
                json_: bool, sample: int | None, keep: int = 1, kind: str = "full", cutoff: str | None = None,
                watermark_timeout: float = 300.0) -> None:
    from schemas.errors import ConfigError
    from sinks.export import ExportRequest, export_snapshot

    problems = []
    if format_ not in ("dat", "mysql"):
        problems.append(f"--format {format_!r}: use dat or mysql")
    if packaging not in ("per-customer", "combined"):
        problems.append(f"--packaging {packaging!r}: use per-customer or combined")
    if container not in ("folder", "zip"):
        problems.append(f"--container {container!r}: use folder or zip")
    if kind not in ("full", "incremental"):
        problems.append(f"--kind {kind!r}: use full or incremental")
    cutoff_utc = None
    if kind == "incremental":
        from schemas.schedule import parse_instant

        if not cutoff:
            problems.append("--cutoff is required with --kind incremental (e.g. --cutoff 2026-03-08T00:00)")
        else:
            try:
                cutoff_utc = parse_instant(cutoff).replace(tzinfo=None)
            except ValueError as exc:
                problems.append(f"--cutoff: {exc}")
    if problems:
        raise ConfigError("invalid export options:\n  - " + "\n  - ".join(problems))
    s = settings(config)
    req = ExportRequest(customers=_customer_list(customers), format=format_, packaging=packaging,
                        container=container, sample_rows=sample, keep=keep, kind=kind, cutoff=cutoff_utc,
                        watermark_timeout=watermark_timeout)
    if json_ or not sys.stderr.isatty():
        result = export_snapshot(s, req, dest)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("exporting", total=None)
            result = export_snapshot(s, req, dest, progress=lambda done, total, rows: bar.update(
                task, completed=done, total=total, description=f"exporting ({rows:,} rows)"))
    if json_:
        print(json.dumps(result.summary()))
    else:
        out.print(f"delivered {len(result.packages)} package(s), {result.rows:,} rows in {result.seconds:.1f}s")
        out.print(f"current delivery: {Path(dest) / 'current'} -> {result.path}")


@snapshot_app.command("export")
def snapshot_export(
    customers: Annotated[str, typer.Option(help="Customer ids, comma-separated (one account).")],
    out: Annotated[Path, typer.Option(help="Delivery folder: the package appears under OUT/current.")],
    format_: FormatOpt = "dat",
    kind: Annotated[str, typer.Option(help="full, or incremental (changed rows of Patient, Claims, Charge, Credit, Activity since this folder's last delivery).")] = "full",
    cutoff: Annotated[Optional[str], typer.Option(help="Incremental: the window's end (ISO; no offset = New York time).")] = None,
    watermark_timeout: Annotated[float, typer.Option(help="Incremental: seconds to wait for the pipeline to reach the cutoff.")] = 300.0,
    packaging: PackagingOpt = "per-customer",
    container: ContainerOpt = "folder",
    keep: Annotated[int, typer.Option(help="Deliveries kept under OUT/deliveries (default 1: replace).", min=1)] = 1,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export a snapshot package of every data set for the customers, delivered atomically.

    Incremental: needs `snapsync capture` and `snapsync worker` running; the first delivery
    to a folder (and the first for a customer new to it) carries that customer in full.
    """
    _run_export(config, customers, format_, packaging, container, out, json_, None, keep, kind, cutoff,
                watermark_timeout)


@snapshot_app.command("sample")
def snapshot_sample(
    customers: Annotated[str, typer.Option(help="Customer ids, comma-separated (one account).")],
    out: Annotated[Path, typer.Option(help="Where the sample package goes (OUT/current).")],
    format_: FormatOpt = "dat",
    packaging: PackagingOpt = "per-customer",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The "Download Sample": the first five rows of each data set, in the chosen format."""
    _run_export(config, customers, format_, packaging, "folder", out, json_, 5)


@snapshot_app.command("configure")
def snapshot_configure(
    account: Annotated[int, typer.Option(help="Account id.")],
    customers: Annotated[Optional[str], typer.Option(help="Customer ids of the account, comma-separated.")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", help="dat or mysql.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="full or incremental.")] = None,
    packaging: Annotated[Optional[str], typer.Option(help="per-customer or combined.")] = None,
    container: Annotated[Optional[str], typer.Option(help="folder or zip.")] = None,
    keep: Annotated[Optional[int], typer.Option(help="Deliveries kept (default 1).")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Enable (or change) an account's recurring snapshots; every change is audited."""
    from sinks import settings_store

    new = settings_store.configure(settings(config), account, enabled=True,
                                   customers=None if customers is None else tuple(_customer_list(customers)),
                                   format=format_, kind=kind, packaging=packaging, container=container, keep=keep)
    print(json.dumps(new.model_dump())) if json_ else out.print(f"account {account}: {new.model_dump()}")


@snapshot_app.command("show")
def snapshot_show(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None,
                  json_: JsonOpt = False) -> None:
    """Show an account's snapshot settings."""
    from snapsync.control import ensure_control_tables
    from snapsync.db import connect
    from sinks import settings_store

    with connect(settings(config).db) as conn:
        ensure_control_tables(conn)
        cfg = settings_store.load(conn, account)
    data = cfg.model_dump() if cfg else None
    if json_:
        print(json.dumps(data))
    else:
        out.print(data if data else f"account {account} has no snapshot settings")


@snapshot_app.command("disable")
def snapshot_disable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Disable an account's recurring snapshots (settings are kept; audited)."""
    from sinks import settings_store

    settings_store.disable(settings(config), account)
    out.print(f"account {account}: recurring snapshots disabled")


@snapshot_app.command("scheduler")
def snapshot_scheduler(
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="With --once: the round's time (ISO; no offset = New York).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 30.0,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Deliver each enabled account's snapshot at its New York time (full as of 01:00, ready by 09:00)."""
    import datetime as dt
    import threading

    from connectors.kafka import producer
    from schemas.errors import ConfigError
    from schemas.schedule import parse_instant
    from sinks.scheduler import run_forever, run_round

    _logging()
    s = settings(config)
    prod = producer(s.kafka_bootstrap)
    if once:
        try:
            now = parse_instant(as_of) if as_of else dt.datetime.now(dt.timezone.utc)
        except ValueError as exc:
            raise ConfigError(f"--as-of: {exc}") from None
        done = run_round(s, now, producer=prod)
        print(json.dumps(done, default=str) if json_ else f"{len(done)} delivery(ies) made")
        return
    if as_of:
        raise ConfigError("--as-of goes with --once")
    stop = threading.Event()
    import signal as _signal

    for sig in (_signal.SIGTERM, _signal.SIGINT):
        _signal.signal(sig, lambda *_: stop.set())
    run_forever(s, stop, interval, producer=prod)


@app.command()
def audit(
    account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
    entity: Annotated[Optional[str], typer.Option(help="Only this entity (snapshot_settings, delivery, sync_group, sync_apply).")] = None,
    limit: Annotated[int, typer.Option(help="Newest N records.")] = 50,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The audit history: settings changes, deliveries, sync groups and applications."""
    from snapsync.control import audit_rows, ensure_control_tables
    from snapsync.db import connect

    with connect(settings(config).db) as conn:
        ensure_control_tables(conn)
        rows = audit_rows(conn, account_id=account, entity=entity, limit=limit)
    if json_:
        print(json.dumps(rows))
        return
    for r in rows:
        out.print(f"#{r['audit_id']} {r['at']} {r['actor']} account={r['account_id']} {r['entity']}"
                  f"/{r['entity_id']} {r['action']}", highlight=False)


@app.command()
def worker(config: ConfigOpt = None) -> None:
    """Run the stream workers (faust-streaming): Data Sync fan-out and applier, incremental deltas.

    Stops on SIGTERM; an agent failure stops the worker with exit code 70.
    """
    from streams.app import run_worker

    _logging()
    run_worker(settings(config))


def _group_json(g) -> dict:
    from schemas.control import CLI_CATEGORIES

    names = {v: k for k, v in CLI_CATEGORIES.items()}
    d = g.model_dump()
    d["categories"] = [names[c] for c in g.categories]
    return d


def _targets(text: str) -> tuple[int, ...]:
    return tuple(_customer_list(text))


def _copy_all(s, group, targets) -> dict:
    from schemas.catalog import sync_datasets
    from snapsync.db import connect
    from streams import sync_groups
    from streams.sync_apply import initial_copy

    with connect(s.db) as conn:
        if not sync_groups.service_enabled(conn, group.account_id):
            return {}
        tables = [d for c in group.categories for d in sync_datasets(c)]
        return {t: initial_copy(conn, group.group_id, group.source_customer, t, tables, group.mode) for t in targets}


@sync_app.command("add")
def sync_add(
    from_: Annotated[int, typer.Option("--from", help="The sync-from customer.")],
    to: Annotated[str, typer.Option("--to", help="Sync-to customers, comma-separated.")],
    data: Annotated[str, typer.Option("--data", help="codes, facilities, referring-providers, payers (comma-separated).")],
    mode: Annotated[str, typer.Option(help="create-only (default: never modify existing items) or override.")] = "create-only",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add a sync group; when the account's Data Sync is enabled, copy the current items now."""
    from streams import sync_groups

    s = settings(config)
    g = sync_groups.add_group(s, from_, _targets(to), sync_groups.parse_categories(data), mode)
    copied = _copy_all(s, g, g.targets)
    result = {**_group_json(g), "initial_copy": copied}
    print(json.dumps(result)) if json_ else out.print(
        f"sync group {g.group_id}: customer {g.source_customer} -> {list(g.targets)} ({mode})"
        + ("" if copied else " (Data Sync is disabled for the account: `snapsync sync enable`)"))


@sync_app.command("edit")
def sync_edit(
    group: Annotated[int, typer.Argument(help="Group id (`snapsync sync list`).")],
    to: Annotated[Optional[str], typer.Option("--to", help="The new list of sync-to customers.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="The new list of categories.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="create-only or override.")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Change a group's targets, categories or mode; newly added targets get the initial copy."""
    from streams import sync_groups

    s = settings(config)
    before, after = sync_groups.edit_group(s, group, targets=None if to is None else _targets(to),
                                           categories=None if data is None else sync_groups.parse_categories(data),
                                           mode=mode)
    added = [t for t in after.targets if t not in before.targets]
    copied = _copy_all(s, after, added) if added else {}
    print(json.dumps({**_group_json(after), "initial_copy": copied})) if json_ else out.print(
        f"sync group {group} updated; new targets copied: {added}")


@sync_app.command("delete")
def sync_delete(group: Annotated[int, typer.Argument(help="Group id.")], config: ConfigOpt = None) -> None:
    """Delete a sync group (items already copied stay)."""
    from streams import sync_groups

    sync_groups.delete_group(settings(config), group)
    out.print(f"sync group {group} deleted")


@sync_app.command("list")
def sync_list(account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
              config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List the sync groups and whether each account's Data Sync is enabled."""
    from snapsync.control import ensure_control_tables
    from snapsync.db import connect
    from streams import sync_groups

    with connect(settings(config).db) as conn:
        ensure_control_tables(conn)
        groups = sync_groups.load_groups(conn, account)
        rows = [{**_group_json(g), "service_enabled": sync_groups.service_enabled(conn, g.account_id)} for g in groups]
    if json_:
        print(json.dumps(rows))
        return
    for r in rows:
        out.print(f"group {r['group_id']} (account {r['account_id']}{'' if r['service_enabled'] else ', disabled'}): "
                  f"{r['source_customer']} -> {r['targets']} {','.join(r['categories'])} [{r['mode']}]")


@sync_app.command("enable")
def sync_enable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Enable Data Sync for an account (copies every group's current items)."""
    from snapsync.db import connect
    from streams import sync_groups

    s = settings(config)
    sync_groups.set_service(s, account, True)
    with connect(s.db) as conn:
        groups = sync_groups.load_groups(conn, account)
    for g in groups:
        _copy_all(s, g, g.targets)
    out.print(f"Data Sync enabled for account {account} ({len(groups)} group(s) copied)")


@sync_app.command("disable")
def sync_disable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Disable Data Sync for an account (groups are kept)."""
    from streams import sync_groups

    sync_groups.set_service(settings(config), account, False)
    out.print(f"Data Sync disabled for account {account}")


@sync_app.command("undo")
def sync_undo(audit_id: Annotated[int, typer.Argument(help="Audit id of a sync application (`snapsync audit --entity sync_apply`).")],
              config: ConfigOpt = None) -> None:
    """Restore what one sync application overwrote (and remove what it created)."""
    from snapsync.db import connect
    from streams.sync_apply import undo

    with connect(settings(config).db) as conn:
        n = undo(conn, audit_id)
    out.print(f"undone: {n} row(s) restored from audit record {audit_id}")


@local_app.command("up")
def local_up(
    db_port: Annotated[Optional[int], typer.Option(help="Preferred MariaDB port (default 3307, or a free one).")] = None,
    kafka_port: Annotated[Optional[int], typer.Option(help="Preferred broker port (default 19092, or a free one).")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start the private MariaDB (binlog ROW/FULL) and the Tansu broker on loopback."""
    from snapsync.local import LocalStack

    stack = LocalStack(home_dir(config))
    st = stack.up(db_port, kafka_port)
    if json_:
        print(json.dumps(stack.status()))
        return
    out.print(f"local stack up in {stack.root} (MariaDB pid {st.db_pid}, Tansu pid {st.kafka_pid})")
    out.print(f"export SNAPSYNC_DATABASE_URL={st.database_url}")
    out.print(f"export SNAPSYNC_KAFKA_BOOTSTRAP={st.kafka_bootstrap}")
    out.print("(commands run from this folder use these settings without the exports)")


@local_app.command("down")
def local_down(config: ConfigOpt = None) -> None:
    """Stop the local stack (data stays on disk; the broker's topics are memory-only and go)."""
    from snapsync.local import LocalStack

    stack = LocalStack(home_dir(config))
    out.print("local stack stopped" if stack.down() else "local stack was not running")


@local_app.command("status")
def local_status(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Show whether the local database and broker are running, and their settings."""
    from snapsync.local import LocalStack

    st = LocalStack(home_dir(config)).status()
    if json_:
        print(json.dumps(st))
    else:
        for k, v in st.items():
            out.print(f"{k}: {v}")
    if not st["running"]:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: known errors print one clear message and exit 2."""
    try:
        app()
    except SnapsyncError as exc:
        from rich.text import Text

        err.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
