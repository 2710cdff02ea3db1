"""`snapsync usage`: an account's usage of a month, for the billing team's invoice run."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, out, settings


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)


def usage(
    account: Annotated[Optional[int], typer.Option(help="Account id (default: every account with usage that month).", min=1)] = None,
    month: Annotated[Optional[str], typer.Option(help="The New York month, YYYY-MM (default: this month).")] = None,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV: one line per account and kind, and each account's billable total.")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Deliveries, rows, bytes, data sets and sync items applied in a month: nightly and manual
    deliveries, Data Sync and Data Copy items (billable), and Download Samples (free).

    Counts are exact across crashes and retries: each delivery and each application is
    counted once, where it is recorded."""
    from snapsync.control import usage as metering
    from snapsync.schemas.errors import ConfigError

    if json_ and csv_:
        raise ConfigError("--json and --csv: choose one output format")
    try:
        chosen = metering.parse_month(month) if month is not None else metering.this_month()
    except ConfigError:
        raise ConfigError("--month: give a month as YYYY-MM (e.g. 2026-03)") from None
    summaries = metering.invoice_usage(settings(config), chosen, account)
    if csv_:
        print(metering.to_csv(summaries), end="")
        return
    if json_:
        print(json.dumps(summaries[0] if account is not None else summaries))
        return
    if not summaries:
        out.print(f"no usage recorded in {chosen:%Y-%m}", highlight=False)
    for s in summaries:
        b, free = s["billable"], s["free"]
        out.print(f"account {s['account_id']}, {s['month']}: {b['deliveries']} delivery(ies), {b['rows']:,} rows, "
                  f"{b['bytes']:,} bytes, {b['data_sets']} data set(s), {b['sync_items']} sync item(s) applied; "
                  f"{free['samples']} sample(s) (free)", highlight=False, markup=False)
        for kind, c in s["by_kind"].items():
            if any(c.values()):
                out.print(f"  {kind}: " + ", ".join(f"{k} {v:,}" for k, v in c.items() if v), highlight=False,
                          markup=False)
