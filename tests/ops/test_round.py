"""The nightly round spread over export workers, on the real broker and database: a dozen
accounts, two schedulers publishing at once, two export workers, one of them killed with
``kill -9`` in the middle of an export. Every account is delivered exactly once, and every
package is whole."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

from snapsync.schemas.schedule import local_to_utc
from snapsync.sinks.delivery import current_delivery
from snapsync.sinks.scheduler import delivery_root
from tests.ops.helpers import accounts_db, free_port, qs, run, spawn, stop, total, wait_ready, wait_until

ACCOUNTS = 12
DAY = dt.date(2026, 3, 9)
AS_OF = "2026-03-09T02:00"  # after the 01:00 slot, before the 09:00 ready-by time (New York)


def package_is_whole(root: Path) -> list[str]:
    """Problems of the current delivery under ``root`` (none: every file is there with the
    size and SHA-256 its manifest says)."""
    current = current_delivery(root)
    if current is None:
        return [f"{root}: no current delivery"]
    problems = []
    manifests = list(current.glob("*/manifest.json"))
    if not manifests:
        problems.append(f"{current}: no manifest")
    for m in manifests:
        manifest = json.loads(m.read_text())
        for f in manifest["files"]:
            path = m.parent / f["file"]
            if not path.is_file() or path.stat().st_size != f["bytes"] or \
                    hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
                problems.append(f"{path}: missing or not as its manifest says")
    if list(root.glob(".staging-*")):
        problems.append(f"{root}: a staging folder is left")
    return problems


def test_two_schedulers_two_workers_one_killed_mid_export_delivers_each_account_once(base_settings, tmp_path):
    s = accounts_db(base_settings, "ops_round", ACCOUNTS, scale=0.01)
    log = tmp_path / "ops.log"
    ports = [free_port(), free_port()]
    workers = [spawn(s, ["export-worker", "--lease", "4", "--metrics-port", str(p)], log) for p in ports]
    schedulers_done = threading.Event()
    try:
        for w, p in zip(workers, ports):
            wait_ready(p, w, log)

        def scheduler_rounds():
            # Two schedulers at once, round after round, until the test has seen every delivery:
            # each slot's job is published once (then again only for the dead worker's slot).
            while not schedulers_done.is_set():
                procs = [spawn(s, ["snapshot", "scheduler", "--once", "--jobs", "--as-of", AS_OF], log)
                         for _ in range(2)]
                for p in procs:
                    assert p.wait(120) == 0, log.read_text()[-3000:]
                schedulers_done.wait(1.0)

        rounds = threading.Thread(target=scheduler_rounds, daemon=True)
        rounds.start()

        # Catch worker 0 in the middle of an export: freeze it while it holds a running claim
        # whose delivery has started, check that it is still running (so the export is not
        # finished), then kill it.
        victim = workers[0]
        exporting = ("SELECT account_id FROM snapsync_export_claim WHERE state='running' AND owner LIKE %s "
                     "AND delivery_id IS NOT NULL")
        owner_like = f"export-worker:%:{victim.pid}:%"
        killed_account = None
        deadline = time.monotonic() + 120
        while killed_account is None and time.monotonic() < deadline:
            if not qs(s, exporting, (owner_like,)):
                time.sleep(0.005)
                continue
            os.kill(victim.pid, signal.SIGSTOP)
            still = qs(s, exporting, (owner_like,))
            if still:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(10)
                killed_account = still[0][0]
            else:
                os.kill(victim.pid, signal.SIGCONT)
        assert killed_account is not None, "worker 0 was never caught mid-export"

        wait_until(lambda: qs(s, "SELECT COUNT(*) FROM snapsync_export_claim WHERE slot_date=%s AND "
                                "state='delivered'", (DAY,))[0][0] == ACCOUNTS,
                   timeout=150, what="every account delivered", every=0.5)
        schedulers_done.set()
        rounds.join(150)

        delivered = dict(qs(s, "SELECT account_id, COUNT(*) FROM snapsync_delivery WHERE slot_date=%s AND "
                              "status='delivered' GROUP BY account_id", (DAY,)))
        assert delivered == {a: 1 for a in range(1, ACCOUNTS + 1)}
        ready = dict(qs(s, "SELECT account_id, COUNT(*) FROM snapsync_notification WHERE kind='snapshot_ready' "
                          "GROUP BY account_id"))
        assert ready == {a: 1 for a in range(1, ACCOUNTS + 1)}
        # the killed worker's attempt: abandoned, and redone by the other worker
        (attempts, owner), = qs(s, "SELECT attempts, owner FROM snapsync_export_claim WHERE account_id=%s AND "
                                  "slot_date=%s", (killed_account, DAY))
        assert attempts == 2 and f":{workers[1].pid}:" in owner
        assert qs(s, "SELECT status FROM snapsync_delivery WHERE account_id=%s ORDER BY delivery_id",
                 (killed_account,)) == [("abandoned",), ("delivered",)]
        for a in range(1, ACCOUNTS + 1):
            assert package_is_whole(delivery_root(s, a)) == []
        # usage for the invoice: each account's delivery counted once, with the recorded rows
        counted = qs(s, "SELECT u.account_id, SUM(u.deliveries), SUM(u.rows_total) = MAX(d.rows_total) FROM "
                        "snapsync_usage_event u JOIN snapsync_delivery d ON u.ref = CONCAT('delivery:', d.delivery_id) "
                        "WHERE u.kind = 'nightly' AND d.status = 'delivered' GROUP BY u.account_id")
        assert {a: (int(n), ok) for a, n, ok in counted} == {a: (1, 1) for a in range(1, ACCOUNTS + 1)}
        assert not qs(s, "SELECT 1 FROM snapsync_notification WHERE kind IN ('snapshot_late', 'snapshot_failed')")
        # the surviving worker's metrics saw its deliveries
        assert total(ports[1], "snapsync_exports_total", outcome="delivered") >= ACCOUNTS / 2
        assert total(ports[1], "snapsync_export_duration_seconds_count") >= ACCOUNTS / 2
        assert total(ports[1], "snapsync_export_rows_sum") > 0
        # a further round publishes nothing: every slot is delivered
        r = run(s, ["snapshot", "scheduler", "--once", "--jobs", "--as-of", AS_OF, "--json"])
        assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr
    finally:
        schedulers_done.set()
        stop(*workers)
    assert local_to_utc(DAY, dt.time(1)) < local_to_utc(DAY, dt.time(2))  # AS_OF is after the slot
