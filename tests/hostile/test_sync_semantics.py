"""Data Sync chains, cycles and undo, on the real pipeline. On the main of 2026-11-24 an
edit in 1 reached 4 but never 7 (groups 1 -> 4 -> 7), yet after a worker kill -9 during a
bulk edit some did (replayed echo markers); and `sync undo` of an early command silently
threw away later edits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import sync_groups
from tests.integration.pipeline import q, running_pipeline, start_worker, wait_until
from tests.conftest import db_env, qs, sig

BIN = str(Path(sys.executable).with_name("snapsync"))


@pytest.fixture(scope="module")
def env(base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("chain"), "chain", customers=7, seed_value=31,
                          accounts=1, before_start=lambda s: sync_groups.set_service(s, 1, True)) as running:
        yield running


def desc(s, customer: int, code: str):
    rows = q(s, "SELECT description FROM icd_code WHERE customer_id = %s AND code = %s", (customer, code))
    return rows[0][0] if rows else None


def applied(s) -> int:
    return q(s, f"SELECT COUNT(*) FROM {sig(s, 'snapsync_sync_applied')}")[0][0]


def quiet(s, seconds: float = 3.0) -> int:
    """Wait until no command has been applied for ``seconds``; returns the count."""
    last, since = applied(s), time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.3)
        now = applied(s)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_chain_propagates_and_survives_a_kill_9(env):
    s, log, workers = env
    groups = [sync_groups.add_group(s, 1, (4,), ("codes",), "override"),
              sync_groups.add_group(s, 4, (7,), ("codes",), "override")]
    try:
        codes = [r[0] for r in q(s, "SELECT code FROM icd_code WHERE customer_id = 1 ORDER BY id LIMIT 40")]
        q(s, "UPDATE icd_code SET description = 'chain edit' WHERE customer_id = 1 AND code = %s", (codes[0],))
        wait_until(lambda: desc(s, 7, codes[0]) == "chain edit", timeout=60, what="the edit of 1 in 7")
        assert desc(s, 4, codes[0]) == "chain edit"
        # a bulk edit with the worker killed in the middle: the same end state
        edits = [(n, code) for n in range(6) for code in codes]  # every code edited six times
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            for i, (n, code) in enumerate(edits):
                cur.execute("UPDATE icd_code SET description = %s WHERE customer_id = 1 AND code = %s",
                            (f"bulk {n}", code))
                if i == len(edits) // 2:
                    workers[0].send_signal(signal.SIGKILL)
                    workers[0].wait()
        assert workers[0].poll() is not None, "the worker was not killed"
        workers[0] = start_worker(s, log)
        for code in codes:
            wait_until(lambda: desc(s, 7, code) == "bulk 5" and desc(s, 4, code) == "bulk 5", timeout=90,
                       what=f"the last bulk edit of {code} in 4 and 7")
    finally:
        for g in groups:
            sync_groups.delete_group(s, g.group_id)


def test_cycle_converges_and_goes_quiet(env):
    s, _log, _workers = env
    groups = [sync_groups.add_group(s, 1, (4,), ("codes",), "override"),
              sync_groups.add_group(s, 4, (7,), ("codes",), "override"),
              sync_groups.add_group(s, 7, (1,), ("codes",), "override")]
    try:
        code = q(s, "SELECT code FROM icd_code WHERE customer_id = 1 ORDER BY id LIMIT 1 OFFSET 2")[0][0]
        before = quiet(s)
        q(s, "UPDATE icd_code SET description = 'round the cycle' WHERE customer_id = 1 AND code = %s", (code,))
        wait_until(lambda: desc(s, 7, code) == "round the cycle" and desc(s, 4, code) == "round the cycle",
                   timeout=60, what="the edit round the cycle")
        assert quiet(s) == before + 2  # 1 -> 4 and 4 -> 7; 7 -> 1 stops: 1 is where it began
        q(s, "UPDATE icd_code SET description = 'from the middle' WHERE customer_id = 4 AND code = %s", (code,))
        wait_until(lambda: desc(s, 1, code) == "from the middle" and desc(s, 7, code) == "from the middle",
                   timeout=60, what="an edit of 4 round the cycle")
        assert quiet(s) == before + 4
        assert {desc(s, c, code) for c in (1, 4, 7)} == {"from the middle"}
    finally:
        for g in groups:
            sync_groups.delete_group(s, g.group_id)


def test_undo_refuses_when_the_item_changed_since(env):
    s, _log, _workers = env
    g = sync_groups.add_group(s, 1, (3,), ("codes",), "override")
    try:
        code = q(s, "SELECT code FROM icd_code WHERE customer_id = 1 ORDER BY id LIMIT 1 OFFSET 5")[0][0]
        q(s, "UPDATE icd_code SET description = 'first sync' WHERE customer_id = 1 AND code = %s", (code,))
        wait_until(lambda: desc(s, 3, code) == "first sync", what="the first synced edit")
        first = qs(s, "SELECT MAX(audit_id) FROM snapsync_audit WHERE entity = 'sync_apply' AND action = 'override'")[0][0]
        q(s, "UPDATE icd_code SET description = 'second sync' WHERE customer_id = 1 AND code = %s", (code,))
        wait_until(lambda: desc(s, 3, code) == "second sync", what="the second synced edit")
        q(s, "UPDATE icd_code SET active = 0 WHERE customer_id = 3 AND code = %s", (code,))  # a local edit
        env_vars = {**os.environ, **db_env(s),
                    "SNAPSYNC_KAFKA_BOOTSTRAP": s.kafka_bootstrap}
        r = subprocess.run([BIN, "sync", "undo", str(first)], capture_output=True, text=True, env=env_vars)
        assert r.returncode == 2 and "changed after this application" in r.stderr
        assert "description" in r.stderr and "active" in r.stderr and "--force" in r.stderr
        assert desc(s, 3, code) == "second sync"  # nothing thrown away
        r = subprocess.run([BIN, "sync", "undo", str(first), "--force"], capture_output=True, text=True, env=env_vars)
        assert r.returncode == 0, r.stderr
        assert desc(s, 3, code) != "second sync"
    finally:
        sync_groups.delete_group(s, g.group_id)
