"""The JSON API of issue 22 with a personal token (stack22): undo of a Data Sync override with
the conflict check (409 with the later edits, kept; then forced), and a Data Copy asked of
account 1, approved, made and undone."""

from __future__ import annotations

import requests

from snapsync.connectors.mysql import connect
from snapsync.control import data_copy, data_sync, sync_groups, sync_tasks, users
from snapsync.schemas.control import DataCopyRequest
from tests.web.test_browser_usage_copy_undo import override_of_the_stream


def q(s, sql: str, args=()) -> list:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


def test_undo_of_an_override_through_the_api(stack22):
    s, web = stack22
    auth = {"Authorization": f"Bearer {users.issue_token(s, 'alice@example.test', who='test-setup')}"}
    api = f"{web.url}/api/accounts/1"
    sync_groups.set_service(s, 1, True)
    group, tasks = data_sync.create_group(s, 1, (4,), ("payers",), "override")
    try:
        assert [t.state for t in sync_tasks.wait_for(s, list(tasks.values()), 60)] == ["done"]
        old = dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 4"))
        code = override_of_the_stream(s, group.group_id, 1, 4, "Renamed through the API test")
        listed = requests.get(api + "/sync-overrides", headers=auth).json()[str(group.group_id)]
        newest = listed[0]
        assert newest["replaced"][0]["key"] == {"payer_code": code}
        assert {"column": "name", "before": old[code], "after": "Renamed through the API test"} in \
            newest["replaced"][0]["changes"]
        assert listed[1]["initial_copy"] and listed[1]["undone"] is None
        q(s, "UPDATE payor SET phone = '555-0100' WHERE customer_id = 4 AND payer_code = %s", (code,))  # later

        r = requests.post(f"{api}/sync-overrides/{newest['audit_id']}/undo", json={}, headers=auth,
                          params={"wait": 30})
        assert r.status_code == 409, r.text
        (conflict,) = r.json()["conflicts"]
        assert conflict["columns"] == ["phone"] and conflict["now"] == {"phone": "555-0100"}
        assert "555-0100" not in r.json()["detail"]  # the message names columns, never values
        assert q(s, "SELECT name, phone FROM payor WHERE customer_id = 4 AND payer_code = %s", (code,)) == [
            ("Renamed through the API test", "555-0100")]  # kept
        r = requests.post(f"{api}/sync-overrides/{newest['audit_id']}/undo", json={"force": True}, headers=auth,
                          params={"wait": 30})
        assert r.status_code == 200 and r.json()["result"]["rows"] == 1, r.text
        assert q(s, "SELECT name FROM payor WHERE customer_id = 4 AND payer_code = %s", (code,)) == [(old[code],)]
        item = requests.get(f"{api}/sync-overrides/{newest['audit_id']}", headers=auth).json()
        assert item["undone"]["by"] == "alice@example.test" and item["undone"]["forced"] is True
        r = requests.post(f"{api}/sync-overrides/{newest['audit_id']}/undo", json={"force": True}, headers=auth,
                          params={"wait": 30})
        assert r.status_code == 422 and "nothing to undo" in r.json()["detail"]  # once
        assert requests.post(f"{api}/sync-overrides/{newest['audit_id']}/undo", json={"forse": True},
                             headers=auth).status_code == 422  # an unknown field
    finally:
        sync_groups.delete_group(s, group.group_id)
        sync_groups.set_service(s, 1, False)


def test_a_copy_asked_of_this_account_through_the_api(stack22):
    s, web = stack22
    auth = {"Authorization": f"Bearer {users.issue_token(s, 'alice@example.test', who='test-setup')}"}
    api = f"{web.url}/api/accounts/1/copies"
    q(s, "INSERT INTO facility (customer_id, facility_code, name, npi, pos_code, address1, active, created_at, "
         "updated_at) VALUES (8, 'FAC-API', 'New clinic', '1234567890', '11', '1 Main St', 1, NOW(6), NOW(6))")
    copy = data_copy.request(s, 2, DataCopyRequest(source_customer=8, to_account=1, to_customer=7,
                                                   categories=("facilities",)), who="bob@example.test")
    received = {c["copy_id"]: c for c in requests.get(api, headers=auth).json()["received"]}
    asked = received[copy.copy_id]
    assert asked["status"] == "requested" and asked["to_customer_name"] is not None
    assert "requested_by" not in asked  # the other account's people are not shown
    before = q(s, "SELECT COUNT(*) FROM facility WHERE customer_id = 7")[0][0]
    r = requests.post(f"{api}/{copy.copy_id}/approve", json={}, headers=auth, params={"wait": 0})
    assert r.status_code in (200, 202) and r.json()["kind"] == "data_copy"
    (task,) = sync_tasks.wait_for(s, [r.json()["task_id"]], 60)
    assert task.state == "done"
    shown = requests.get(f"{api}/{copy.copy_id}", headers=auth).json()
    assert shown["status"] == "done" and shown["target_customer"] == 7 and shown["result"]["created"] >= 1
    assert q(s, "SELECT COUNT(*) FROM facility WHERE customer_id = 7")[0][0] == before + shown["result"]["created"]
    assert requests.post(f"{api}/{copy.copy_id}/decline", headers=auth).status_code == 422  # done already
    r = requests.post(f"{api}/{copy.copy_id}/undo", json={"force": True}, headers=auth, params={"wait": 30})
    assert r.status_code == 200 and r.json()["result"]["rows"] >= shown["result"]["created"], r.text
    assert q(s, "SELECT COUNT(*) FROM facility WHERE customer_id = 7")[0][0] == before
    assert requests.get(f"{api}/{copy.copy_id}", headers=auth).json()["status"] == "undone"
