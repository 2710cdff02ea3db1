"""Full snapshot export beside the reference dump tools, on the same ~1M-row database.

.DAT: ``snapsync snapshot export --format dat`` (per-customer and combined, every
customer) beside ``mariadb-dump --tab`` (server-side INTO OUTFILE: the reference).
MySQL format: ``--format mysql`` beside ``mydumper -t 2 -r 100000`` and
``mariadb-dump --single-transaction``. Each timing is the best of ``REPEAT`` runs; the
ratio is reference time / snapsync time (above 1: snapsync is faster).

Run: ``.venv/bin/python -m bench.snapshot_bench``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import CUSTOMERS, bench_settings, report
from snapsync.sinks.export import ExportRequest, export_snapshot

REPEAT = int(os.environ.get("SNAPSYNC_BENCH_REPEAT", "3"))


def best(fn) -> float:
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    s = bench_settings()
    db = s.db
    work = Path(tempfile.mkdtemp(prefix="snapsync-bench-"))
    os.chmod(work, 0o777)  # the server writes --tab files itself
    conn_args = [f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP"]
    customers = list(range(1, CUSTOMERS + 1))

    def tab():
        d = work / "tab"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        os.chmod(d, 0o777)
        subprocess.run(["mariadb-dump", *conn_args, "--single-transaction", f"--tab={d}", db.database],
                       check=True, stdout=subprocess.DEVNULL)

    def single_tx():
        with open(work / "dump.sql", "wb") as f:
            subprocess.run(["mariadb-dump", *conn_args, "--single-transaction", "--quick", db.database],
                           check=True, stdout=f)

    def mydumper():
        d = work / "mydumper"
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["mydumper", "-h", db.host, "-P", str(db.port), "-u", db.user, "-B", db.database,
                        "-t", "2", "-r", "100000", "--trx-consistency-only", "-o", str(d)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ours(fmt: str, packaging: str):
        return lambda: export_snapshot(s, ExportRequest(customers, fmt, packaging), work / f"ours-{fmt}")

    rows = export_snapshot(s, ExportRequest(customers, "dat", "combined"), work / "warm").rows  # warm the cache
    t = {
        "mariadb_dump_tab": best(tab),
        "snapsync_dat_combined": best(ours("dat", "combined")),
        "snapsync_dat_per_customer": best(ours("dat", "per-customer")),
        "mydumper_t2": best(mydumper),
        "mariadb_dump_single_transaction": best(single_tx),
        "snapsync_mysql_combined": best(ours("mysql", "combined")),
        "snapsync_mysql_per_customer": best(ours("mysql", "per-customer")),
    }
    shutil.rmtree(work, ignore_errors=True)
    report("snapshot", {
        "rows": rows, "customers": CUSTOMERS, "repeat": REPEAT,
        "seconds": {k: round(v, 2) for k, v in t.items()},
        "ratios_reference_over_snapsync": {
            "dat_combined_vs_mariadb_dump_tab": round(t["mariadb_dump_tab"] / t["snapsync_dat_combined"], 2),
            "dat_per_customer_vs_mariadb_dump_tab": round(t["mariadb_dump_tab"] / t["snapsync_dat_per_customer"], 2),
            "mysql_combined_vs_mydumper": round(t["mydumper_t2"] / t["snapsync_mysql_combined"], 2),
            "mysql_per_customer_vs_mydumper": round(t["mydumper_t2"] / t["snapsync_mysql_per_customer"], 2),
            "mysql_combined_vs_mariadb_dump": round(t["mariadb_dump_single_transaction"] / t["snapsync_mysql_combined"], 2),
        },
    })


if __name__ == "__main__":
    main()
