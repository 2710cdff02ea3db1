"""``snapsync demo``: the main job on the local default, end to end.

Starts the local stack, seeds a small practice database, and runs each stage of the
pipeline that exists, printing what it did and where the results are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from schemas.config import load_settings
from snapsync.db import connect, ensure_database
from snapsync.local import LocalStack
from snapsync.seed import seed


def run_demo(home: Path, say: Callable[[str], None], customers: int = 3, scale: float = 0.01) -> dict:
    """Run the demo; returns a summary (paths, counts)."""
    stack = LocalStack(home)
    st = stack.up()
    say(f"1. local stack up: MariaDB {st.database_url} (binlog ROW/FULL), Tansu broker {st.kafka_bootstrap}")
    settings = load_settings(None, database_url=st.database_url, kafka_bootstrap=st.kafka_bootstrap, home=str(home))
    ensure_database(settings.db)
    with connect(settings.db) as conn:
        p = seed(conn, customers=customers, scale=scale, seed_value=1)
    say(f"2. seeded {p.total_rows:,} rows of synthetic practice data for {customers} customers "
        f"in {len(p.counts)} data sets (`snapsync catalog` lists them)")
    summary = {"database_url": st.database_url, "kafka_bootstrap": st.kafka_bootstrap, "rows": p.total_rows}
    say(f"stop the local stack with `snapsync local down` (data stays in {stack.root})")
    return summary
