"""`snapsync connector prepare` (grants, heartbeat and signal tables) on the real MariaDB, and
`snapsync local up --connect`: a real Kafka Connect worker in the local stack."""

from __future__ import annotations

import json
import os
import re

from snapsync.connectors.mysql import connect as db_connect
from snapsync.local import _alive, free_port
from tests.integration.connect_helpers import snapsync, unique


def test_prepare_names_each_missing_grant_with_the_statement(seeded_db, cli_env):
    """A user with SELECT only: exit 2, each missing grant named and the GRANT statements to
    run; once an administrator ran exactly those, prepare finds everything ready (the tables
    are the signal schema's, made by `db migrate`)."""
    u = unique("grants")
    user, password = f"cdc_{u.server_id}", "Pw-secret-4711"
    db = seeded_db.db
    with db_connect(db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT ON `{db.database}`.* TO '{user}'@'127.0.0.1'")
    env = {**cli_env, "SNAPSYNC_DATABASE_URL": f"mysql://{user}:{password}@127.0.0.1:{db.port}/{db.database}",
           "SNAPSYNC_SIGNAL_SCHEMA": seeded_db.signal_schema}
    try:
        r = snapsync(["connector", "prepare"], env)
        assert r.returncode == 2, r.stdout + r.stderr
        message = " ".join(r.stderr.split())
        assert password not in r.stdout + r.stderr
        for needed in ("RELOAD", "SHOW DATABASES", "REPLICATION SLAVE", "REPLICATION CLIENT",
                       "INSERT, UPDATE on snapsync_heartbeat",  # in the signal schema, made by `db migrate`
                       "INSERT, UPDATE on snapsync_debezium_signal"):
            assert needed in message, message
        statements = re.findall(r"GRANT [^;]+;", message)
        assert f"GRANT RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO " \
               f"'{user}'@'127.0.0.1';" in statements, statements
        with db_connect(db, autocommit=True) as conn:
            for statement in statements:  # the printed statements are the fix, as they are
                conn.cursor().execute(statement.rstrip(";"))
        r = snapsync(["connector", "prepare"], env)
        assert r.returncode == 0, r.stderr
        assert f"heartbeat and signal tables ready in `{seeded_db.signal_schema}`" in " ".join(r.stdout.split())
        r = snapsync(["connector", "prepare"], env)  # idempotent
        assert r.returncode == 0 and "ready" in r.stdout, r.stdout + r.stderr
    finally:
        with db_connect(db, autocommit=True) as conn:
            conn.cursor().execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def test_local_up_connect_status_down(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env["SNAPSYNC_HOME"] = str(tmp_path / "home")
    connect_port = free_port()
    up = snapsync(["local", "up", "--connect", "--db-port", str(free_port()), "--kafka-port", str(free_port()),
                   "--connect-port", str(connect_port)], env)
    pid = None
    try:
        assert up.returncode == 0, up.stderr
        assert f"export SNAPSYNC_CONNECT_URL=http://127.0.0.1:{connect_port}" in up.stdout
        st = snapsync(["local", "status", "--json"], env)
        status = json.loads(st.stdout)
        assert st.returncode == 0 and status["running"] and status["connect"] == "up", status
        assert status["connect_url"] == f"http://127.0.0.1:{connect_port}"
        pid = status["connect_pid"]
        text = snapsync(["local", "status"], env)
        assert "connect: up" in text.stdout
        # connector commands use the local worker without --connect-url
        r = snapsync(["connector", "status", "--name", "nothing-here"], env)
        assert r.returncode == 2 and f"worker at http://127.0.0.1:{connect_port}" in r.stderr, r.stderr
        again = snapsync(["local", "up", "--json", "--connect"], env)
        assert json.loads(again.stdout)["connect_pid"] == pid  # idempotent
    finally:
        down = snapsync(["local", "down"], env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert pid and not _alive(pid)
    st = snapsync(["local", "status", "--json"], env)
    assert st.returncode == 1 and json.loads(st.stdout)["connect"] == "off"
    r = snapsync(["connector", "status"], env)
    assert r.returncode == 2 and "no Kafka Connect URL" in r.stderr
