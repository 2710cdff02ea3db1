"""The web app's boundaries that an attacker tried on the main of issue 24 (cases 2, 3, 4 and
7): request bodies read whole before the 401, revocation that did not revoke, live-notice
streams that outlived their session, and the smaller defects (a 500 on a far date, a length-only
password policy, validation errors echoing input, the operator's login shown to tenants, the
sign-in redirect dropping query parameters, the audit API's row images)."""

from __future__ import annotations

import getpass
import json
import re
import select
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.control import users
from snapsync.control.audit import record_audit
from snapsync.schemas.errors import ConfigError
from tests.conftest import db_env
from tests.web.helpers import BIN, PASSWORD, session

MB = 1 << 20


# --- case 2: request bodies ---------------------------------------------------------------
def _raw(web, head: bytes, chunks, timeout: float = 30.0) -> bytes:
    """Send a request by hand (``head``, then ``chunks`` until the server answers) and return
    the start of the answer; the server is given ``timeout`` seconds to answer."""
    url = urlsplit(web.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered already: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            got = sock.recv(65536)  # raises socket.timeout when the server waits for the rest of the body
            if not got:
                break
            answer += got
        return answer
    finally:
        sock.close()


def test_a_large_body_is_refused_before_it_is_read(web, web_db):
    head = (b"PUT /api/accounts/1/snapshot-settings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    # 400 MB announced, no credentials: answered 413 after 64 KB, the rest never read
    answer = _raw(web, head + b"Content-Length: 400000000\r\n\r\n", [b"[" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # the same streamed without a length: refused once past the limit
    piece = b"1," * (32 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw(web, head + b"Transfer-Encoding: chunked\r\n\r\n", [chunk] * (3 * MB // len(piece)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # a sign-in form too
    answer = _raw(web, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                       b"\r\nContent-Length: 5000000\r\n\r\n", [b"email=" + b"a" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # what the API says, and a body under the limit still goes through
    token = users.issue_token(web_db, "alice@example.test", who="test-setup")
    auth = {"Authorization": f"Bearer {token}"}
    big = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                       data=b'{"account_id": 1, "customers": [1], "pad": "' + b"x" * (2 * MB) + b'"}')
    assert big.status_code == 413 and "1 MB" in big.json()["detail"]
    read = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                        json={"account_id": 1, "customers": [77], "pad": "x" * (MB // 2)})
    assert read.status_code == 422, read.text  # read and judged on its content


# --- case 3: revocation --------------------------------------------------------------------
def _alive(web, token: str | None = None, s: requests.Session | None = None) -> bool:
    if token is not None:
        r = requests.get(f"{web.url}/api/accounts/1/snapshot-settings", headers={"Authorization": f"Bearer {token}"})
        return r.status_code == 200
    r = s.get(f"{web.url}/accounts/1/services", allow_redirects=False)
    return r.status_code == 200


def test_a_password_change_disable_and_enable_end_every_session_and_token(web, web_db):
    email = "rita@example.test"
    users.add_user(web_db, 1, email, "auth-rep", PASSWORD, who="test-setup")
    token = users.issue_token(web_db, email, who="test-setup")
    s, _csrf = session(web, email)
    assert _alive(web, token) and _alive(web, s=s)
    users.set_password(web_db, email, "another long passphrase for rita", who="test-setup")
    assert not _alive(web, token) and not _alive(web, s=s)
    # disabling and enabling again brings no old token or session back
    token = users.issue_token(web_db, email, who="test-setup")
    s, _csrf = session(web, email, "another long passphrase for rita")
    users.set_disabled(web_db, email, True, who="test-setup")
    users.set_disabled(web_db, email, False, who="test-setup")
    assert not _alive(web, token) and not _alive(web, s=s)
    assert _alive(web, users.issue_token(web_db, email, who="test-setup"))  # a new one works


def _cli(web_db, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**db_env(web_db), "SNAPSYNC_KAFKA_BOOTSTRAP": web_db.kafka_bootstrap, "SNAPSYNC_HOME": str(web_db.home),
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_tokens_are_listed_and_revoked_one_by_one(web, web_db):
    email = "theo@example.test"
    users.add_user(web_db, 1, email, "viewer", PASSWORD, who="test-setup")
    first, second, third = (users.issue_token(web_db, email, who="test-setup") for _ in range(3))
    listed = json.loads(_cli(web_db, "users", "tokens", "--email", email, "--json").stdout)
    assert len(listed) == 3 and all("token" not in t and "token_hash" not in t for t in listed)
    ids = [t["token_id"] for t in listed]
    # the operator revokes one: only that one stops
    r = _cli(web_db, "users", "revoke-token", "--email", email, "--id", str(ids[0]))
    assert r.returncode == 0, r.stderr
    assert not _alive(web, first) and _alive(web, second) and _alive(web, third)
    assert _cli(web_db, "users", "revoke-token", "--email", email, "--id", "999999").returncode == 2
    # the user lists and revokes their own on a page, a script through the API
    s, csrf = session(web, email)
    page = s.get(f"{web.url}/accounts/1/tokens")
    assert page.status_code == 200 and f'id="token-{ids[1]}"' in page.text and f'id="token-{ids[0]}"' not in page.text
    r = s.post(f"{web.url}/accounts/1/tokens/{ids[1]}/revoke", data={"csrf_token": csrf}, allow_redirects=False)
    assert r.status_code == 303 and not _alive(web, second) and _alive(web, third)
    api = f"{web.url}/api/accounts/1/tokens"
    mine = requests.get(api, headers={"Authorization": f"Bearer {third}"}).json()
    assert [t["token_id"] for t in mine] == [ids[2]]
    # another user's token is not found, as for an id that does not exist
    alices = users.list_tokens(web_db, "alice@example.test")[0]["token_id"]
    theirs = requests.delete(f"{api}/{alices}", headers={"Authorization": f"Bearer {third}"})
    nobody = requests.delete(f"{api}/999999", headers={"Authorization": f"Bearer {third}"})
    assert theirs.status_code == nobody.status_code == 404 and theirs.content == nobody.content
    assert requests.delete(f"{api}/{ids[2]}", headers={"Authorization": f"Bearer {third}"}).status_code == 200
    assert not _alive(web, third)


# --- case 4: live-notice streams ------------------------------------------------------------
def _stream_ends(stream, deadline: float = 45.0) -> list[str]:
    """The stream's next lines until it ends; fails when it is still open after ``deadline`` s."""
    lines, until = [], time.monotonic() + deadline
    for line in stream:
        lines.append(line)
        if time.monotonic() > until:
            raise AssertionError(f"the stream is still open: {lines[-5:]}")
    return lines


def test_live_notice_streams_end_with_their_session(web, web_db):
    email = "ugo@example.test"
    users.add_user(web_db, 1, email, "viewer", PASSWORD, who="test-setup")
    s, csrf = session(web, email)
    response = s.get(f"{web.url}/accounts/1/events", stream=True, timeout=(5, 60))
    stream = response.iter_lines(decode_unicode=True)
    assert response.status_code == 200 and next(stream).startswith("retry:")
    assert s.post(f"{web.url}/logout", data={"csrf_token": csrf}, allow_redirects=False).status_code == 303
    assert "event: signed-out" in _stream_ends(stream)
    # a disabled user's open stream ends too (here opened with a token)
    token = users.issue_token(web_db, email, who="test-setup")
    response = requests.get(f"{web.url}/accounts/1/events", headers={"Authorization": f"Bearer {token}"},
                            stream=True, timeout=(5, 60))
    stream = response.iter_lines(decode_unicode=True)
    assert next(stream).startswith("retry:")
    users.set_disabled(web_db, email, True, who="test-setup")
    assert "event: signed-out" in _stream_ends(stream)


# --- case 7: the smaller ones ---------------------------------------------------------------
def test_passwords_easy_to_guess_are_refused(web_db):
    for weak in ("aaaaaaaaaaaa", "password1234", "weak@example.test1"):  # the last: the e-mail itself
        with pytest.raises(ConfigError, match="too easy to guess") as e:
            users.add_user(web_db, 1, "weak@example.test", "viewer", weak, who="test-setup")
        assert weak not in str(e.value)
    r = _cli(web_db, "users", "add", "--account", "1", "--email", "weak@example.test", "--password-stdin",
             stdin="aaaaaaaaaaaa\n")
    assert r.returncode == 2 and "too easy to guess" in r.stderr and "Traceback" not in r.stderr
    r = _cli(web_db, "users", "password", "--email", "alice@example.test", "--password-stdin", stdin="qwertyuiopas\n")
    assert r.returncode == 2 and "too easy to guess" in r.stderr and "qwertyuiopas" not in r.stderr
    users.add_user(web_db, 1, "strong@example.test", "viewer", "tundra copper lantern 47", who="test-setup")


def test_a_date_past_the_calendar_is_a_clear_error(web, alice_token_b):
    auth = {"Authorization": f"Bearer {alice_token_b}"}
    for until in ("9999-12-31", "0001-01-01"):
        r = requests.get(f"{web.url}/api/accounts/1/audit", headers=auth, params={"until": until})
        assert r.status_code == 422 and "9998-12-31" in r.json()["detail"], r.text
        page = requests.get(f"{web.url}/accounts/1/audit", headers=auth, params={"since": until})
        assert page.status_code == 422 and "9998-12-31" in page.text


@pytest.fixture(scope="module")
def alice_token_b(web_db):
    return users.issue_token(web_db, "alice@example.test", who="test-setup")


def test_validation_errors_never_echo_the_input(web, alice_token_b):
    marker = "PHIMARKecho42"
    auth = {"Authorization": f"Bearer {alice_token_b}"}
    api = f"{web.url}/api/accounts/1"
    r = requests.put(api + "/snapshot-settings", headers=auth, json={"account_id": 1, "customers": [1], marker: 1})
    assert r.status_code == 422 and marker not in r.text and "unknown field" in r.text
    r = requests.post(api + "/sync-groups", headers=auth,
                      json={"account_id": 1, "source_customer": 1, "targets": [3], "categories": [marker]})
    assert r.status_code == 422 and marker not in r.text and "categories" in r.json()["fields"]


def test_tenants_see_people_not_the_operators_login(web, web_db, alice_token_b):
    auth = {"Authorization": f"Bearer {alice_token_b}"}
    login = getpass.getuser()
    rows = requests.get(f"{web.url}/api/accounts/1/audit", headers=auth, params={"limit": 1000}).json()
    created = [r for r in rows if r["entity"] == "user" and r["entity_id"] == "alice@example.test"]
    assert created and created[-1]["actor"] == "operator"  # `snapsync users add` by the operator
    assert login not in {r["actor"] for r in rows}
    page = requests.get(f"{web.url}/accounts/1/audit", headers=auth)
    assert f"<td>{login}</td>" not in page.text and f'value="{login}"' not in page.text
    only = requests.get(f"{web.url}/api/accounts/1/audit", headers=auth, params={"user": "operator"}).json()
    assert only and {r["actor"] for r in only} == {"operator"}


def test_the_sign_in_redirect_keeps_every_query_parameter(web):
    target = "/accounts/1/audit?entity=session&user=alice%40example.test&since=2020-01-01"
    r = requests.get(web.url + target, allow_redirects=False)
    assert r.status_code == 303
    s = requests.Session()
    form = s.get(web.url + r.headers["location"]).text
    kept = re.search(r'name="next" value="([^"]*)"', form).group(1).replace("&amp;", "&")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = s.post(web.url + "/login", data={"email": "alice@example.test", "password": PASSWORD, "csrf_token": token,
                                         "next": kept}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == target


def test_the_audit_api_shows_what_the_page_shows(web, web_db, alice_token_b):
    image = {"id": 41, "customer_id": 1, "code": "Z99", "description": "PHIMARKimage7"}
    with connect(web_db.state) as conn:
        cur = conn.cursor()
        record_audit(cur, account_id=1, entity="sync_apply", entity_id="cmd-1", action="override", before=image,
                     after={**image, "description": "new"}, who="snapsync-sync",
                     detail={"table": "icd_code", "source_customer": 3, "target_customer": 1, "mode": "override"})
        record_audit(cur, account_id=1, entity="delivery", entity_id="7", action="delivered", who="snapsync",
                     detail={"slot_date": "2026-03-09", "kind": "full", "path": "/srv/deliveries/account-1/current",
                             "delivered_path": "/srv/deliveries/account-1/deliveries/x", "rows": 10})
        conn.commit()
    auth = {"Authorization": f"Bearer {alice_token_b}"}
    rows = requests.get(f"{web.url}/api/accounts/1/audit", headers=auth).json()
    applied = next(r for r in rows if r["entity"] == "sync_apply" and r["entity_id"] == "cmd-1")
    assert applied["before"] is None and applied["after"] is None and "icd_code" in applied["summary"]
    delivered = next(r for r in rows if r["entity"] == "delivery" and r["entity_id"] == "7")
    assert "path" not in delivered["detail"] and "delivered_path" not in delivered["detail"]
    assert "PHIMARKimage7" not in json.dumps(rows) and "/srv/" not in json.dumps(rows)
