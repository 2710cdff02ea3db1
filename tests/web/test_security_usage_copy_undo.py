"""Security of issue 22's routes against the running `snapsync web` (stack22: account 1 has
customers 1, 4, 7; account 2 has 2, 5, 8; account 3 has 3, 6, 9 and no users): another
account's copy, application and usage on every new route; what a requester sees of the other
account before and after approval; roles; CSRF; the API's answers."""

from __future__ import annotations

import re

import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.control import data_copy, data_sync, sync_groups, sync_history, sync_tasks, usage, users
from snapsync.schemas.control import DataCopyRequest
from tests.conftest import qs
from tests.web.helpers import session
from tests.web.test_security import account_routes

NEW_ROUTES = ("/usage", "/copies", "/sync/undo/", "/sync-overrides")


def q(s, sql: str, args=()) -> list:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


@pytest.fixture(scope="module")
def secrets(stack22):
    """Names of accounts 2 and 3 and their customers, and bob's e-mail: what account 1 must never read."""
    s, _web = stack22
    names = [r[0] for r in q(s, "SELECT name FROM account WHERE account_id IN (2, 3)")]
    names += [r[0] for r in q(s, "SELECT name FROM customer WHERE account_id IN (2, 3)")]
    return [*names, "bob@example.test"]


def allowed(s) -> set[str]:
    """What account 1 may read of other accounts (other modules' copies too): the target
    customers' names of the copies it asked for that were approved, and what another account
    chose to tell it by asking it for a copy (its name, its source customer's)."""
    copies = data_copy.account_copies(s, 1)
    return ({c["target_name"] for c in copies["sent"] if c["target_name"]}
            | {c["from_account_name"] for c in copies["received"]} | {c["source_name"] for c in copies["received"]})


def copy_items(web, auth) -> int:
    return requests.get(f"{web.url}/api/accounts/1/usage", headers=auth).json()["by_kind"]["data_copy"]["sync_items"]


@pytest.fixture(scope="module")
def theirs(stack22):
    """Objects account 1 has nothing to do with: a copy between accounts 2 and 3, an
    application of account 2's Data Sync."""
    s, _web = stack22
    copy = data_copy.request(s, 2, DataCopyRequest(source_customer=2, to_account=3, to_customer=6,
                                                   categories=("codes",)), who="bob@example.test")
    sync_groups.set_service(s, 2, True)
    group, tasks = data_sync.create_group(s, 2, (8,), ("facilities",), "override", account_id=2, who="bob@example.test")
    assert [t.state for t in sync_tasks.wait_for(s, list(tasks.values()), 60)] == ["done"]
    audit_id = max(i["audit_id"] for items in sync_history.recent_overrides(s, 2, [group.group_id]).values()
                   for i in items)
    return {"copy_id": copy.copy_id, "audit_id": audit_id, "group_id": group.group_id}


@pytest.fixture(scope="module")
def alice(stack22):
    return session(stack22[1], "alice@example.test")


@pytest.fixture(scope="module")
def alice_token(stack22):
    return users.issue_token(stack22[0], "alice@example.test", who="test-setup")


def _call(client, web, method, path, csrf, **headers):
    url = web.url + path
    if path.startswith("/api/"):
        body = {"source_customer": 2, "to_account": 3, "to_customer": 6, "categories": ["codes"], "force": True,
                "target_customer": 6}
        return client.request(method, url, json=body if method == "POST" else None,
                              headers={"X-CSRF-Token": csrf, **headers}, allow_redirects=False, timeout=60)
    return client.request(method, url, data={"csrf_token": csrf, "force": "on", "target_customer": "6"}
                          if method == "POST" else None, headers=headers, allow_redirects=False, timeout=60)


def test_every_new_route_answers_404_for_another_accounts_ids(stack22, theirs, secrets, alice, alice_token):
    s, web = stack22
    routes = [(m, t) for m, t in account_routes(s) if any(p in t for p in NEW_ROUTES)]
    assert len(routes) >= 20
    cookie, csrf = alice
    bearer = requests.Session()
    ids = {"copy_id": theirs["copy_id"], "audit_id": theirs["audit_id"], "group_id": theirs["group_id"]}
    for method, template in routes:
        for client, auth in ((cookie, {}), (bearer, {"Authorization": f"Bearer {alice_token}"})):
            if not template.startswith("/api/") and auth:
                continue
            other = _call(client, web, method, template.format(account_id=2, **ids), csrf, **auth)
            nobody = _call(client, web, method, template.format(account_id=99999, **ids), csrf, **auth)
            assert other.status_code == 404, (method, template, other.status_code)
            assert (other.status_code, other.content) == (nobody.status_code, nobody.content), (method, template)
            if "{copy_id}" in template or "{audit_id}" in template:  # our account, their copy or application
                ours = _call(client, web, method, template.format(account_id=1, **ids), csrf, **auth)
                none = _call(client, web, method, template.format(account_id=1, copy_id=99999, audit_id=99999,
                                                                  group_id=1), csrf, **auth)
                assert ours.status_code == 404 and ours.content == none.content, (method, template, ours.text[:200])
                assert not any(x in ours.text for x in secrets), (method, template)
    # nothing of theirs changed
    assert data_copy.find(s, None, theirs["copy_id"])[0].state == "requested"
    assert not qs(s, "SELECT 1 FROM snapsync_audit WHERE entity = 'sync_apply' AND action = 'undo' AND "
                     "entity_id = %s", (str(theirs["audit_id"]),))


