"""Data Copy between accounts on the real database, through the CLI (`snapsync copy`) and the
worker's task runner: request, approve, the copy, undo (refused when items changed since,
then confirmed), decline; audit and messages in both accounts; what each account sees.
Customers 1 and 3 belong to account 1, 2 and 4 to account 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import data_copy, usage
from snapsync.control.sync_tasks import TaskRunner
from snapsync.schemas.catalog import sync_datasets
from snapsync.schemas.control import DataCopyRequest
from snapsync.schemas.errors import ConfigError, NotFoundError
from snapsync.seed import seed
from tests.conftest import env_for, new_database, qs, settings_for

BIN = str(Path(sys.executable).with_name("snapsync"))


@pytest.fixture(scope="module")
def two_accounts(base_settings):
    s = new_database(settings_for(base_settings, "datacopy"))
    with connect(s.db) as conn:
        seed(conn, customers=4, scale=0.004, seed_value=23, accounts=2)
    runner = TaskRunner(s, "test-worker", interval=0.1).start()  # the worker's task runner
    yield s
    runner.stop.set()


def run(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], env=env_for(s), capture_output=True, text=True, timeout=180)


def q(s, sql: str, args=()) -> list:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


def payers(s, customer: int) -> dict[str, str]:
    return dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = %s", (customer,)))


def others(s, customer: int) -> dict[str, int]:
    """Rows per sync data set but payers."""
    return {ds.table: q(s, f"SELECT COUNT(*) FROM `{ds.table}` WHERE customer_id = %s", (customer,))[0][0]
            for ds in sync_datasets() if ds.table != "payor"}


def test_request_approve_copy_and_undo_through_the_cli(two_accounts):
    s = two_accounts
    # customer 4 (account 2) has a payer that customer 1 also has, under another name
    source = payers(s, 1)
    code = next(c for c in payers(s, 4) if c in source)
    q(s, "UPDATE payor SET name = 'Theirs', billing_options = 'keep-me' WHERE customer_id = 4 AND payer_code = %s",
      (code,))
    theirs_before = payers(s, 4)
    others_before = others(s, 4)

    r = run(s, "copy", "request", "--from-customer", "1", "--to-account", "2", "--to-customer", "4", "--data",
            "payers", "--mode", "override", "--json")
    assert r.returncode == 0, r.stderr
    copy_id = json.loads(r.stdout)["copy_id"]
    assert payers(s, 4) == theirs_before  # nothing happens before approval
    # account 2 is told; account 1 sees only what it typed
    msg = qs(s, "SELECT account_id, message FROM snapsync_notification WHERE kind = 'data_copy_request'")
    assert [m[0] for m in msg] == [2] and "approve or decline" in msg[0][1]
    mine = data_copy.account_copies(s, 1)["sent"][0]
    assert mine["status"] == "requested" and mine["target_customer"] is None and mine["target_name"] is None

    r = run(s, "copy", "approve", str(copy_id))
    assert r.returncode == 0, r.stderr
    assert "item(s) created" in r.stdout
    got = payers(s, 4)
    assert {c: got[c] for c in source} == source  # override: the shared payer now has customer 1's name
    assert {c: n for c, n in got.items() if c not in source} == {c: n for c, n in theirs_before.items()
                                                                 if c not in source}
    assert q(s, "SELECT billing_options FROM payor WHERE customer_id = 4 AND payer_code = %s", (code,)) == [
        ("keep-me",)]  # never copied
    assert others(s, 4) == others_before  # only payers moved
    mine = data_copy.copy_view(s, 1, copy_id)
    name4 = q(s, "SELECT name FROM customer WHERE customer_id = 4")[0][0]
    assert (mine["status"], mine["target_customer"], mine["target_name"]) == ("done", 4, name4)
    assert mine["result"] == {"source_items": {"payor": len(source)}}  # A's own count, nothing of B's
    theirs = data_copy.copy_view(s, 2, copy_id)
    assert theirs["result"]["created"] == len(set(source) - set(theirs_before))
    assert theirs["result"]["overridden"] >= 1
    # both accounts got a message and an audit record of each step
    kinds = {(a, k) for a, k in qs(s, "SELECT account_id, kind FROM snapsync_notification")}
    assert {(1, "data_copy_approved"), (1, "data_copy_done"), (2, "data_copy_done")} <= kinds
    for account in (1, 2):
        actions = [a for (a,) in qs(s, "SELECT action FROM snapsync_audit WHERE entity = 'data_copy' AND "
                                       "account_id = %s AND entity_id = %s ORDER BY audit_id", (account, str(copy_id)))]
        assert actions == ["request", "approve", "done"], (account, actions)
    # the items are counted in the receiving account's usage, once
    written = theirs["result"]["created"] + theirs["result"]["overridden"]
    assert usage.account_usage(s, 2)["by_kind"]["data_copy"]["sync_items"] == written
    assert usage.account_usage(s, 1)["by_kind"]["data_copy"]["sync_items"] == 0

    # a later edit in customer 4: undo is refused, naming it, and changes nothing
    other = next(c for c in source if c != code)
    q(s, "UPDATE payor SET name = 'Edited later' WHERE customer_id = 4 AND payer_code = %s", (other,))
    r = run(s, "copy", "undo", str(copy_id))
    assert r.returncode == 2 and "changed after" in r.stderr and "--force" in r.stderr, r.stderr
    assert "Edited later" not in r.stderr  # no values in errors
    assert payers(s, 4)[other] == "Edited later"
    refused = data_copy.latest_undo(s, data_copy.find(s, 2, copy_id)[0])
    assert refused["state"] == "failed" and refused["result"]["conflicts"]
    assert refused["result"]["conflicts"][0]["data_set"] == "Payor"
    r = run(s, "copy", "undo", str(copy_id), "--force")
    assert r.returncode == 0, r.stderr
    assert payers(s, 4) == theirs_before  # as before the copy
    assert data_copy.copy_view(s, 1, copy_id)["status"] == "undone"
    for account in (1, 2):
        assert qs(s, "SELECT COUNT(*) FROM snapsync_audit WHERE entity = 'data_copy' AND action = 'undo' AND "
                     "account_id = %s AND entity_id = %s", (account, str(copy_id)))[0][0] == 1
    r = run(s, "copy", "undo", str(copy_id))
    assert r.returncode == 2 and "undone" in r.stderr  # once


def test_decline_and_what_each_side_may_do(two_accounts):
    s = two_accounts
    req = DataCopyRequest(source_customer=3, to_account=2, to_customer=2, categories=("codes",))
    copy = data_copy.request(s, 1, req, who="alice@example.test")
    # only the receiving account answers; the requester cannot approve its own request
    with pytest.raises(NotFoundError):
        data_copy.approve(s, 1, copy.copy_id, who="alice@example.test")
    # the receiving account picks only its own customers
    with pytest.raises(ConfigError, match="unknown customer 3"):
        data_copy.approve(s, 2, copy.copy_id, 3, who="bob@example.test")
    data_copy.decline(s, 2, copy.copy_id, who="bob@example.test")
    with pytest.raises(ConfigError, match="is declined"):
        data_copy.approve(s, 2, copy.copy_id, who="bob@example.test")
    assert data_copy.copy_view(s, 1, copy.copy_id)["status"] == "declined"
    assert qs(s, "SELECT message FROM snapsync_notification WHERE account_id = 1 AND kind = 'data_copy_declined'")
    # an account that is neither side: not found, as a copy that does not exist
    with pytest.raises(NotFoundError):
        data_copy.copy_view(s, 3, copy.copy_id)


def test_a_request_reveals_nothing_about_the_other_account(two_accounts):
    s = two_accounts
    asked = dict(source_customer=1, to_customer=4, categories=("payers",))
    real = data_copy.request(s, 1, DataCopyRequest(to_account=2, **asked), who="alice@example.test")
    ghost = data_copy.request(s, 1, DataCopyRequest(to_account=999, **asked), who="alice@example.test")
    a, b = data_copy.copy_view(s, 1, real.copy_id), data_copy.copy_view(s, 1, ghost.copy_id)
    for v in (a, b):
        v.pop("copy_id"), v.pop("requested_at"), v.pop("to_account")
    assert a == b  # an existing account and a missing one read the same to the requester
    # the CLI (an operator's tool) says what is wrong
    r = run(s, "copy", "request", "--from-customer", "1", "--to-account", "999", "--to-customer", "4", "--data",
            "payers")
    assert r.returncode == 2 and "unknown account 999" in r.stderr
    r = run(s, "copy", "request", "--from-customer", "1", "--to-account", "1", "--to-customer", "3", "--data",
            "payers")
    assert r.returncode == 2 and "Data Sync" in r.stderr
    r = run(s, "copy", "request", "--from-customer", "1", "--to-account", "2", "--to-customer", "4", "--data",
            "claims")
    assert r.returncode == 2 and "unknown data category" in r.stderr
    r = run(s, "copy", "list", "--account", "1", "--json")
    assert r.returncode == 0 and {c["copy_id"] for c in json.loads(r.stdout)["sent"]} >= {real.copy_id, ghost.copy_id}


def test_an_unanswered_request_expires(two_accounts):
    s = two_accounts
    copy = data_copy.request(s, 1, DataCopyRequest(source_customer=3, to_account=2, to_customer=4,
                                                   categories=("facilities",)), who="alice@example.test")
    qs(s, "UPDATE snapsync_data_copy SET requested_at = requested_at - INTERVAL 31 DAY WHERE copy_id = %s",
       (copy.copy_id,))
    assert data_copy.copy_view(s, 1, copy.copy_id)["status"] == "expired"
    with pytest.raises(ConfigError, match="is expired"):
        data_copy.approve(s, 2, copy.copy_id, who="bob@example.test")
    r = run(s, "sync", "tasks", "--account", "2")  # the copies' tasks are listed with Data Sync's
    assert r.returncode == 0 and "Data Copy" in r.stdout, r.stderr
