"""Top-level commands: the demo, the catalog, synthetic data, capture, the worker, the audit history."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Optional

import typer

from snapsync.cli.common import (
    ConfigOpt,
    JsonOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    err,
    home_dir,
    out,
    settings,
    setup_logging,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    for fn in (demo, catalog, seed, capture, worker, audit):
        app.command()(fn)


def demo(
    debezium: Annotated[bool, typer.Option(
        "--debezium", help="Capture with Debezium on a local Kafka Connect worker (started with the stack; Java, "
        "about 400 MB) instead of the embedded capture (docs/connector.md).")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run the whole pipeline on the local default stack and print where the results are."""
    from snapsync.demo import run_demo

    summary = run_demo(home_dir(config), say=(lambda m: None) if json_ else out.print, debezium=debezium)
    if json_:
        print(json.dumps(summary))


def catalog(json_: JsonOpt = False) -> None:
    """List every data set of the practice database with its metadata."""
    from snapsync.schemas.catalog import DATASETS

    if json_:
        print(json.dumps([d.to_json() for d in DATASETS], indent=2))
        return
    from rich.table import Table

    t = Table("data set", "table", "incremental", "sync category", "natural key", "never copied")
    for d in DATASETS:
        t.add_row(d.name, d.table, "yes" if d.incremental else "", d.sync_category or "",
                  ", ".join(d.natural_key), ", ".join(d.never_copied))
    out.print(t)


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
    from snapsync import seed as seeding
    from snapsync.connectors.mysql import connect, ensure_database

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


def capture(
    connector: Annotated[Optional[str], typer.Option(help="Connector name: keys the stored position and the heartbeat row (default: the connector setting, SNAPSYNC_CONNECTOR, else snapsync).")] = None,
    server_id: Annotated[Optional[int], typer.Option(help="Replica server id (unique among the server's replicas; default derived from --connector).")] = None,
    partitions: Annotated[int, typer.Option(help="Partitions of the change topics created.", min=1)] = 3,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds between heartbeats (0: none).", min=0)] = 1.0,
    commit_interval: Annotated[float, typer.Option(help="Seconds between flush-and-store of the restart point.", min=0.05)] = 1.0,
    decoder: Annotated[Optional[str], typer.Option(help="Binlog decoder: native (mysql-event-stream's C++ core) or python (mysql-replication); default: the decoder setting (native).")] = None,
    resnapshot: Annotated[bool, typer.Option("--resnapshot", help="Forget the stored position and take a new initial snapshot.")] = False,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Stream every row change of the catalog tables from the binlog into Kafka (Debezium envelope).

    First start: a consistent initial snapshot (op r), then streaming from that exact
    position. Stops cleanly on SIGTERM/SIGINT; resumes at the stored position.
    """
    from snapsync.connectors.binlog_capture import Capture

    setup_logging()
    s = settings(config)
    if connector is None:
        connector = s.connector
    elif connector != s.connector:  # the exporter's watermark reads the position under this name
        s = s.model_copy(update={"connector": connector})
    cap = Capture(s, connector=connector, server_id=server_id, partitions=partitions,
                  heartbeat_interval=heartbeat_interval, commit_interval=commit_interval, decoder=decoder)
    from snapsync.control.broker import watch

    watch(s, "capture")  # a broker replaced under it: recovered from, and capture starts again on it
    with _monitored(s, "capture", metrics_port, metrics_host, cap):
        stats = cap.run(resnapshot=resnapshot)
    summary = {"snapshot_rows": stats.snapshot_rows, "streamed_rows": stats.streamed_rows,
               "transactions": stats.transactions, "heartbeats": stats.heartbeats,
               "position": None if stats.last_position is None else
               f"{stats.last_position.file}:{stats.last_position.pos}"}
    print(json.dumps(summary) if json_ else
          f"capture stopped: {stats.snapshot_rows} snapshot rows, {stats.streamed_rows} streamed row changes")


def audit(
    account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
    entity: Annotated[Optional[str], typer.Option(help="Only this entity (snapshot_settings, delivery, sync_group, sync_apply).")] = None,
    limit: Annotated[int, typer.Option(help="Newest N records.", min=1, max=10000)] = 50,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The audit history: settings changes, deliveries, sync groups and applications."""
    from snapsync.control.audit import history

    rows = history(settings(config), account_id=account, entity=entity, limit=limit)
    if json_:
        print(json.dumps(rows))
        return
    for r in rows:
        out.print(f"#{r['audit_id']} {r['at']} {r['actor']} account={r['account_id']} {r['entity']}"
                  f"/{r['entity_id']} {r['action']}", highlight=False)


def worker(metrics_port: MetricsPortOpt = None, metrics_host: MetricsHostOpt = "127.0.0.1",
           config: ConfigOpt = None) -> None:
    """Run the stream workers: Data Sync fan-out and applier (faust-streaming) and the incremental deltas stage.

    Stops on SIGTERM; an agent failure stops the worker with exit code 70.
    """
    from snapsync.streams.app import run_worker

    setup_logging()
    run_worker(settings(config), metrics_port=metrics_port, metrics_host=metrics_host)


class _monitored:
    """The metrics port (when asked for) and the liveness beacon of a capture process."""

    def __init__(self, s, role: str, port, host: str, cap) -> None:
        self.s, self.role, self.port, self.host, self.cap = s, role, port, host, cap

    def __enter__(self):
        from snapsync.connectors.capture_metrics import CaptureMonitor
        from snapsync.connectors.metrics import serve
        from snapsync.control.processes import Beacon

        self.monitor = CaptureMonitor(self.cap).start()
        self.server = serve(self.port, self.monitor.health(), self.host) if self.port is not None else None
        self.beacon = Beacon(self.s, self.role, metrics_port=self.port).start()
        return self

    def __exit__(self, *exc) -> None:
        self.beacon.stop()
        self.monitor.stop()
        if self.server is not None:
            self.server.close()
