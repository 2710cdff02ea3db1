"""The console script as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = str(Path(sys.executable).with_name("snapsync"))


def run(args, env, cwd=None):
    return subprocess.run([BIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_lists_commands(cli_env):
    r = run(["--help"], cli_env)
    assert r.returncode == 0
    for cmd in ("catalog", "seed", "local"):
        assert cmd in r.stdout


def test_catalog_json(cli_env):
    r = run(["catalog", "--json"], cli_env)
    assert r.returncode == 0
    data = json.loads(r.stdout)
    assert len(data) == 32
    patient = next(d for d in data if d["name"] == "Patient")
    assert patient["incremental"] is True and patient["tenant_column"] == "customer_id"


def test_bad_configuration_is_one_clear_message(cli_env, tmp_path):
    env = {**cli_env, "SNAPSYNC_DATABASE_URL": "postgresql://x/y", "SNAPSYNC_KAFKA_BOOTSTRAP": "nohost"}
    r = run(["seed"], env, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "SNAPSYNC_DATABASE_URL" in r.stderr and "SNAPSYNC_KAFKA_BOOTSTRAP" in r.stderr
    env.pop("SNAPSYNC_DATABASE_URL")
    r = run(["seed"], env, cwd=tmp_path)
    assert r.returncode == 2 and "SNAPSYNC_DATABASE_URL (database_url) is missing" in r.stderr


def test_unreachable_database_is_a_clear_error(cli_env, tmp_path):
    from snapsync.local import free_port

    env = {**cli_env, "SNAPSYNC_DATABASE_URL": f"mysql://root@127.0.0.1:{free_port()}/x"}
    r = run(["seed"], env, cwd=tmp_path)
    assert r.returncode == 3 and "cannot reach the database" in r.stderr and "Traceback" not in r.stderr


def test_seed_json(cli_env, base_settings, tmp_path):
    from tests.conftest import settings_for

    env = {**cli_env, "SNAPSYNC_DATABASE_URL": settings_for(base_settings, "cli_seed").database_url.get_secret_value()}
    r = run(["seed", "--customers", "2", "--scale", "0.002", "--json"], env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["customers"] == 2


def test_local_stack_up_status_down(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
    env["SNAPSYNC_HOME"] = str(tmp_path / "home")
    from snapsync.local import free_port

    up = run(["local", "up", "--json", "--db-port", str(free_port()), "--kafka-port", str(free_port())], env,
             cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["running"] and status["database_url"].startswith("mysql://root@127.0.0.1:")
        # commands in this folder pick the running stack up without exports
        seeded = run(["seed", "--customers", "1", "--scale", "0.002", "--json"], env, cwd=tmp_path)
        assert seeded.returncode == 0, seeded.stderr
        # the private server logs binlog in ROW format with FULL images
        import pymysql

        port = int(status["database_url"].rsplit(":", 1)[1].split("/")[0])
        with pymysql.connect(host="127.0.0.1", port=port, user="root") as conn:
            cur = conn.cursor()
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
            assert cur.fetchone() == (1, "ROW", "FULL", "FULL")
        again = run(["local", "up", "--json"], env, cwd=tmp_path)
        assert json.loads(again.stdout)["db_pid"] == status["db_pid"]  # idempotent
    finally:
        down = run(["local", "down"], env, cwd=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    st = run(["local", "status", "--json"], env, cwd=tmp_path)
    assert st.returncode == 1 and json.loads(st.stdout)["running"] is False
