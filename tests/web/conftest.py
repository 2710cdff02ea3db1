"""Fixtures of the web app's tests: a seeded database with two accounts and their users,
`snapsync web` serving it, and a headless Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import subprocess

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import users
from snapsync.seed import seed
from tests.conftest import db_env, new_database, settings_for
from tests.web.helpers import BIN, CHROMIUM, CHROMIUM_ARGS, PASSWORD, running_web

#: account 1 has customers 1, 3, 5; account 2 has 2, 4, 6.
USERS = {"alice@example.test": (1, "auth-rep"), "vera@example.test": (1, "viewer"),
         "bob@example.test": (2, "auth-rep"), "tess@example.test": (1, "auth-rep")}


@pytest.fixture(scope="session")
def web_db(base_settings, tmp_path_factory):
    """Two accounts of three customers each, and their users."""
    s = settings_for(base_settings, "webapp", topic_prefix="webapp")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=6, scale=0.004, seed_value=11, accounts=2)
    # one user through the CLI, as an operator would; the others through the control plane
    env = {**db_env(s), "SNAPSYNC_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
           "SNAPSYNC_HOME": str(s.home), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([BIN, "users", "add", "--account", "1", "--email", "alice@example.test", "--role", "auth-rep",
                        "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for email, (account, role) in USERS.items():
        if email != "alice@example.test":
            users.add_user(s, account, email, role, PASSWORD, who="test-setup")
    return s


@pytest.fixture(scope="session")
def web(web_db, tmp_path_factory):
    # behind a proxy on this machine, as production runs it: X-Forwarded-* from loopback count
    with running_web(web_db, tmp_path_factory.mktemp("web") / "web.log", "--forwarded-allow-ips", "127.0.0.1") as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def stack22(base_settings, tmp_path_factory):
    """Usage, Data Copy and undo (issue 22): a database of its own with three accounts (account
    1: customers 1, 4, 7; account 2: 2, 5, 8; account 3: 3, 6, 9), the users of accounts 1 and
    2, the worker's task runner (which makes copies and undos) and `snapsync web` serving it."""
    from snapsync.control.sync_tasks import TaskRunner

    s = settings_for(base_settings, "webcopy", topic_prefix="webcopy")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=9, scale=0.003, seed_value=13, accounts=3)
    for email, (account, role) in USERS.items():
        users.add_user(s, account, email, role, PASSWORD, who="test-setup")
    runner = TaskRunner(s, "test-worker", interval=0.1).start()
    with running_web(s, tmp_path_factory.mktemp("web22") / "web.log") as server:
        yield s, server
    runner.stop.set()
