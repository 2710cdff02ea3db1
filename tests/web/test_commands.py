"""The web app's commands as an operator runs them: `snapsync users ...`, and the web app
that the demo starts in the background and `snapsync local down` stops."""

from __future__ import annotations

import json
import subprocess

import requests

from snapsync.local import LocalStack
from tests.web.helpers import BIN, PASSWORD
from tests.conftest import db_env


def _env(s) -> dict[str, str]:
    return {**db_env(s), "SNAPSYNC_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "SNAPSYNC_TOPIC_PREFIX": s.topic_prefix, "SNAPSYNC_HOME": str(s.home), "PATH": "/usr/bin:/bin"}


def run(env, *args, stdin: str | None = None):
    return subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_users_add_token_list_disable(web_db, web):
    env = _env(web_db)
    r = run(env, "users", "add", "--account", "2", "--email", "Carol@Example.test", "--role", "viewer",
            "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    bad = run(env, "users", "add", "--account", "2", "--email", "dan@example.test", "--role", "admin",
              "--password-stdin", stdin="short\n")
    assert bad.returncode == 2 and "role" in bad.stderr and "Traceback" not in bad.stderr
    again = run(env, "users", "add", "--account", "2", "--email", "carol@example.test", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    token = run(env, "users", "token", "--email", "carol@example.test").stdout.strip()
    assert token.startswith("ssk_")
    api = f"{web.url}/api/accounts/2/notifications"
    assert requests.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = json.loads(run(env, "users", "list", "--account", "2", "--json").stdout)
    carol = next(u for u in listed if u["email"] == "carol@example.test")
    assert carol == {"user_id": carol["user_id"], "account_id": 2, "email": "carol@example.test", "role": "viewer",
                     "disabled": False}
    assert "password" not in json.dumps(listed)
    assert run(env, "users", "disable", "--email", "carol@example.test").returncode == 0
    assert requests.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    audit = json.loads(run(env, "audit", "--account", "2", "--entity", "user", "--json").stdout)
    assert [a["action"] for a in audit[:2]] == ["disable", "create"]


def test_the_demo_web_app_stops_with_local_down(web_db, tmp_path):
    stack = LocalStack(tmp_path / "home")
    stack.root.mkdir(parents=True)
    state = stack.start_web(_env(web_db))
    assert requests.get(state["url"] + "/healthz").ok
    r = subprocess.run([BIN, "local", "down"], env={"SNAPSYNC_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True)
    assert r.returncode == 0 and "stopped" in r.stdout
    try:
        requests.get(state["url"] + "/healthz", timeout=2)
        raise AssertionError("the web app still answers")
    except requests.ConnectionError:
        pass
