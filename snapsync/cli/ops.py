"""Operations: `snapsync export-worker` (the nightly round's jobs) and `snapsync status`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, MetricsHostOpt, MetricsPortOpt, out, settings, setup_logging


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    app.command("export-worker")(export_worker)
    app.command("status")(status)


def export_worker(
    lease: Annotated[float, typer.Option(help="Seconds a claimed slot is held without renewal (renewed every third of it); a dead worker's slot is taken over after this.", min=1.0)] = 30.0,
    session_timeout: Annotated[float, typer.Option(help="Seconds of silence after which the group gives a worker's partitions to the others.", min=1.0, max=300.0)] = 6.0,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
    config: ConfigOpt = None,
) -> None:
    """Export the nightly round's jobs (published by `snapshot scheduler --jobs`); run as many as wanted.

    Each account's delivery for a day is claimed once in the database; a worker killed
    mid-export is replaced by another, which redoes the job. Stops on SIGTERM/SIGINT.
    """
    import signal

    from snapsync.connectors.lag import LagMonitor
    from snapsync.connectors.metrics import serve
    from snapsync.connectors.state import connect_state
    from snapsync.control.processes import Beacon
    from snapsync.schemas.topics import export_jobs_topic
    from snapsync.sinks.export_worker import ExportWorker, group_id

    setup_logging()
    s = settings(config)
    with connect_state(s):  # the state store is at this release's version (else exit 2)
        pass
    beacon = Beacon(s, "export-worker", metrics_port=metrics_port)
    worker = ExportWorker(s, lease=lease, session_timeout=session_timeout, ident=beacon.id)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop_event.set())
    lag = server = None
    if metrics_port is not None:
        lag = LagMonitor(s.kafka_bootstrap, group_id(s), [export_jobs_topic(s.topic_prefix)], interval=10.0).start()
        health = worker.health()
        health.ready["lag"] = lag.check
        server = serve(metrics_port, health, metrics_host)
    beacon.start()
    from snapsync.control.broker import watch

    watch(s, "export-worker")  # a broker replaced: recovered from, the worker starts again on it
    try:
        worker.run()
    finally:
        beacon.stop()
        if lag is not None:
            lag.stop()
        if server is not None:
            server.close()


def status(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """The pipeline at a glance: processes, capture position and lag, worker lag, last delivery
    per account, failing accounts, dead letters of the last day. Exits 1 when something needs
    an operator (listed under "problems")."""
    from snapsync.status import pipeline_status

    st = pipeline_status(settings(config))
    if json_:
        print(json.dumps(st, default=str))
    else:
        _print(st)
    if st["problems"]:
        raise typer.Exit(1)


def _print(st: dict) -> None:
    out.print(f"snapsync status at {st['checked_at']} (New York day {st['day']})", highlight=False, markup=False)
    for role, procs in st["processes"].items():
        if not procs:
            continue
        states = ", ".join(f"{p['host']}:{p['pid']} {p['state']} (seen {p['last_seen_s']:.0f}s ago)" for p in procs)
        out.print(f"  {role}: {states}", highlight=False, markup=False)
    for c in st["capture"]["connectors"]:
        out.print(f"  capture {c['connector']}: restart point {c['restart_point']} stored "
                  f"{c['restart_point_age_s']:.0f}s ago", highlight=False, markup=False)
    dbz = st["capture"].get("debezium")
    if dbz:
        out.print(f"  Debezium connector {dbz['connector']} at {dbz['connect_url']}: "
                  + (dbz["error"] if "error" in dbz else
                     f"{dbz.get('state')} (tasks {', '.join(dbz.get('tasks') or []) or 'none'}), "
                     f"committed position {dbz.get('committed_position')}"), highlight=False, markup=False)
    wm = st["capture"]["watermark"]
    if wm:
        out.print(f"  capture watermark: {wm['at']} (lag {wm['lag_s']:.1f}s) at {wm['position']}", highlight=False, markup=False)
    behind = [p for p in st["worker"]["lag"] if p["lag"]]
    out.print(f"  worker lag: {st['worker']['lag_total']} message(s)"
              + (": " + ", ".join(f"{p['topic']}[{p['partition']}] {p['lag']}" for p in behind) if behind else ""),
              highlight=False, markup=False)
    jobs = sum(p["lag"] for p in st["export_workers"]["job_lag"])
    out.print(f"  export jobs waiting: {jobs}; export workers running: {st['export_workers']['running']}",
              highlight=False, markup=False)
    for a in st["accounts"]:
        last = a["last_delivery"]
        out.print(f"  account {a['account_id']} ({a['kind']}): today {a['today']}"
                  + (" LATE" if a["late"] else "")
                  + (f"; last delivered {last['slot_date']} at {last['finished_at']}" if last else "; never delivered"),
                  highlight=False, markup=False)
    b = st.get("broker")
    if b:
        out.print(f"  broker: cluster {b['cluster_id']}, generation {b['generation']} since {b['since']}"
                  + (" (a broker was replaced or emptied and recovered from)" if b["replaced"] else ""),
                  highlight=False, markup=False)
    dl = st["dead_letters_24h"]
    if dl is not None:
        out.print(f"  dead letters in the last day: {dl['count']}"
                  + ("".join(f"\n    {n} x {r}" for r, n in dl["by_reason"].items()) if dl["count"] else ""),
                  highlight=False, markup=False)
    for p in st["problems"]:
        out.print(f"  problem: {p}", style="red", highlight=False, markup=False)
