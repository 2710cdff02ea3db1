"""`snapsync connector ...` against the real Kafka Connect worker with the real Debezium 3.0.7
MySQL connector (the session's ``connect`` fixture), on a fresh seeded database each.

Only the 409-storm and 503 answers, which a healthy single worker cannot be made to give on
demand, come from a tiny local HTTP server (``test_retries_...``; its docstring says why).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from snapsync.connectors.debezium import MARIADB_CONNECTOR, MYSQL_CONNECTOR, render
from snapsync.connectors.kafka_connect import ConnectClient
from snapsync.connectors.mysql import connect as db_connect
from snapsync.local import free_port
from snapsync.schemas.errors import NotFoundError, RetriableError
from snapsync.schemas.topics import change_topic
from tests.integration.connect_helpers import Follower, after_ids, snapsync, unique, user_env


def _scalar(settings, sql: str, args=()):
    with db_connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchone()[0]


def test_deploy_events_and_lifecycle(connect, seeded_db, cli_env):
    """deploy (prepare, validate, create, wait RUNNING), the snapshot and a streamed change on the
    broker, status, pause, resume, restart, delete: each command as a user runs it."""
    u = unique("life")
    env = user_env(cli_env, seeded_db, connect.url, u.prefix)
    started = time.monotonic()
    r = snapsync(["connector", "deploy", "--connector-class", "mysql", "--name", u.name,
                  "--server-id", str(u.server_id), "--wait", "90"], env)
    deploy_s = time.monotonic() - started
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"connector {u.name} created" in r.stdout and "task 0: RUNNING" in r.stdout, r.stdout
    assert "password" not in r.stdout + r.stderr
    print(f"deploy to RUNNING: {deploy_s:.1f}s")
    # prepare ran inside deploy and found both tables (made by `db migrate`) in the signal schema
    assert _scalar(seeded_db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                   "TABLE_NAME IN ('snapsync_heartbeat', 'snapsync_debezium_signal')", (seeded_db.signal_schema,)) == 2

    patients = _scalar(seeded_db, "SELECT COUNT(*) FROM patient")
    first = _scalar(seeded_db, "SELECT MIN(id) FROM patient")
    topic = change_topic(u.prefix, seeded_db.db.database, "patient")
    follower = Follower(seeded_db.kafka_bootstrap, topic)
    try:
        msgs = follower.wait_for(lambda m: len(after_ids(m, "r")) >= patients, 90, f"{patients} snapshot rows")
        assert sorted(after_ids(msgs, "r")) == sorted(set(after_ids(msgs, "r")))
        key, value = next(m for m in msgs if m[1]["after"]["id"] == first)
        assert key == {"id": first} and value["source"]["db"] == seeded_db.db.database
        assert isinstance(value["after"]["balance"], str)  # decimal.handling.mode=string
        with db_connect(seeded_db.db, autocommit=True) as conn:
            conn.cursor().execute("UPDATE patient SET city = 'Albany' WHERE id = %s", (first,))
        follower.wait_for(lambda m: first in after_ids(m, "u"), 60, "the streamed update")
    finally:
        follower.close()

    r = snapsync(["connector", "status", "--name", u.name, "--json"], env)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["state"] == "RUNNING" and [t["state"] for t in st["tasks"]] == ["RUNNING"]

    r = snapsync(["connector", "pause", "--name", u.name], env)
    assert r.returncode == 0 and "task 0: PAUSED" in r.stdout, r.stdout + r.stderr
    r = snapsync(["connector", "status", "--name", u.name], env)
    assert r.returncode == 1 and f"{u.name}: PAUSED" in r.stdout  # exit 1: not running
    r = snapsync(["connector", "resume", "--name", u.name], env)
    assert r.returncode == 0 and "task 0: RUNNING" in r.stdout, r.stdout + r.stderr
    started = time.monotonic()
    r = snapsync(["connector", "restart", "--name", u.name], env)
    assert r.returncode == 0 and "task 0: RUNNING" in r.stdout, r.stdout + r.stderr
    print(f"restart to RUNNING: {time.monotonic() - started:.1f}s")
    offsets = ConnectClient(connect.url).offsets(u.name)
    assert offsets and offsets[0]["partition"] == {"server": u.prefix} and "pos" in offsets[0]["offset"]

    r = snapsync(["connector", "delete", "--name", u.name], env)
    assert r.returncode == 0 and "deleted" in r.stdout, r.stdout + r.stderr
    assert u.name not in ConnectClient(connect.url).connectors()
    r = snapsync(["connector", "status", "--name", u.name], env)
    assert r.returncode == 2 and f"connector '{u.name}' is not on the Kafka Connect worker" in r.stderr


def test_validate_reports_each_field_from_the_worker(connect, seeded_db, cli_env, tmp_path):
    """A wrong password and a missing field: the worker's own per-field answers, exit 2."""
    u = unique("val")
    env = user_env(cli_env, seeded_db, connect.url, u.prefix)
    connector = render(seeded_db, name=u.name, server_id=u.server_id, connector_class=MYSQL_CONNECTOR)
    connector["config"]["database.password"] = "not-the-password-42"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(connector))
    r = snapsync(["connector", "validate", "--file", str(bad)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "invalid: database.hostname: Unable to connect: Access denied" in r.stderr, r.stderr
    assert "not-the-password-42" not in r.stdout + r.stderr
    r = snapsync(["connector", "deploy", "--file", str(bad), "--wait", "0"], env)
    assert r.returncode == 2 and "Kafka Connect rejected the connector config" in r.stderr, r.stderr
    assert u.name not in ConnectClient(connect.url).connectors()

    # A missing required field, as the worker reports it (the local check would catch it first).
    cfg = render(seeded_db, name=u.name, server_id=u.server_id, connector_class=MYSQL_CONNECTOR)["config"]
    del cfg["topic.prefix"], cfg["name"]
    problems = ConnectClient(connect.url).validate(cfg, u.name)  # `name` added: real Connect needs it inside
    assert problems == ["topic.prefix: The 'topic.prefix' value is invalid: A value is required"], problems
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(cfg))
    r = snapsync(["connector", "validate", "--file", str(bare)], env)
    assert r.returncode == 2 and "invalid: topic.prefix: missing (required)" in r.stderr, r.stderr

    good = tmp_path / "good.json"
    good.write_text(json.dumps(render(seeded_db, name=u.name, server_id=u.server_id,
                                      connector_class=MYSQL_CONNECTOR)))
    r = snapsync(["connector", "validate", "--file", str(good)], env)
    assert r.returncode == 0 and "connector config is valid" in r.stdout, r.stderr


def test_render_picks_the_class_for_the_server(connect, seeded_db, cli_env):
    """MariaDB answers VERSION() with "-MariaDB": Debezium's MariaDB connector; --connector-class
    overrides; deploying a class the worker does not have is refused by the worker's plugin list."""
    u = unique("cls")
    env = user_env(cli_env, seeded_db, connect.url, u.prefix)
    r = snapsync(["connector", "render", "--name", u.name], env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["connector.class"] == MARIADB_CONNECTOR
    assert "MariaDB" in r.stderr
    r = snapsync(["connector", "render", "--connector-class", "mysql"], env)
    assert json.loads(r.stdout)["config"]["connector.class"] == MYSQL_CONNECTOR
    r = snapsync(["connector", "render", "--connector-class", "not a class"], env)
    assert r.returncode == 2 and "use mysql, mariadb" in r.stderr
    r = snapsync(["connector", "deploy", "--name", u.name, "--server-id", str(u.server_id)], env)
    assert r.returncode == 2 and f"{MARIADB_CONNECTOR} is not installed on the Kafka Connect worker" in r.stderr


def test_unreachable_worker_is_a_clear_retriable_error(seeded_db, cli_env):
    port = free_port()  # nobody listens there
    env = user_env(cli_env, seeded_db, f"http://127.0.0.1:{port}", "nobody")
    started = time.monotonic()
    r = snapsync(["connector", "deploy", "--connector-class", "mysql", "--retries", "3"], env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"Kafka Connect at http://127.0.0.1:{port} did not answer" in r.stderr
    assert "after 4 attempt(s) (connection refused)" in r.stderr and "--connect-url" in r.stderr
    assert time.monotonic() - started > 0.9  # backed off: 0 + 0.6 + 1.2 s
    r = snapsync(["connector", "status", "--connect-url", "connect:8083"], env)
    assert r.returncode == 2 and "must start with http://" in r.stderr


def test_status_of_an_unknown_connector_waits_then_says_so(connect, seeded_db, cli_env):
    env = user_env(cli_env, seeded_db, connect.url, "unknown")
    started = time.monotonic()
    r = snapsync(["connector", "status", "--name", "never-deployed", "--wait", "3"], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert time.monotonic() - started >= 3
    assert ("connector 'never-deployed' is not on the Kafka Connect worker" in r.stderr
            and "still unknown after waiting 3s" in r.stderr and "snapsync connector deploy" in r.stderr), r.stderr
    with pytest.raises(NotFoundError, match="never-deployed"):
        ConnectClient(connect.url).status("never-deployed")


class _Scripted:
    """A tiny HTTP server answering from a script of (status, headers) per request."""

    def __init__(self, script):
        self.script = list(script)
        self.hits: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append(time.monotonic())
                code, headers = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                body = json.dumps({"error_code": code, "message": "Cannot complete request because of a "
                                   "conflicting operation (e.g. worker rebalance)"} if code >= 400 else
                                  {"name": "x", "connector": {"state": "RUNNING"},
                                   "tasks": [{"id": 0, "state": "RUNNING"}]}).encode()
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_retries_409_storm_and_503_retry_after():
    """A fake, on purpose: a single healthy Connect worker answers 409 only during a rebalance of
    several workers, and 503 only behind a proxy or while starting, neither on demand. This server
    answers exactly those (the body shape is Connect's) to show the urllib3 ``Retry`` policy:
    409 retried until it passes, a storm that never ends reported as a retriable error, and
    ``Retry-After`` honoured."""
    fake = _Scripted([(409, {}), (409, {}), (200, {})])
    try:
        assert ConnectClient(fake.url, backoff=0.01).status("x")["connector"]["state"] == "RUNNING"
        assert len(fake.hits) == 3
    finally:
        fake.close()
    fake = _Scripted([(409, {})])
    try:
        with pytest.raises(RetriableError, match=r"still rebalancing after 3 attempt\(s\) of PUT /connectors/x/pause"):
            ConnectClient(fake.url, retries=2, backoff=0.01).pause("x")
        assert len(fake.hits) == 3
    finally:
        fake.close()
    fake = _Scripted([(503, {"Retry-After": "1"}), (200, {})])
    try:
        ConnectClient(fake.url, backoff=0.01).status("x")
        assert len(fake.hits) == 2 and fake.hits[1] - fake.hits[0] >= 0.95
    finally:
        fake.close()
    fake = _Scripted([(503, {})])
    try:
        with pytest.raises(RetriableError, match=r"answered HTTP 503 to GET /connectors/x/status 2 time\(s\)"):
            ConnectClient(fake.url, retries=1, backoff=0.01).status("x")
    finally:
        fake.close()
