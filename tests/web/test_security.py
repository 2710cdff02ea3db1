"""Security of the web app against the running `snapsync web`: another account's ids on
every route, CSRF, sign-in throttling, cookie flags, tokens, and no PHI in the log."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
import requests
from fastapi.routing import APIRoute

from snapsync.connectors.mysql import connect
from snapsync.control import data_copy, data_sync, snapshot_settings, sync_groups, users
from snapsync.control.notifications import notify
from snapsync.schemas.catalog import dataset
from snapsync.schemas.control import DataCopyRequest
from snapsync.web.app import create_app
from snapsync.web.config import WebConfig
from tests.conftest import qs
from tests.web.helpers import PASSWORD, session

OTHER_ACCOUNT_SECRETS = ("bob@example.test",)  # plus account 2's name and customers, read below


@pytest.fixture(scope="module")
def other(web_db):
    """Account 2's group and message, and the strings that would betray them."""
    group = sync_groups.add_group(web_db, 2, (4,), ("codes",), account_id=2, who="test-setup")
    with connect(web_db.state) as conn:
        notify(conn.cursor(), account_id=2, kind="sync_pending", message="account two private notice")
        conn.commit()
    with connect(web_db.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT name FROM account WHERE account_id = 2")
        names = [cur.fetchone()[0]]
        cur.execute("SELECT name FROM customer WHERE account_id = 2")
        names += [r[0] for r in cur.fetchall()]
    users.issue_token(web_db, "bob@example.test", who="test-setup")
    token = users.list_tokens(web_db, "bob@example.test")[0]["token_id"]
    # a Data Copy account 1 is on neither side of, and an application of account 2's Data Sync
    copy = data_copy.request(web_db, 2, DataCopyRequest(source_customer=2, to_account=99, to_customer=1,
                                                        categories=("codes",)), who="test-setup")
    data_sync.copy_tables(web_db, group, 4, [dataset("facility")])
    (application,) = qs(web_db, "SELECT MAX(audit_id) FROM snapsync_audit WHERE entity = 'sync_apply' AND "
                                "account_id = 2")[0]
    return {"group": group.group_id, "secrets": [*OTHER_ACCOUNT_SECRETS, "account two private notice", *names],
            "ids": {"copy_id": copy.copy_id, "audit_id": application, "token_id": token}}


@pytest.fixture(scope="module")
def alice(web):
    return session(web, "alice@example.test")


@pytest.fixture(scope="module")
def alice_token(web_db):
    return users.issue_token(web_db, "alice@example.test", who="test-setup")


def account_routes(settings) -> list[tuple[str, str]]:
    """(method, path template) of every page and API route that names an account."""
    app = create_app(settings, WebConfig(secret="x"), live=False)

    def walk(routes):  # FastAPI >= 0.16x keeps included routers as wrappers of the original
        for r in routes:
            if isinstance(r, APIRoute):
                yield r
            elif hasattr(r, "original_router"):
                yield from walk(r.original_router.routes)

    return sorted({(m, r.path) for r in walk(app.routes) if "{account_id}" in r.path for m in r.methods})


def _call(s: requests.Session, web, method: str, path: str, csrf: str, **headers):
    url = web.url + path
    if path.startswith("/api/"):
        body = {"account_id": 2, "customers": [2], "source_customer": 2, "targets": [4], "categories": ["codes"]}
        return s.request(method, url, json=body if method in ("PUT", "POST") else None,
                         headers={"X-CSRF-Token": csrf, **headers}, allow_redirects=False, timeout=30)
    return s.request(method, url, data={"csrf_token": csrf, "customers": "2", "enabled": "on"} if method == "POST"
                     else None, headers=headers, allow_redirects=False, timeout=30)


def test_every_route_answers_404_for_another_accounts_ids(web, web_db, other, alice, alice_token):
    routes = account_routes(web_db)
    assert len(routes) >= 25  # every page and API route of an account is here
    s, csrf = alice
    bearer = requests.Session()
    checked = 0
    for method, template in routes:
        for client, auth in ((s, {}), (bearer, {"Authorization": f"Bearer {alice_token}"})):
            if not template.startswith("/api/") and auth:
                continue
            # another account, and an account that does not exist: the same answer
            ids = {"group_id": other["group"], **other["ids"]}
            theirs = _call(client, web, method, template.format(account_id=2, **ids), csrf, **auth)
            nobody = _call(client, web, method, template.format(account_id=99999, **ids), csrf, **auth)
            assert theirs.status_code == 404, (method, template, theirs.status_code, theirs.text[:300])
            assert (theirs.status_code, theirs.content) == (nobody.status_code, nobody.content), (method, template)
            assert not any(secret in theirs.text for secret in other["secrets"]), (method, template)
            if any(f"{{{k}}}" in template for k in ("group_id", "copy_id", "audit_id", "token_id")):  # ours, theirs
                ours = _call(client, web, method, template.format(account_id=1, **ids), csrf, **auth)
                none = _call(client, web, method, template.format(account_id=1, group_id=99999, copy_id=99999,
                                                                  audit_id=99999, token_id=99999), csrf, **auth)
                assert ours.status_code == 404 and ours.content == none.content, (method, template, ours.text[:300])
            checked += 1
    assert checked >= 25
    # and nothing of account 2 changed
    assert sync_groups.find_group(web_db, 2, other["group"]).targets == (4,)
    assert snapshot_settings.get(web_db, 2) is None


def test_ids_of_another_account_in_a_body_are_unknown(web, web_db, alice_token, other):
    api = f"{web.url}/api/accounts/1"
    auth = {"Authorization": f"Bearer {alice_token}"}
    body = {"account_id": 1, "customers": [1], "format": "dat"}
    # the body names another account: as if asking for that account
    r = requests.put(api + "/snapshot-settings", json={**body, "account_id": 2}, headers=auth)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    # another account's customer reads exactly like a customer that does not exist
    theirs = requests.put(api + "/snapshot-settings", json={**body, "customers": [1, 2]}, headers=auth)
    nobody = requests.put(api + "/snapshot-settings", json={**body, "customers": [1, 77]}, headers=auth)
    assert theirs.status_code == nobody.status_code == 422
    assert theirs.json()["detail"].replace(" 2:", " N:") == nobody.json()["detail"].replace(" 77:", " N:")
    assert "another account" not in theirs.text and "customers" in theirs.json()["fields"]
    group = {"account_id": 1, "source_customer": 2, "targets": [3], "categories": ["codes"]}
    r = requests.post(api + "/sync-groups", json=group, headers=auth)
    assert r.status_code == 422 and "unknown customer(s) 2" in r.json()["detail"]
    r = requests.post(api + "/sync-groups", json={**group, "source_customer": 1, "targets": [4]}, headers=auth)
    assert r.status_code == 422 and "unknown customer(s) 4" in r.json()["detail"]
    r = requests.post(api + "/sync-groups", json={**group, "account_id": 2, "source_customer": 2, "targets": [4]},
                      headers=auth)
    assert r.status_code == 404
    assert [g.source_customer for g in sync_groups.load_groups_for(web_db, 2)] == [2]  # only its own


def test_the_api_works_with_a_token_and_serves_openapi(web, web_db, alice_token):
    api = f"{web.url}/api/accounts/1"
    auth = {"Authorization": f"Bearer {alice_token}"}
    r = requests.put(api + "/snapshot-settings", headers=auth,
                     json={"account_id": 1, "customers": [1, 3], "format": "dat", "packaging": "combined"})
    assert r.status_code == 200 and r.json()["customers"] == [1, 3]
    assert requests.get(api + "/snapshot-settings", headers=auth).json()["packaging"] == "combined"
    created = requests.post(api + "/sync-groups", headers=auth, json={
        "account_id": 1, "source_customer": 5, "targets": [3], "categories": ["facilities"]})
    assert created.status_code == 201, created.text
    gid = created.json()["group"]["group_id"]
    r = requests.put(f"{api}/sync-groups/{gid}", headers=auth, json={
        "account_id": 1, "source_customer": 5, "targets": [1, 3], "categories": ["facilities"], "mode": "override"})
    assert r.status_code == 200 and r.json()["group"]["targets"] == [1, 3]
    assert requests.get(f"{api}/sync-groups/{gid}", headers=auth).json()["mode"] == "override"
    assert requests.delete(f"{api}/sync-groups/{gid}", headers=auth).status_code == 200
    audit = requests.get(api + "/audit", headers=auth, params={"entity": "sync_group"}).json()
    assert audit[0]["action"] == "delete" and audit[0]["actor"] == "alice@example.test"
    assert requests.get(api + "/audit", headers=auth, params={"since": "yesterday"}).status_code == 422
    assert isinstance(requests.get(api + "/notifications", headers=auth).json(), list)
    sample = requests.get(api + "/sample.zip", headers=auth, params={"format": "mysql"})
    assert sample.status_code == 200 and sample.headers["content-type"] == "application/zip"
    assert "customer-1/snapshot.sql" in zipfile.ZipFile(io.BytesIO(sample.content)).namelist()
    assert requests.get(api + "/sample.zip", headers=auth, params={"format": "xml"}).status_code == 422
    # no token, a wrong token: 401
    assert requests.get(api + "/snapshot-settings").status_code == 401
    assert requests.get(api + "/snapshot-settings", headers={"Authorization": "Bearer ssk_nope"}).status_code == 401
    spec = requests.get(web.url + "/api/openapi.json").json()
    assert {"/api/accounts/{account_id}/snapshot-settings", "/api/accounts/{account_id}/sync-groups",
            "/api/accounts/{account_id}/sync-groups/{group_id}", "/api/accounts/{account_id}/audit",
            "/api/accounts/{account_id}/notifications", "/api/accounts/{account_id}/sample.zip",
            "/api/accounts/{account_id}/deliveries/current.zip"} <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_a_viewer_and_a_disabled_user_cannot_change(web, web_db):
    token = users.issue_token(web_db, "vera@example.test", who="test-setup")
    api = f"{web.url}/api/accounts/1"
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(api + "/snapshot-settings", headers=auth).status_code == 200
    assert requests.put(api + "/snapshot-settings", headers=auth,
                        json={"account_id": 1, "customers": [1]}).status_code == 403
    assert requests.get(api + "/sample.zip", headers=auth).status_code == 403  # downloads hold PHI
    s, csrf = session(web, "vera@example.test")
    assert s.post(web.url + "/accounts/1/snapshots", data={"csrf_token": csrf, "customers": "1"}).status_code == 403
    users.set_disabled(web_db, "vera@example.test", True, who="test-setup")
    try:
        assert requests.get(api + "/snapshot-settings", headers=auth).status_code == 401
        r = s.get(web.url + "/accounts/1/services", allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    finally:
        users.set_disabled(web_db, "vera@example.test", False, who="test-setup")


def test_a_form_without_its_csrf_token_is_refused(web, web_db, alice):
    s, csrf = alice
    before = snapshot_settings.get(web_db, 1)
    form = {"enabled": "on", "format": "mysql", "kind": "full", "packaging": "combined", "customers": ["1"]}
    for data in (form, {**form, "csrf_token": "forged"}):
        r = s.post(web.url + "/accounts/1/snapshots", data=data, allow_redirects=False)
        assert r.status_code == 403 and "did not come from this site" in r.text
    assert snapshot_settings.get(web_db, 1) == before
    r = s.put(web.url + "/api/accounts/1/snapshot-settings", json={"account_id": 1, "customers": [1]})
    assert r.status_code == 403  # the API with a session cookie needs the header
    assert s.post(web.url + "/logout", allow_redirects=False).status_code == 403
    # the sign-in form has its own token
    r = requests.post(web.url + "/login", data={"email": "alice@example.test", "password": PASSWORD},
                      allow_redirects=False)
    assert r.status_code == 403 and "snapsync_session" not in r.headers.get("set-cookie", "")
    # with the token, the same form goes through
    r = s.post(web.url + "/accounts/1/snapshots", data={**form, "csrf_token": csrf}, allow_redirects=False)
    assert r.status_code == 303


def _login(web, email: str, password: str, client: str) -> requests.Response:
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(web.url + "/login").text).group(1)
    return s.post(web.url + "/login", data={"email": email, "password": password, "csrf_token": token},
                  headers={"X-Forwarded-For": client}, allow_redirects=False)


def test_wrong_passwords_in_a_row_are_throttled(web):
    for _ in range(5):
        r = _login(web, "tess@example.test", "not the password", "203.0.113.7")
        assert r.status_code == 401 and "Wrong e-mail or password" in r.text
    # now even the right password waits, from that address; another one is not locked out by it
    r = _login(web, "tess@example.test", PASSWORD, "203.0.113.7")
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text and int(r.headers["retry-after"]) > 0
    assert _login(web, "tess@example.test", PASSWORD, "198.51.100.3").status_code == 303
    # an unknown e-mail gets the same answer as a wrong password
    assert "Wrong e-mail or password" in _login(web, "nobody@example.test", "x" * 12, "203.0.113.8").text
    # one address trying many e-mails is throttled too, other addresses are not
    for i in range(20):
        assert _login(web, f"guess{i}@example.test", "guess", "203.0.113.9").status_code == 401
    assert _login(web, "alice@example.test", PASSWORD, "203.0.113.9").status_code == 429
    assert _login(web, "alice@example.test", PASSWORD, "203.0.113.10").status_code == 303


def test_session_cookie_flags(web):
    r = _login(web, "alice@example.test", PASSWORD, "192.0.2.1")
    cookie = r.headers["set-cookie"]
    assert "snapsync_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Max-Age=28800" in cookie and "Path=/" in cookie and "Secure" not in cookie
    # behind the TLS proxy (X-Forwarded-Proto from a trusted address): Secure
    s = requests.Session()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.2"}
    page = s.get(web.url + "/login", headers=headers)
    assert "Secure" in page.headers["set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    login_cookie = {"snapsync_login": s.cookies.get("snapsync_login")}  # a Secure cookie: sent by hand over http
    r = requests.post(web.url + "/login", headers=headers, allow_redirects=False, cookies=login_cookie,
                      data={"email": "alice@example.test", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    # a tampered cookie is no session
    forged = requests.get(web.url + "/accounts/1/services", allow_redirects=False,
                          cookies={"snapsync_session": "x" * 43 + ".AAAA.BBBB"})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")
    # signing out ends the session on the server, not only in the browser
    s2, csrf = session(web, "alice@example.test", X_Forwarded_For="192.0.2.3")
    old = dict(s2.cookies)
    assert s2.post(web.url + "/logout", data={"csrf_token": csrf}, allow_redirects=False).status_code == 303
    r = requests.get(web.url + "/accounts/1/services", cookies=old, allow_redirects=False)
    assert r.status_code == 303


def test_pages_load_nothing_from_elsewhere(web, alice):
    s, _csrf = alice
    for path in ("services", "snapshots", "sync", "sync/groups/new", "messages", "downloads", "audit"):
        r = s.get(f"{web.url}/accounts/1/{path}")
        assert r.status_code == 200, path
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"


def test_no_phi_in_the_server_log(web, web_db, alice_token):
    marker = "PHIMARK7f3a"
    with connect(web_db.db) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE patient SET last_name = %s WHERE customer_id = 1 ORDER BY id LIMIT 1", (marker,))
        conn.commit()
    auth = {"Authorization": f"Bearer {alice_token}"}
    sample = requests.get(f"{web.url}/api/accounts/1/sample.zip", headers=auth, params={"format": "dat"})
    with zipfile.ZipFile(io.BytesIO(sample.content)) as z:
        assert marker in z.read("customer-1/patient.DAT").decode()  # the sample has it, as it should
    # values sent back in forms and bodies are never echoed into errors or the log
    r = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                     json={"account_id": 1, "customers": [1], "format": marker})
    assert r.status_code == 422 and marker not in r.text
    r = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                     json={"account_id": 1, "customers": [marker]})
    assert r.status_code == 422 and marker not in r.text
    assert requests.get(f"{web.url}/api/accounts/1/audit", headers=auth, params={"since": marker}).status_code == 422
    _login(web, marker + "@example.test", marker, "192.0.2.9")
    log = web.log_text()
    assert "GET /api/accounts/1/sample.zip" in log  # the log is there, and has requests in it
    assert marker not in log
