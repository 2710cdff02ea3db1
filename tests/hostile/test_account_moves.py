"""A customer moved to another account between two nightly rounds (issue 24, case 1). On the
main of issue 24 the old account kept receiving the moved customer's rows: the saved selection
was delivered as it was stored (a fresh `customer-1/patient.DAT`), the previous package stayed
downloadable, and Data Sync went on copying into and out of the moved customer.

Now every delivery, sample, download and sync application checks, when it runs, that each
customer belongs to the account it is for: a moved customer is dropped from the selection
(a message to both accounts, an audit record) and the old account's packages holding it are
no longer served. Here: 0 rows of the moved customer reach the old account afterwards, through
a package, a zip, a sample or Data Sync (the real capture and worker)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
import requests

from snapsync.connectors.state import connect_source, connect_state
from snapsync.control import audit, data_sync, snapshot_settings, sync_groups, sync_tasks, users
from snapsync.schemas.catalog import dataset
from snapsync.schemas.control import SyncGroup
from snapsync.schemas.messages import SyncCommand
from snapsync.schemas.schedule import local_to_utc
from snapsync.sinks.scheduler import run_round
from snapsync.streams.sync_apply import apply_command
from tests.conftest import qs, sig
from tests.integration.pipeline import q, running_pipeline, wait_until
from tests.web.helpers import PASSWORD, running_web

DAY1, DAY2 = dt.date(2026, 4, 14), dt.date(2026, 4, 15)
MOVED = 1  # account 1 has customers 1, 3, 5; account 2 has 2, 4, 6; customer 1 moves to account 2


@pytest.fixture(scope="module")
def pipeline(base_settings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("moves")
    with running_pipeline(base_settings, tmp, "acctmoves", customers=6, seed_value=13, accounts=2,
                          home=str(tmp / "home")) as (s, _log, _workers):
        yield s, tmp


def dat_customers(content: bytes) -> dict[str, set[int]]:
    """``{file: customer ids of its rows}`` for every .DAT file of a zip."""
    found = {}
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        for name in z.namelist():
            if not name.endswith(".DAT"):
                continue
            lines = z.read(name).decode().split("\n")
            header = lines[0].split("\t")
            if "customer_id" not in header:
                continue
            at = header.index("customer_id")
            found[name] = {int(line.split("\t")[at]) for line in lines[1:] if line}
    return found


def rows_of(content: bytes, customer: int) -> int:
    """Rows of ``customer`` in a zip (manifest names and .DAT rows)."""
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        named = sum(1 for n in z.namelist() if n.startswith(f"customer-{customer}/"))
    return named + sum(customer in ids for ids in dat_customers(content).values())


def count(s, table: str, customer: int, where: str, args=()) -> int:
    return q(s, f"SELECT COUNT(*) FROM `{table}` WHERE customer_id = %s AND {where}", (customer, *args))[0][0]


def quiet(s, seconds: float = 3.0) -> None:
    """Until no sync command has been applied for ``seconds`` (the worker has caught up)."""
    import time

    def applied():
        return q(s, f"SELECT COUNT(*) FROM {sig(s, 'snapsync_sync_applied')}")[0][0]

    last, since = applied(), time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.3)
        now = applied()
        if now != last:
            last, since = now, time.monotonic()


def test_a_moved_customer_reaches_its_old_account_no_more(pipeline):
    s, tmp = pipeline
    users.add_user(s, 1, "olga@example.test", "auth-rep", PASSWORD, who="test-setup")
    token = users.issue_token(s, "olga@example.test", who="test-setup")
    auth = {"Authorization": f"Bearer {token}"}
    snapshot_settings.configure(s, 1, who="test-setup", enabled=True, customers=(1, 3), format="dat",
                                packaging="per-customer", kind="full")
    data_sync.enable_service(s, 1, who="test-setup")
    g1, copies1 = data_sync.create_group(s, 3, (1, 5), ("codes",), "create-only", who="test-setup")
    g2, copies2 = data_sync.create_group(s, 1, (5,), ("facilities",), "create-only", who="test-setup")
    done = sync_tasks.wait_for(s, [*copies1.values(), *copies2.values()], timeout=120)
    assert [t.state for t in done] == ["done"] * 3

    # round 1: the customer is still account 1's, and its package is delivered
    first = run_round(s, local_to_utc(DAY1, dt.time(2)))
    assert [d["account_id"] for d in first] == [1]
    assert {p["package"] for p in first[0]["packages"]} == {"customer-1", "customer-3"}

    with running_web(s, tmp / "web.log") as web:
        api = f"{web.url}/api/accounts/1"
        before = requests.get(api + "/deliveries/current.zip", headers=auth)
        assert before.status_code == 200 and rows_of(before.content, MOVED) > 0  # the test sees what it counts

        q(s, "UPDATE customer SET account_id = 2 WHERE customer_id = %s", (MOVED,))

        # the packages already delivered that hold the customer are not served any more
        whole = requests.get(api + "/deliveries/current.zip", headers=auth)
        assert whole.status_code == 200 and rows_of(whole.content, MOVED) == 0
        assert any(n.startswith("customer-3/") for n in zipfile.ZipFile(io.BytesIO(whole.content)).namelist())
        one = requests.get(api + "/deliveries/current.zip", headers=auth, params={"package": "customer-1"})
        assert one.status_code == 404 and "no longer" in one.json()["detail"]
        page = requests.get(f"{web.url}/accounts/1/downloads", headers=auth)
        assert page.status_code == 200 and 'id="download-customer-1"' not in page.text
        assert "no longer available" in page.text
        # the sample is the account's customers of now
        sample = requests.get(api + "/sample.zip", headers=auth)
        assert sample.status_code == 200 and rows_of(sample.content, MOVED) == 0

        # Data Sync, on the real capture and worker: a new code of customer 3 reaches 5, not 1 (now
        # another account's); a new facility of 1 (another account's data now) reaches no one
        new_item(s, "icd_code", 3, "ZZMOVED1")
        new_item(s, "facility", MOVED, "ZZFAC1")
        wait_until(lambda: count(s, "icd_code", 5, "code = 'ZZMOVED1'") == 1, timeout=90, what="the code in 5")
        quiet(s)
        assert count(s, "icd_code", MOVED, "code = 'ZZMOVED1'") == 0
        assert count(s, "facility", 5, "facility_code = 'ZZFAC1'") == 0
        # the groups lost the moved customer: 3's group keeps 5, 1's group is gone
        wait_until(lambda: [(g.source_customer, g.targets) for g in sync_groups.load_groups_for(s, 1)] == [(3, (5,))],
                   timeout=30, what="the groups without customer 1")

        # a command planned before the move (still on the topic) is not applied either
        cmd = SyncCommand(command_id="before-the-move:1", group_id=g2.group_id, mode="create-only", table="facility",
                          source_customer=MOVED, target_customer=5,
                          values={**facility_image(s, MOVED), "facility_code": "ZZFAC2"})
        with connect_source(s) as conn, connect_state(s) as state:
            assert apply_command(conn, state, cmd) == "moved"
        assert count(s, "facility", 5, "facility_code = 'ZZFAC2'") == 0
        # nor an initial copy queued before the move
        with connect_state(s) as state:
            cur = state.cursor()
            task = sync_tasks.enqueue_copy(cur, SyncGroup(group_id=g1.group_id, account_id=1, source_customer=3,
                                                          targets=(MOVED,), categories=("codes",)), [MOVED])[MOVED]
            state.commit()
        (outcome,) = sync_tasks.wait_for(s, [task], timeout=60)
        assert outcome.state == "failed" and "no longer belongs" in outcome.error
        assert count(s, "icd_code", MOVED, "code = 'ZZMOVED1'") == 0

        # round 2: the selection is re-checked, the customer dropped with a message to both accounts
        second = run_round(s, local_to_utc(DAY2, dt.time(2)))
        assert [d["account_id"] for d in second] == [1]
        assert {p["package"] for p in second[0]["packages"]} == {"customer-3"}
        assert snapshot_settings.get(s, 1).customers == (3,)
        after = requests.get(api + "/deliveries/current.zip", headers=auth)
        assert after.status_code == 200 and rows_of(after.content, MOVED) == 0
        assert requests.get(api + "/snapshot-settings", headers=auth).json()["customers"] == [3]
        snapshots = requests.get(f"{web.url}/accounts/1/snapshots", headers=auth).text
        assert 'id="customer-3" checked' in snapshots and 'id="customer-1"' not in snapshots

    notices = qs(s, "SELECT account_id, message FROM snapsync_notification WHERE kind = 'customer_moved'")
    assert {a for a, _m in notices} == {1, 2}
    assert all(f"Customer {MOVED}" in m for _a, m in notices)
    history = audit.account_history(s, 1)
    moved = [r for r in history if r["action"] == "customer-moved"]
    assert {r["entity"] for r in moved} == {"snapshot_settings", "sync_group"}
    settings_record = next(r for r in moved if r["entity"] == "snapshot_settings")
    assert settings_record["before"]["customers"] == [1, 3] and settings_record["after"]["customers"] == [3]


def new_item(s, table: str, customer: int, key: str) -> None:
    """A new item of ``customer`` (a copy of its first one under another natural key)."""
    ds = dataset(table)
    rest = ", ".join(f"`{c}`" for c in ds.sync_columns if c != ds.natural_key[0])
    q(s, f"INSERT INTO `{table}` (customer_id, `{ds.natural_key[0]}`, {rest}) SELECT customer_id, %s, {rest} "
         f"FROM `{table}` WHERE customer_id = %s ORDER BY id LIMIT 1", (key, customer))


def facility_image(s, customer: int) -> dict:
    """A facility row of ``customer`` as the change stream carries it."""
    from snapsync.connectors.mysql import connect, encoded_rows

    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM facility WHERE customer_id = %s ORDER BY id LIMIT 1", (customer,))
        return encoded_rows(cur)[0]
