"""The web app behind a proxy (issue 24, case 5). On the main of issue 24 any local process was
a trusted proxy by default (so `X-Forwarded-For` rotated past the per-client sign-in limit and
wrote raw ANSI escapes into the access log), the compose file trusted none (every client shared
one throttle; cookies never Secure), and the `Host` header was believed: the Messages page's API
example and redirects pointed at `http://evil.example/...`.

Now no proxy is trusted unless configured (`--forwarded-allow-ips`), a forwarded address must be
an IP address, the log escapes control characters, and only the `--allowed-hosts` are served."""

from __future__ import annotations

import re

import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control import users
from snapsync.control.notifications import notify
from snapsync.seed import seed
from tests.conftest import new_database, settings_for
from tests.web.helpers import PASSWORD, running_web


@pytest.fixture(scope="module")
def proxy_db(base_settings):
    s = settings_for(base_settings, "webproxy", topic_prefix="webproxy")
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.002, seed_value=3, accounts=1)
    users.add_user(s, 1, "pia@example.test", "auth-rep", PASSWORD, who="test-setup")
    with connect_state(s) as conn:
        notify(conn.cursor(), account_id=1, kind="snapshot_ready", message="Your full data snapshot is ready.")
        conn.commit()
    return s


def _login(url: str, email: str, password: str, headers: dict) -> requests.Response:
    s = requests.Session()
    form = s.get(url + "/login", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return s.post(url + "/login", data={"email": email, "password": password, "csrf_token": token},
                  cookies={"snapsync_login": form.cookies.get("snapsync_login")}, headers=headers,
                  allow_redirects=False)


def test_without_configuration_no_proxy_is_trusted(proxy_db, tmp_path):
    with running_web(proxy_db, tmp_path / "web.log") as web:
        # X-Forwarded-Proto from a local process is not believed: no Secure cookie
        page = requests.get(web.url + "/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in page.headers["set-cookie"]
        # rotating X-Forwarded-For does not get past the per-client limit
        for i in range(20):
            r = _login(web.url, f"guess{i}@example.test", "not the password", {"X-Forwarded-For": f"198.51.100.{i}"})
            assert r.status_code == 401
        r = _login(web.url, "pia@example.test", PASSWORD, {"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 429
        # and a Host of elsewhere is refused
        assert requests.get(web.url + "/login", headers={"Host": "evil.example"}).status_code == 400


def test_a_configured_proxy_is_believed_and_the_host_checked(proxy_db, tmp_path):
    log = tmp_path / "web.log"
    with running_web(proxy_db, log, "--forwarded-allow-ips", "127.0.0.1",
                     "--allowed-hosts", "portal.example.test,127.0.0.1") as web:
        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.40"}
        r = _login(web.url, "pia@example.test", PASSWORD, https)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        token = users.issue_token(proxy_db, "pia@example.test", who="test-setup")
        auth = {"Authorization": f"Bearer {token}"}
        # the Messages page's example names the public host and scheme the proxy forwarded
        page = requests.get(web.url + "/accounts/1/messages", headers={**auth, **https, "Host": "portal.example.test"})
        assert page.status_code == 200
        assert "https://portal.example.test/api/accounts/1/deliveries/current.zip" in page.text
        # a Host not allowed: refused, never a redirect or a link to it
        for path in ("/accounts/1/messages", "/login/", "/"):
            r = requests.get(web.url + path, headers={**auth, "Host": "evil.example"}, allow_redirects=False)
            assert r.status_code == 400 and "evil.example" not in r.headers.get("location", "") + r.text, path
        # what a client sends stays printable in the access log
        r = _login(web.url, "pia@example.test", "wrong", {"X-Forwarded-For": "\x1b[31mred\x1b[0m, 192.0.2.41"})
        assert r.status_code in (401, 429)
        _login(web.url, "pia@example.test", "wrong", {"X-Forwarded-For": "\x1b]0;owned\x07"})
        requests.get(web.url + "/%1b%5b2J%1b%5bH")
        requests.get(web.url + "/healthz")  # a last line, so that the ones before are written
    text = log.read_bytes()
    assert b"GET /login" in text and b"\x1b" not in text and b"\x07" not in text
    assert b"192.0.2.41" in text  # the forwarded address, once it is an address