def test_the_requester_sees_nothing_of_the_other_account_before_approval_and_only_the_target_after(
        stack22, secrets, alice_token):
    s, web = stack22
    auth = {"Authorization": f"Bearer {alice_token}"}
    api = f"{web.url}/api/accounts/1/copies"
    body = {"source_customer": 1, "to_customer": 5, "categories": ["referring_providers"]}
    real = requests.post(api, json={**body, "to_account": 2}, headers=auth)
    ghost = requests.post(api, json={**body, "to_account": 424242}, headers=auth)
    assert real.status_code == ghost.status_code == 201, real.text
    a, b = real.json(), ghost.json()
    assert {k: v for k, v in a.items() if k not in ("copy_id", "requested_at", "to_account")} == \
        {k: v for k, v in b.items() if k not in ("copy_id", "requested_at", "to_account")}
    assert a["target_customer"] is None and a["target_name"] is None
    cid = a["copy_id"]
    s_cookie, _csrf = session(web, "alice@example.test")
    pages = [s_cookie.get(f"{web.url}/accounts/1/copies/{cid}").text, s_cookie.get(f"{web.url}/accounts/1/copies").text,
             requests.get(f"{api}/{cid}", headers=auth).text, requests.get(api, headers=auth).text,
             s_cookie.get(f"{web.url}/accounts/1/messages").text,
             requests.get(f"{web.url}/api/accounts/1/audit", headers=auth, params={"entity": "data_copy"}).text]
    shown = allowed(s)
    for text in pages:
        assert not [x for x in secrets if x in text and x not in shown]
    # account 2 approves into its customer 8 (not the one asked): account 1 sees that customer, no other
    mine_before = copy_items(web, auth)
    theirs_before = usage.account_usage(s, 2)["by_kind"]["data_copy"]["sync_items"]
    bob = users.issue_token(s, "bob@example.test", who="test-setup")
    r = requests.post(f"{web.url}/api/accounts/2/copies/{cid}/approve", json={"target_customer": 8},
                      headers={"Authorization": f"Bearer {bob}"}, params={"wait": 30})
    assert r.status_code == 200 and r.json()["state"] == "done", r.text
    name8 = q(s, "SELECT name FROM customer WHERE customer_id = 8")[0][0]
    after = requests.get(f"{api}/{cid}", headers=auth).json()
    assert (after["status"], after["target_customer"], after["target_name"]) == ("done", 8, name8)
    assert set(after["result"]) == {"source_items"}  # its own items sent; nothing of what account 2 had
    others = [x for x in secrets if x not in allowed(s)]
    assert name8 in allowed(s)
    for text in (s_cookie.get(f"{web.url}/accounts/1/copies/{cid}").text,
                 requests.get(f"{api}/{cid}", headers=auth).text,
                 s_cookie.get(f"{web.url}/accounts/1/messages").text, s_cookie.get(f"{web.url}/accounts/1/audit").text,
                 requests.get(f"{web.url}/api/accounts/1/usage", headers=auth).text):
        assert not any(x in text for x in others)
    # the requester may not act for the receiving account: approve, decline, undo are "not found"
    for action in ("approve", "decline", "undo"):
        r = requests.post(f"{api}/{cid}/{action}", json={} if action != "approve" else {"target_customer": 1},
                          headers=auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}, action
    # the receiving account's usage counts the copy's items; the requester's does not
    assert copy_items(web, auth) == mine_before
    made = data_copy.copy_view(s, 2, cid)["result"]
    assert usage.account_usage(s, 2)["by_kind"]["data_copy"]["sync_items"] == \
        theirs_before + made["created"] + made["overridden"]


