"""Outages: the database (a private server stopped and started again) and the broker (paused)
go away for longer than one reconnect while capture and the worker run as processes. Both
wait with back-off and carry on; no change is lost. On the main of 2026-11-24 the worker
exited on the first database call of the outage (the RetriableError of `connect()` was
not retried) and capture exited with a traceback."""

from __future__ import annotations

import os
import signal
import time

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import sync_groups
from snapsync.local import MariaDB, free_port, stop_pid
from snapsync.schemas.config import load_settings
from snapsync.seed import seed
from tests.integration.capture_helpers import start_capture_process, wait_caught_up
from tests.integration.pipeline import q, start_worker, stop, wait_until
from tests.conftest import new_database


@pytest.fixture(scope="module")
def private(base_settings, broker, tmp_path_factory):
    """A MariaDB of this module's own (it is stopped and started), capture and a worker."""
    root = tmp_path_factory.mktemp("outage")
    server = MariaDB(root / "mariadb" / "data", free_port())
    server.start()
    s = load_settings(None, database_url=server.url.rsplit("/", 1)[0] + "/outage",
                      kafka_bootstrap=base_settings.kafka_bootstrap, home=str(root / "home"), topic_prefix="outage")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.004, seed_value=5, accounts=1)
    sync_groups.set_service(s, 1, True)
    sync_groups.add_group(s, 1, (3,), ("codes",), "override")
    procs = {"capture": start_capture_process(s, "outage", root / "capture.log")}
    wait_caught_up(s, "outage")
    procs["worker"] = start_worker(s, root / "worker.log")
    yield s, server, procs, root
    for p in procs.values():
        stop(p)
    stop_pid(server.pid or 0, grace=30)


def synced(s, code: str, text: str) -> bool:
    try:
        return q(s, "SELECT description FROM cpt_code WHERE customer_id = 3 AND code = %s", (code,)) == ((text,),)
    except Exception:  # noqa: BLE001 - the server may still be starting
        return False


def test_database_outage_is_waited_out(private):
    s, server, procs, root = private
    code = q(s, "SELECT code FROM cpt_code WHERE customer_id = 1 ORDER BY id LIMIT 1")[0][0]
    q(s, "UPDATE cpt_code SET description = 'before the outage' WHERE customer_id = 1 AND code = %s", (code,))
    wait_until(lambda: synced(s, code, "before the outage"), what="an edit before the outage")
    stop_pid(server.pid or 0, grace=30)
    time.sleep(15)  # several reconnect attempts of every process
    assert procs["worker"].poll() is None and procs["capture"].poll() is None
    server.start()
    q(s, "UPDATE cpt_code SET description = 'after the outage' WHERE customer_id = 1 AND code = %s", (code,))
    wait_until(lambda: synced(s, code, "after the outage"), timeout=90, what="an edit after the outage")
    assert procs["worker"].poll() is None and procs["capture"].poll() is None
    for log in ("worker.log", "capture.log"):
        assert "Traceback" not in (root / log).read_text(errors="replace"), log


def test_broker_outage_is_waited_out(private, broker):
    s, _server, procs, root = private
    code = q(s, "SELECT code FROM cpt_code WHERE customer_id = 1 ORDER BY id LIMIT 1 OFFSET 1")[0][0]
    os.kill(broker.pid, signal.SIGSTOP)  # the broker stops answering (its topics are kept)
    try:
        q(s, "UPDATE cpt_code SET description = 'during the broker outage' WHERE customer_id = 1 AND code = %s",
          (code,))
        time.sleep(15)
        assert procs["worker"].poll() is None and procs["capture"].poll() is None
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    wait_until(lambda: synced(s, code, "during the broker outage"), timeout=120, what="the edit made in the outage")
    assert procs["worker"].poll() is None and procs["capture"].poll() is None
