"""Shared set-up for benchmarks: a private stack in .snapsync/bench and the ~1M-row data set."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from snapsync.connectors.mysql import connect, ensure_database
from snapsync.local import LocalStack
from snapsync.schemas.config import Settings, load_settings
from snapsync.seed import plan, seed

BENCH_HOME = Path(os.environ.get("SNAPSYNC_BENCH_HOME", ".snapsync/bench"))
CUSTOMERS = int(os.environ.get("SNAPSYNC_BENCH_CUSTOMERS", "14"))
SCALE = float(os.environ.get("SNAPSYNC_BENCH_SCALE", "1"))
RESULTS = Path("bench/results")


def stack_settings(database: str, **extra) -> Settings:
    """Settings for ``database`` (created if missing) on the bench stack (started if needed),
    with a state store and signal schema of its own beside it (migrated)."""
    from snapsync.control.migrate import migrate

    st = LocalStack(BENCH_HOME).up()
    server = st.database_url.rsplit("/", 1)[0]
    extra.setdefault("state_url", f"{server}/{database}_state")
    extra.setdefault("signal_schema", f"{database}_signal")
    s = load_settings(None, database_url=f"{server}/{database}", kafka_bootstrap=st.kafka_bootstrap,
                      home=str(BENCH_HOME), **extra)
    ensure_database(s.db)
    migrate(s)
    return s


def bench_settings(database: str = "bench", customers: int = CUSTOMERS, **extra) -> Settings:
    """The bench stack (started if needed) and a database seeded with the large data set
    (``customers`` of scale ``SCALE``)."""
    s = stack_settings(database, **extra)
    expected = plan(customers, SCALE).counts["patient"] * customers
    with connect(s.db) as conn:
        cur = conn.cursor()
        try:
            cur.execute("SELECT COUNT(*) FROM patient")
            have = cur.fetchone()[0]
        except Exception:  # noqa: BLE001 - no schema yet
            have = -1
        if have != expected:
            t = time.monotonic()
            p = seed(conn, customers, SCALE, 1, accounts=1)  # one billing service owning every customer
            print(f"seeded {p.total_rows:,} rows in {time.monotonic() - t:.1f}s")
    return s


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def report(name: str, result: dict) -> None:
    """Print the result and keep it in bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
