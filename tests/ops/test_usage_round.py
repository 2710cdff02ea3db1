"""Usage counts of the nightly round equal the deliveries, when an export worker is killed with
``kill -9`` in the middle of a delivery: after its package was switched into place and before
its delivery was recorded (the test holds the slot's claim row, so the worker stops exactly
there). Another worker redoes the delivery; the usage counts it once, as the claims do."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time

from snapsync.connectors.mysql import connect
from snapsync.control import usage
from snapsync.sinks.delivery import current_delivery
from snapsync.sinks.scheduler import delivery_root
from tests.ops.helpers import accounts_db, free_port, qs, spawn, stop, total, wait_ready, wait_until
from tests.ops.test_round import package_is_whole

ACCOUNTS = 6
DAY = dt.date(2026, 3, 9)
AS_OF = "2026-03-09T02:00"
#: The statement a worker runs first when it records a delivery (sinks/scheduler.deliver).
RECORDING = "UPDATE snapsync_export_claim SET state='delivered'%"


def test_usage_equals_the_deliveries_when_a_worker_dies_between_the_switch_and_the_record(base_settings, tmp_path):
    s = accounts_db(base_settings, "ops_usage", ACCOUNTS, scale=0.006)
    log = tmp_path / "ops.log"
    ports = [free_port(), free_port()]
    workers = [spawn(s, ["export-worker", "--lease", "4", "--metrics-port", str(p)], log) for p in ports]
    done = threading.Event()
    holder = None
    try:
        for w, p in zip(workers, ports):
            wait_ready(p, w, log)

        def scheduler_rounds():
            while not done.is_set():
                p = spawn(s, ["snapshot", "scheduler", "--once", "--jobs", "--as-of", AS_OF], log)
                assert p.wait(180) == 0, log.read_text()[-3000:]
                done.wait(1.0)

        rounds = threading.Thread(target=scheduler_rounds, daemon=True)
        rounds.start()

        # Hold the claim row of a slot worker 0 is exporting: its export goes on, and its
        # delivery's record waits on the row lock, after the package is in place.
        victim = workers[0]
        owner_like = f"export-worker:%:{victim.pid}:%"
        caught = None
        deadline = time.monotonic() + 120
        while caught is None and time.monotonic() < deadline:
            running = qs(s, "SELECT account_id FROM snapsync_export_claim WHERE state='running' AND owner LIKE %s "
                            "AND delivery_id IS NOT NULL", (owner_like,))
            if not running:
                time.sleep(0.005)
                continue
            holder = connect(s.state)
            cur = holder.cursor()
            cur.execute("SELECT state, owner FROM snapsync_export_claim WHERE account_id=%s AND slot_date=%s AND "
                        "kind='full' FOR UPDATE", (running[0][0], DAY))
            state, owner = cur.fetchone()
            if state == "running" and f":{victim.pid}:" in owner:
                caught = running[0][0]
            else:  # it finished meanwhile: try the next one
                holder.rollback()
                holder.close()
                holder = None
        assert caught is not None, "worker 0 was never caught exporting"
        wait_until(lambda: qs(s, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND "
                                 "INFO LIKE %s", (RECORDING, f"%account_id={caught} %:{victim.pid}:%"))[0][0] > 0,
                   timeout=120, what="the worker recording its delivery")
        switched = current_delivery(delivery_root(s, caught))
        assert switched is not None and package_is_whole(delivery_root(s, caught)) == []  # the package is there
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        holder.rollback()
        holder.close()
        holder = None

        wait_until(lambda: qs(s, "SELECT COUNT(*) FROM snapsync_export_claim WHERE slot_date=%s AND "
                                "state='delivered'", (DAY,))[0][0] == ACCOUNTS,
                   timeout=180, what="every account delivered", every=0.5)
        done.set()
        rounds.join(200)

        # the killed worker's delivery was abandoned and redone: a new package replaced its one
        assert qs(s, "SELECT status FROM snapsync_delivery WHERE account_id=%s ORDER BY delivery_id", (caught,)) == [
            ("abandoned",), ("delivered",)]
        assert current_delivery(delivery_root(s, caught)) != switched
        # usage: one nightly delivery per account, with the rows and bytes of the recorded delivery
        delivered = {r[0]: r[1:] for r in qs(s, "SELECT account_id, rows_total, bytes FROM snapsync_delivery WHERE "
                                                "slot_date=%s AND status='delivered'", (DAY,))}
        counted = {r[0]: r[1:] for r in qs(s, "SELECT account_id, SUM(deliveries), SUM(rows_total), SUM(bytes) FROM "
                                              "snapsync_usage_event WHERE kind='nightly' GROUP BY account_id")}
        assert counted == {a: (1, *delivered[a]) for a in range(1, ACCOUNTS + 1)}
        for a in range(1, ACCOUNTS + 1):
            march = usage.account_usage(s, a, dt.date(2026, 3, 1))
            assert march["billable"]["deliveries"] == 1 and march["billable"]["rows"] == delivered[a][0]
        # the survivor's counter counted what it delivered, once each
        survivor = qs(s, "SELECT COUNT(*) FROM snapsync_export_claim WHERE slot_date=%s AND owner LIKE %s",
                      (DAY, f"export-worker:%:{workers[1].pid}:%"))[0][0]
        assert total(ports[1], "snapsync_usage_total", kind="nightly", measure="deliveries") == survivor
    finally:
        done.set()
        if holder is not None:
            holder.rollback()
            holder.close()
        stop(*workers)
