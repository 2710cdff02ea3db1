"""Debezium 3.0.7's MySQL connector on MariaDB 10.11: its known limits, shown, not hidden
(docs/connector.md "Known limits"; FIELD-NOTES "Kafka Connect and Debezium").

These tests assert Debezium's documented behaviour on MariaDB. When a Debezium upgrade (or
the MariaDB connector) fixes a limit, the test fails: update docs/connector.md with it.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from snapsync.connectors.debezium import MYSQL_CONNECTOR, deploy, render
from snapsync.connectors.kafka_connect import ConnectClient
from snapsync.connectors.mysql import connect as db_connect
from snapsync.local import MariaDB, free_port, stop_pid
from snapsync.schemas.config import load_settings
from snapsync.schemas.topics import change_topic, transaction_topic
from snapsync.seed import seed
from tests.conftest import new_database
from tests.integration.connect_helpers import Follower, after_ids, unique
from tests.integration.pipeline import wait_until


@pytest.fixture()
def quiet_db(base_settings, tmp_path):
    """A MariaDB of this test's own, seeded: no other process writes to its binlog. On the
    session's server another test's heartbeats may commit between two of this test's changes,
    and then the row Debezium skips is theirs, not the change the test expects lost."""
    server = MariaDB(tmp_path / "mariadb" / "data", free_port())
    server.start()
    try:
        s = new_database(load_settings(None, database_url=server.url.rsplit("/", 1)[0] + "/limits",
                                       kafka_bootstrap=base_settings.kafka_bootstrap, home=str(tmp_path / "home")))
        with db_connect(s.db) as conn:
            seed(conn, customers=3, scale=0.005, seed_value=7)
        yield s
    finally:
        stop_pid(server.pid or 0, grace=30)


def _update(settings, row_id: int, city: str) -> None:
    with db_connect(settings.db, autocommit=True) as conn:
        conn.cursor().execute("UPDATE patient SET city = %s WHERE id = %s", (city, row_id))


def _wait_offset_moved(client: ConnectClient, name: str, before, timeout: float = 30.0) -> None:
    """Until Connect committed the offset of the change itself (``row`` 1 after its rows event:
    the stored position the limit comes from), not only some later offset of the snapshot's."""
    def committed() -> bool:
        now = client.offsets(name)
        return now != before and any(int((o.get("offset") or {}).get("row") or 0) >= 1 for o in now)

    wait_until(committed, timeout=timeout, what="the connector's offset of the change committed")


def test_restart_loses_the_first_change_after_the_stored_position(connect, quiet_db):
    """Debezium's limit, not ours: after every restart of Debezium 3.0.7's MySqlConnector on
    MariaDB, the first row change after the stored offset is skipped (the offset is stored as
    ``{pos: <end of the last rows event>, row: 1}`` and "Skip 1 rows on streaming start" then
    skips a row of the *next* transaction: MariaDB's GTID event is not taken for a transaction
    start). Two changes made after a restart: only the second arrives.

    Also shown here: ``transaction`` is always null and the transaction topic never appears
    (no transaction metadata from this connector on MariaDB). Production on MariaDB runs
    Debezium's MariaDbConnector, or snapsync's embedded capture.
    """
    u = unique("limit")
    s = quiet_db.model_copy(update={"topic_prefix": u.prefix})
    client = ConnectClient(connect.url)
    # No heartbeat rows in between (an hour apart): the skipped row is then the test's own first
    # change, not a heartbeat row that happened to commit first after the restart.
    deploy(client, render(s, name=u.name, server_id=u.server_id, connector_class=MYSQL_CONNECTOR,
                          heartbeat_ms=3_600_000), wait=90)
    with db_connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT id FROM patient ORDER BY id LIMIT 3")
        a, b, c = (r[0] for r in cur.fetchall())
        cur.execute("SELECT COUNT(*) FROM patient")
        patients = cur.fetchone()[0]
    follower = Follower(s.kafka_bootstrap, change_topic(u.prefix, s.db.database, "patient"))
    try:
        follower.wait_for(lambda m: len(after_ids(m, "r")) >= patients, 90, "the snapshot")
        snapshot_offset = client.offsets(u.name)
        _update(s, a, "Albany")
        msgs = follower.wait_for(lambda m: a in after_ids(m, "u"), 60, "the change before the restart")
        assert all(v["transaction"] is None for _k, v in msgs if v and v["op"] == "u")  # limit (b)
        _wait_offset_moved(client, u.name, snapshot_offset)

        # Stopped (the task shut down, its offset committed), the two changes made, then started
        # again: a restart made while the changes commit could let the old task deliver the first.
        client.stop(u.name)
        wait_until(lambda: client.status(u.name)["connector"]["state"] == "STOPPED"
                   and not client.status(u.name)["tasks"], timeout=60, what="the connector stopped")
        _update(s, b, "Buffalo")  # the first change after the stored position: lost
        _update(s, c, "Cohoes")   # the second: arrives
        client.resume(u.name)
        st = client.wait_status(u.name, 90, "RUNNING")
        assert [s_["state"] for s_ in st["tasks"]] == ["RUNNING"], st
        follower.wait_for(lambda m: c in after_ids(m, "u"), 90, "the second change after the restart")
        follower.settle(3.0)
        updated = after_ids(follower.messages, "u")
        assert c in updated
        assert b not in updated, "Debezium delivered the first change after a restart: the limit is gone, " \
                                 "update docs/connector.md"
    finally:
        follower.close()
        client.delete(u.name)

    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"list-{u.name}"})
    try:
        assert transaction_topic(u.prefix) not in consumer.list_topics(timeout=10).topics  # limit (b)
    finally:
        consumer.close()
