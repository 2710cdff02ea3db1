"""`snapsync soak`: days of running in minutes, with faults, on a local stack of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, err, home_dir, out, setup_logging


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    app.command("soak")(soak)


def soak(
    minutes: Annotated[float, typer.Option(help="Minutes of running with faults (set-up and the last night come on top).", min=0.5)] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the data, the writes and the fault schedule: same seed, same schedule.")] = 1,
    fault_every: Annotated[Optional[float], typer.Option(help="Mean seconds between faults (default: 6 for runs up to 5 minutes, else 20).", min=1.0)] = None,
    home: Annotated[Optional[Path], typer.Option(help="The soak's own folder, emptied first (default: <home>/soak); its local stack is stopped at the end unless --keep.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the soak's stack running at the end (to look around; `snapsync local down` with SNAPSYNC_HOME=<its folder> stops it).")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run the whole pipeline for MINUTES under a steady write load, a simulated night every
    half minute or so, and faults (kill -9 and restart of every process, the database killed,
    processes stalled); check every delivery, Data Sync and the logs; print the table.

    Exit code 1 when any invariant was violated (docs/operations.md, "Soak").
    """
    from snapsync.local import LocalStack
    from snapsync.soak.run import Soak

    setup_logging()
    folder = (home or home_dir(config) / "soak").resolve()
    run = Soak(folder, minutes, seed, (lambda m: None) if json_ else (lambda m: err.print(m, highlight=False)),
               fault_every=fault_every)
    try:
        report = run.run()
    finally:
        if not keep:
            LocalStack(folder).down()
    if json_:
        print(json.dumps(report.to_json()))
    else:
        _print(report)
    if not report.ok:
        sys.exit(1)


def _print(report) -> None:
    from rich.table import Table

    t = Table("", "count", title=f"soak: {report.minutes:g} min, seed {report.seed}, {report.nights} nights")
    t.add_row("writes committed", f"{report.writes.get('committed', 0):,}")
    for kind, n in sorted(report.writes.items()):
        if kind != "committed":
            t.add_row(f"  {kind}", f"{n:,}")
    t.add_row("faults injected", f"{sum(report.faults.values())} of {len(report.faults)} kinds")
    for kind, n in sorted(report.faults.items()):
        t.add_row(f"  {kind}", str(n))
    t.add_row("faults checked in `snapsync status`", str(report.status_checks))
    t.add_row("deliveries made", str(sum(report.deliveries.values())))
    for kind, n in sorted(report.deliveries.items()):
        t.add_row(f"  {kind}", str(n))
    for inv, n in report.violations.items():
        t.add_row(f"violations: {inv}", f"[{'red' if n else 'green'}]{n}[/]")
    for role, codes in report.exits.items():
        if codes:
            t.add_row(f"exits (restarted): {role}", ", ".join(map(str, codes)))
    for role, mib in report.memory.items():
        t.add_row(f"memory growth: {role}", "-" if mib is None else f"{mib:+.1f} MiB/h")
    out.print(t)
    for d in report.details[:40]:
        out.print(f"  {d}", highlight=False)
