"""Set-up and configuration gone wrong: every case a clear message with its documented exit
code (2 bad input or configuration, 3 an unreachable dependency), never a traceback, and
nothing written. Reproduced on the main of 2026-11-24: a listener that is not MySQL hung
forever, a password with `"` or `\\` broke every client-path export with a false "login
refused", capture without replication grants wrote a snapshot and then died, and the other
cases printed tracebacks."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.seed import seed
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.conftest import db_env, new_database, settings_for

BIN = str(Path(sys.executable).with_name("snapsync"))
NASTY = "a\"b\\c'd#e\\b f\\\"$g`h;i\\"  # quotes, backslashes before letters an option file reads as escapes


def run(args, env, cwd=None, timeout=60):
    r = subprocess.run([BIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture(scope="module")
def db(base_settings):
    s = settings_for(base_settings, "badsetup")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=2, scale=0.003, seed_value=2)
        cur = conn.cursor()
        for user in ("nasty", "noreplication"):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        cur.execute("CREATE USER 'nasty'@'%%' IDENTIFIED BY %s", (NASTY,))
        cur.execute(f"GRANT ALL ON `{s.db.database}`.* TO 'nasty'@'%'")
        cur.execute(f"GRANT ALL ON `{s.state.database}`.* TO 'nasty'@'%'")  # an export records its usage there
        cur.execute("CREATE USER 'noreplication'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `{s.db.database}`.* TO 'noreplication'@'%'")
    return s


def url_for(s, user: str, password: str) -> str:
    from urllib.parse import quote

    return f"mysql://{user}:{quote(password, safe='')}@{s.db.host}:{s.db.port}/{s.db.database}"


def test_password_with_quotes_and_backslashes_exports_through_the_client(db, tmp_path):
    from snapsync.schemas.config import load_settings

    practice = url_for(db, "nasty", NASTY)
    s = load_settings(None, database_url=practice, kafka_bootstrap=db.kafka_bootstrap, home=str(db.home),
                      state_url=practice.rsplit("/", 1)[0] + f"/{db.state.database}", signal_schema=db.signal_schema)
    r = export_snapshot(s, ExportRequest([1], "dat", server_side=False), tmp_path / "out")
    assert r.rows > 0


def test_a_listener_that_is_not_mysql_is_a_clear_timeout_not_a_hang(cli_env, tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    stop = threading.Event()

    def accept_and_stay_silent():
        conns = []
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept_and_stay_silent, daemon=True)
    t.start()
    try:
        # run() gives up on a command that hangs (the bug this guards against); the message
        # says the handshake timed out, not that the port refused.
        r = run(["seed"], {**cli_env, "SNAPSYNC_DATABASE_URL": f"mysql://root@127.0.0.1:{port}/x"}, cwd=tmp_path,
                timeout=120)
        assert r.returncode == 3 and "cannot reach the database" in r.stderr
        assert "did not answer in time" in r.stderr
    finally:
        stop.set()
        t.join()
        srv.close()


def test_capture_without_replication_grants_writes_nothing(db, cli_env, tmp_path):
    from snapsync.schemas.topics import change_topic
    from tests.kafka_helpers import read_topic

    env = {**cli_env, "SNAPSYNC_DATABASE_URL": url_for(db, "noreplication", "pw"), "SNAPSYNC_TOPIC_PREFIX": "nogrant"}
    r = run(["capture", "--connector", "nogrant"], env, cwd=tmp_path)
    assert r.returncode == 2 and "REPLICATION SLAVE" in r.stderr and "REPLICATION CLIENT" in r.stderr
    assert read_topic(db.kafka_bootstrap, change_topic("nogrant", db.db.database, "patient")) == []


@pytest.mark.parametrize("case", ["non-utf8 toml", "home = 5", "home is a file", "home under a file"])
def test_bad_configuration_files(cli_env, tmp_path, case):
    cfg = tmp_path / "snapsync.toml"
    afile = tmp_path / "afile"
    afile.write_text("x")
    env = {k: v for k, v in cli_env.items() if k != "SNAPSYNC_HOME"}
    if case == "non-utf8 toml":
        cfg.write_bytes(b"topic_prefix = \"caf\xe9\"\n")
    elif case == "home = 5":
        cfg.write_text("home = 5\n")
    elif case == "home is a file":
        cfg.write_text(f"home = \"{afile}\"\n")
    else:
        cfg.write_text(f"home = \"{afile / 'sub'}\"\n")
    for args in (["audit"], ["local", "status"]):
        r = run([*args, "--config", str(cfg)], env, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert ("UTF-8" in r.stderr) if case == "non-utf8 toml" else ("home" in r.stderr.lower())


@pytest.mark.parametrize("args", [
    ["snapshot", "export", "--customers", "1_0", "--out", "o"],
    ["snapshot", "export", "--customers", "１,2", "--out", "o"],
    ["snapshot", "export", "--customers", "1,,3", "--out", "o"],
    ["snapshot", "export", "--customers", "1", "--out", "o", "--cutoff", "2026-03-08T00:00"],
    ["snapshot", "export", "--customers", "1", "--out", "o", "--kind", "incremental", "--cutoff", "2026-03-08",
     "--watermark-timeout", "-1"],
    ["snapshot", "scheduler", "--interval", "-5"],
    ["audit", "--limit", "-1"],
    ["capture", "--heartbeat-interval", "-1"],
])
def test_bad_arguments_are_refused(cli_env, tmp_path, args):
    r = run(args, cli_env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / "o").exists()


def test_unreachable_broker_during_an_incremental_export(db, cli_env, tmp_path):
    from snapsync.local import free_port

    env = {**cli_env, **db_env(db),
           "SNAPSYNC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    r = run(["snapshot", "export", "--customers", "1", "--out", str(tmp_path / "o"), "--kind", "incremental",
             "--cutoff", "2026-03-08", "--watermark-timeout", "2"], env, cwd=tmp_path)
    assert r.returncode == 3 and "broker" in r.stderr
