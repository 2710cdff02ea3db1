"""Full snapshot export beside the reference dump tools, on both paths and the same data.

* **Remote path** (the production one): a source server that cannot write where the exporter
  reads (``secure_file_priv`` elsewhere, as a managed MySQL or another container), holding a
  copy of the bench data. snapsync reads over the wire (``sinks/parallel_reader.py``);
  references ``mydumper -t 2`` and ``mariadb-dump --single-transaction``, run against it.
* **Same host**: the bench server, which writes the rows itself (``INTO OUTFILE``);
  references ``mariadb-dump --tab`` and ``mydumper -t 2``.

snapsync is timed through the CLI as a user runs it (``snapsync snapshot export``: process start
included) and in-process; on 8 customers and on 14 (two data sets). On the remote path, also
sealed packages (issue 23: every file encrypted to an age recipient or an OpenPGP key, a
signed digest) beside the same export unsealed. Each timing is the best of
``REPEAT`` runs; a ratio is reference time / snapsync time (above 1: snapsync is faster). The
goals (issue 20) are printed beside each ratio.

Run: ``.venv/bin/python -m bench.snapshot_bench``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_HOME, bench_settings, report
from snapsync.control.migrate import migrate
from snapsync.local import MariaDB, free_port, stop_pid
from snapsync.connectors.crypto import parse_recipient
from snapsync.schemas.config import load_settings, settings_env
from snapsync.sinks.export import ExportRequest, export_snapshot

REPEAT = int(os.environ.get("SNAPSYNC_BENCH_REPEAT", "3"))
SIZES = tuple(int(n) for n in os.environ.get("SNAPSYNC_BENCH_SNAPSHOT_CUSTOMERS", "8,14").split(","))
BIN = str(Path(sys.executable).with_name("snapsync"))
#: Issue 20's goals: reference / snapsync at least this.
GOALS = {"remote_dat_per_customer_vs_mydumper": 1.0, "remote_mysql_per_customer_vs_mydumper": 1.0,
         "same_host_dat_per_customer_vs_mariadb_dump_tab": 1.0, "same_host_mysql_per_customer_vs_mydumper": 1.0}


def best(fn) -> float:
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def remote_copy(s, work: Path):
    """A second server whose ``secure_file_priv`` is a folder of its own, with a copy of the data."""
    files = work / "server-files"
    files.mkdir()
    server = MariaDB(Path(BENCH_HOME).resolve() / f"remote-{s.db.database}" / "data", free_port(), server_id=3,
                     secure_file_priv=str(files))
    shutil.rmtree(server.datadir.parent, ignore_errors=True)
    server.start()
    url = f"mysql://root@127.0.0.1:{server.port}/{s.db.database}"
    remote = load_settings(None, database_url=url, kafka_bootstrap=s.kafka_bootstrap, home=str(BENCH_HOME))
    dump = subprocess.Popen(["mariadb-dump", f"-h{s.db.host}", f"-P{s.db.port}", f"-u{s.db.user}", "--protocol=TCP",
                             "--single-transaction", "--quick", s.db.database], stdout=subprocess.PIPE)
    subprocess.run(["mariadb", "-h127.0.0.1", f"-P{server.port}", "-uroot", "--protocol=TCP", "-e",
                    f"CREATE DATABASE `{s.db.database}`"], check=True)
    subprocess.run(["mariadb", "-h127.0.0.1", f"-P{server.port}", "-uroot", "--protocol=TCP", s.db.database],
                   stdin=dump.stdout, check=True)
    dump.wait()
    migrate(remote)  # its state store (an export records its usage there)
    return server, remote


def references(db, work: Path, tab: bool) -> dict[str, float]:
    conn_args = [f"-h{db.host}", f"-P{db.port}", f"-u{db.user}", "--protocol=TCP"]

    def mariadb_tab():
        d = work / "tab"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        os.chmod(d, 0o777)  # the server writes --tab files itself
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

    out = {"mydumper_t2": best(mydumper), "mariadb_dump_single_transaction": best(single_tx)}
    if tab:
        out["mariadb_dump_tab"] = best(mariadb_tab)
    return out


def ours(s, customers: list[int], work: Path, fmt: str, packaging: str) -> dict[str, float]:
    """(CLI, in-process) seconds of one export."""
    out = work / f"ours-{fmt}-{packaging}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env.update(settings_env(s))
    cli = [BIN, "snapshot", "export", "--customers", ",".join(map(str, customers)), "--format", fmt,
           "--packaging", packaging, "--out", str(out), "--json"]
    return {"cli": best(lambda: subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)),
            "in_process": best(lambda: export_snapshot(s, ExportRequest(customers, fmt, packaging), out))}


def receivers(work: Path) -> dict[str, str]:
    """An age recipient and an OpenPGP public key (ed25519 + cv25519) made for the bench."""
    subprocess.run(["age-keygen", "-o", str(work / "age.txt")], check=True, capture_output=True)
    age = next(ln.split(": ")[1] for ln in (work / "age.txt").read_text().splitlines() if "public key" in ln)
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", str(home), "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "Bench <bench@example.test>", "ed25519", "sign", "1y"], check=True)
    fpr = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True,
                         text=True).stdout.split("fpr:::::::::")[1].split(":")[0]
    subprocess.run([*gpg, "--quick-add-key", fpr, "cv25519", "encr", "1y"], check=True)
    key = subprocess.run([*gpg, "--armor", "--export", fpr], check=True, capture_output=True, text=True).stdout
    return {"age": age, "openpgp": key}


def sealed(s, customers: list[int], work: Path) -> dict[str, float]:
    """In-process seconds of the .DAT per-customer export sealed to each kind of recipient."""
    out = {}
    for kind, key in receivers(work).items():
        req = ExportRequest(customers, "dat", "per-customer", recipient=parse_recipient(key))
        out[kind] = best(lambda: export_snapshot(s, req, work / f"sealed-{kind}"))
    return out


def measure(s, work: Path, path: str) -> dict:
    customers = sorted(int(c) for c in _customers(s))
    export_snapshot(s, ExportRequest(customers, "dat", "combined"), work / "warm")  # warm the cache
    t = {"references": references(s.db, work, tab=path == "same_host")}
    for fmt in ("dat", "mysql"):
        for packaging in ("per-customer", "combined"):
            t[f"{fmt}_{packaging.replace('-', '_')}"] = ours(s, customers, work, fmt, packaging)
    ref = t["references"]
    ratios = {}
    for key, ref_name in (("dat", "mariadb_dump_tab" if path == "same_host" else "mydumper_t2"),
                          ("mysql", "mydumper_t2")):
        for packaging in ("per_customer", "combined"):
            for how in ("cli", "in_process"):
                name = f"{path}_{key}_{packaging}_vs_{ref_name.removesuffix('_t2')}" + ("" if how == "cli" else
                                                                                        "_in_process")
                ratios[name] = round(ref[ref_name] / t[f"{key}_{packaging}"][how], 2)
    if path == "remote":
        for packaging in ("per_customer", "combined"):
            ratios[f"remote_mysql_{packaging}_vs_mariadb_dump"] = round(
                ref["mariadb_dump_single_transaction"] / t[f"mysql_{packaging}"]["cli"], 2)
        t["dat_per_customer_sealed"] = sealed(s, customers, work)
        for kind, seconds in t["dat_per_customer_sealed"].items():  # below 1: what sealing costs
            ratios[f"remote_dat_per_customer_sealed_{kind}_vs_unsealed_in_process"] = round(
                t["dat_per_customer"]["in_process"] / seconds, 2)
    return {"seconds": {k: ({kk: round(vv, 2) for kk, vv in v.items()}) for k, v in t.items()}, "ratios": ratios}


def _customers(s) -> list[int]:
    from snapsync.connectors.mysql import connect

    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT customer_id FROM customer ORDER BY customer_id")
        return [r[0] for r in cur.fetchall()]


def cli_start() -> dict:
    """Seconds of ``snapsync --help`` (best of 5): the CLI's start, before any work."""
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([BIN, "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return {"help_seconds": round(min(times), 3), "goal_seconds": 0.3}


def main() -> None:
    result: dict = {"repeat": REPEAT, "cli_start": cli_start(), "goals": GOALS}
    for n in SIZES:
        s = bench_settings(f"bench{n}" if n != 14 else "bench", customers=n)
        work = Path(tempfile.mkdtemp(prefix="snapsync-bench-"))
        os.chmod(work, 0o777)
        server, remote = remote_copy(s, work)
        try:
            result[f"customers_{n}"] = {"same_host": measure(s, work, "same_host"),
                                        "remote": measure(remote, work, "remote")}
        finally:
            stop_pid(server.pid or 0, grace=30)
            shutil.rmtree(server.datadir.parent, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
    report("snapshot", result)
    print("\ngoals (issue 20): reference / snapsync at least")
    for n in SIZES:
        for path in ("same_host", "remote"):
            for name, value in result[f"customers_{n}"][path]["ratios"].items():
                goal = next((g for k, g in GOALS.items() if name.startswith(k.split("_vs_")[0])
                             and "in_process" not in name and name.endswith(k.split("_vs_")[1])), None)
                print(f"  {n:>2} customers {name:<60} {value:>6.2f}" + (f"   goal {goal}" if goal else ""))


if __name__ == "__main__":
    main()