def test_viewers_cannot_request_approve_or_undo(stack22):
    s, web = stack22
    token = users.issue_token(s, "vera@example.test", who="test-setup")
    auth = {"Authorization": f"Bearer {token}"}
    api = f"{web.url}/api/accounts/1"
    assert requests.get(api + "/copies", headers=auth).status_code == 200
    assert requests.get(api + "/usage", headers=auth).status_code == 200
    assert requests.get(api + "/sync-overrides", headers=auth).status_code == 200
    r = requests.post(api + "/copies", headers=auth,
                      json={"source_customer": 1, "to_account": 2, "to_customer": 5, "categories": ["codes"]})
    assert r.status_code == 403
    copy = data_copy.request(s, 2, DataCopyRequest(source_customer=5, to_account=1, to_customer=4,
                                                   categories=("payers",)), who="bob@example.test")
    for action, body in (("approve", {"target_customer": 4}), ("decline", {}), ("undo", {})):
        assert requests.post(f"{api}/copies/{copy.copy_id}/{action}", json=body, headers=auth).status_code == 403
    v, csrf = session(web, "vera@example.test")
    assert v.get(f"{web.url}/accounts/1/copies/new").status_code == 403
    r = v.post(f"{web.url}/accounts/1/copies/{copy.copy_id}/approve", data={"csrf_token": csrf, "target_customer": "4"})
    assert r.status_code == 403
    assert data_copy.find(s, None, copy.copy_id)[0].state == "requested"


def test_new_forms_without_their_csrf_token_are_refused(stack22):
    s, web = stack22
    copy = data_copy.request(s, 2, DataCopyRequest(source_customer=2, to_account=1, to_customer=7,
                                                   categories=("codes",)), who="bob@example.test")
    client, csrf = session(web, "alice@example.test")
    before = len(data_copy.account_copies(s, 1)["sent"])
    forms = [("/accounts/1/copies", {"source_customer": "1", "to_account": "2", "to_customer": "5",
                                     "categories": "codes"}),
             (f"/accounts/1/copies/{copy.copy_id}/approve", {"target_customer": "7"}),
             (f"/accounts/1/copies/{copy.copy_id}/decline", {}),
             (f"/accounts/1/copies/{copy.copy_id}/undo", {}),
             ("/accounts/1/sync/undo/1", {})]
    for path, data in forms:
        for token in (None, "forged"):
            r = client.post(web.url + path, data={**data, **({"csrf_token": token} if token else {})},
                            allow_redirects=False)
            assert r.status_code == 403 and "did not come from this site" in r.text, path
    # the API with the session cookie needs the header
    r = client.post(f"{web.url}/api/accounts/1/copies/{copy.copy_id}/decline", json={})
    assert r.status_code == 403
    assert len(data_copy.account_copies(s, 1)["sent"]) == before
    assert data_copy.find(s, None, copy.copy_id)[0].state == "requested"
    # with the token, the decline goes through
    r = client.post(f"{web.url}/accounts/1/copies/{copy.copy_id}/decline", data={"csrf_token": csrf},
                    allow_redirects=False)
    assert r.status_code == 303 and data_copy.find(s, None, copy.copy_id)[0].state == "declined"


def test_the_usage_api_and_its_shortcut(stack22, alice_token):
    _s, web = stack22
    auth = {"Authorization": f"Bearer {alice_token}"}
    r = requests.get(f"{web.url}/api/usage", headers=auth, params={"month": "2026-03"}, allow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/api/accounts/1/usage?month=2026-03"
    r = requests.get(f"{web.url}/api/usage", headers=auth, params={"month": "2026-03"})
    assert r.status_code == 200 and r.json()["account_id"] == 1 and r.json()["month"] == "2026-03"
    assert set(r.json()["billable"]) == {"deliveries", "rows", "bytes", "data_sets", "sync_items"}
    marker = "PHIMARK-22"
    for url in (f"{web.url}/api/usage", f"{web.url}/api/accounts/1/usage"):
        bad = requests.get(url, headers=auth, params={"month": marker})
        assert bad.status_code == 422 and "YYYY-MM" in bad.text and marker not in bad.text
    assert requests.get(f"{web.url}/api/usage").status_code == 401
    history = requests.get(f"{web.url}/api/accounts/1/usage/history", headers=auth).json()
    assert len(history) == 13 and history[-1]["month"] > history[0]["month"]
    spec = requests.get(web.url + "/api/openapi.json").json()
    assert {"/api/usage", "/api/accounts/{account_id}/usage", "/api/accounts/{account_id}/copies",
            "/api/accounts/{account_id}/copies/{copy_id}/approve", "/api/accounts/{account_id}/sync-overrides",
            "/api/accounts/{account_id}/sync-overrides/{audit_id}/undo"} <= set(spec["paths"])


def test_new_pages_load_nothing_from_elsewhere(stack22, alice):
    _s, web = stack22
    client, _csrf = alice
    for path in ("usage", "usage/pricing", "copies", "copies/new", "services", "sync"):
        r = client.get(f"{web.url}/accounts/1/{path}")
        assert r.status_code == 200, path
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path
        assert r.headers["cache-control"] == "no-store" and "default-src 'self'" in r.headers["content-security-policy"]
