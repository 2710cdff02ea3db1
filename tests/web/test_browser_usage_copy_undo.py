"""The Auth Rep's stories of issue 22, step by step in headless Chromium: the Usage page and
its pricing notice, a Data Copy requested by account 1 and approved, made and undone by
account 2, a declined request, and undo of an override from the Data Sync page with its
conflict check. Account 1 has customers 1, 4, 7; account 2 has 2, 5, 8 (stack22)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from snapsync.connectors.mysql import connect, encoded_rows
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control import data_sync, snapshot_settings, sync_groups, sync_tasks, usage
from snapsync.control.audit import flush_outbox
from snapsync.schemas.messages import SyncCommand
from snapsync.schemas.schedule import local_day
from snapsync.sinks.scheduler import deliver
from snapsync.streams.sync_apply import apply_command
from tests.web.helpers import shot, sign_in

SEED_NOTICE = ("Usage of this feature will result in additional charges to your invoice. Click here for complete "
               "pricing information.")


def q(s, sql: str, args=()) -> list:
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


@pytest.fixture()
def second(browser):
    """A second person's browser (another account's Auth Rep)."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_an_auth_rep_reads_the_usage_page(page, stack22):
    s, web = stack22
    snapshot_settings.configure(s, 1, who="test-setup", enabled=True, customers=(1, 4), format="dat",
                                packaging="per-customer", kind="full")
    night = deliver(s, snapshot_settings.get(s, 1), local_day(dt.datetime.now(dt.timezone.utc)))
    before = usage.account_usage(s, 1)
    sign_in(page, web, "alice@example.test")
    # the snapshot dialog carries the document's notice, with its link
    page.click("#open-snapshots")
    assert " ".join(page.inner_text("#pricing-notice").split()).startswith(SEED_NOTICE)
    with page.expect_download():
        page.click("#download-sample")  # free: listed, never billed

    page.click("#nav-usage")
    page.wait_for_selector("#usage-chart")
    assert " ".join(page.inner_text("#pricing-notice").split()) == SEED_NOTICE
    now = page.locator("#now-nightly td.num")
    assert now.nth(0).inner_text() == str(before["by_kind"]["nightly"]["deliveries"])
    assert now.nth(1).inner_text() == f"{before['by_kind']['nightly']['rows']:,}"
    assert before["by_kind"]["nightly"]["rows"] >= night["rows"] > 0
    assert page.locator("#now-sample td.num").nth(0).inner_text() == str(before["by_kind"]["sample"]["deliveries"] + 1)
    assert "(free)" in page.inner_text("#now-sample")
    total = page.locator("#now-total th.num").nth(0).inner_text()
    assert total == str(before["billable"]["deliveries"])  # the sample is not in the total
    # this month and the past 12: thirteen bars and rows, this month's bar the highlighted one
    assert page.locator("#usage-chart rect.bar").count() == 13
    assert page.locator("#usage-months tbody tr").count() == 13
    this = page.locator("#usage-chart rect.bar.now")
    assert this.get_attribute("data-month") == f"{usage.this_month():%Y-%m}"
    assert this.get_attribute("data-value") == str(before["billable"]["deliveries"])
    shot(page, "13-usage")
    page.select_option("#measure", "rows")
    page.click("#show-chart")
    page.wait_for_url(re.compile(r".*measure=rows"))
    assert page.locator("#usage-chart rect.bar.now").get_attribute("data-value") == str(before["billable"]["rows"])
    page.click("#pricing-link")
    page.wait_for_selector("#pricing")
    assert "Download Sample is free" in page.inner_text("#pricing")
    shot(page, "14-pricing")


def test_a_data_copy_is_requested_approved_made_and_undone(page, second, stack22):
    s, web = stack22
    account2 = q(s, "SELECT name FROM account WHERE account_id = 2")[0][0]
    their_customers = {c: n for c, n in q(s, "SELECT customer_id, name FROM customer WHERE account_id = 2")}
    before = dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 5"))
    source = dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 1"))

    # account 1 asks, naming account 2's customer 5 (numbers account 2 gave it)
    sign_in(page, web, "alice@example.test")
    page.click("#open-copies")
    page.click("#request-copy")
    page.wait_for_selector("#copy-form")
    page.select_option("#source_customer", "1")
    page.fill("#to_account", "2")
    page.fill("#to_customer", "5")
    page.check("#category-payers")
    page.check("#mode-override")
    shot(page, "15-copy-request")
    page.click("#send-request")
    page.wait_for_selector("#saved")
    copy_id = int(re.search(r"/copies/(\d+)", page.url).group(1))
    assert page.inner_text("#copy-status") == "Requested"
    shown = page.inner_text("main")
    assert "customer #5 (as you asked" in shown
    assert account2 not in shown and not any(n in shown for n in their_customers.values())

    # account 2 reads it in Messages and approves it into its customer 5
    sign_in(second, web, "bob@example.test")
    second.click("#nav-messages")
    request = second.locator("li.message.kind-data_copy_request").first
    assert "approve or decline" in request.inner_text()
    request.locator("a.open-copy").click()
    second.wait_for_selector("#approve-form")
    assert second.eval_on_selector("#target_customer", "s => s.value") == "5"
    assert second.eval_on_selector_all("#target_customer option", "os => os.map(o => o.value)") == ["2", "5", "8"]
    shot(second, "16-copy-approve")
    second.click("#approve")
    second.wait_for_selector("#saved")
    assert "The copy was made" in second.inner_text("#saved")
    assert second.inner_text("#copy-status") == "Done"
    created = int(second.inner_text("#total-created"))
    assert created == len(set(source) - set(before))
    after = dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 5"))
    assert {c: after[c] for c in source} == source
    shot(second, "17-copy-done")

    # account 1 is told, and now sees the target customer's number and name, nothing else
    page.click("#nav-messages")
    done = page.locator("li.message.kind-data_copy_done").first
    assert f"customer #5 ({their_customers[5]})" in done.inner_text()
    done.locator("a.open-copy").click()
    page.wait_for_selector("#copied-items")
    shown = page.inner_text("main")
    assert their_customers[5] in shown and page.inner_text("#copy-status") == "Done"
    assert account2 not in shown and not any(n in shown for c, n in their_customers.items() if c != 5)
    assert "bob@example.test" not in shown

    # a later edit in customer 5: the undo shows it and keeps it unless confirmed
    edited = next(c for c in source if c in before)
    q(s, "UPDATE payor SET name = 'Edited after the copy' WHERE customer_id = 5 AND payer_code = %s", (edited,))
    second.click("#undo-copy")
    second.wait_for_selector("#conflicts")
    assert "Edited after the copy" in second.inner_text("#conflict-items")
    assert dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 5"))[edited] == "Edited after the copy"
    shot(second, "18-copy-undo-conflict")
    second.click("#undo-force")
    second.wait_for_selector("#saved")
    assert second.inner_text("#copy-status") == "Undone"
    assert dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 5")) == before
    page.reload()
    assert page.inner_text("#copy-status") == "Undone"
    assert copy_id > 0


def test_a_data_copy_request_is_declined(page, second, stack22):
    s, web = stack22
    sign_in(page, web, "alice@example.test")
    page.goto(web.url + "/accounts/1/copies/new")
    page.select_option("#source_customer", "4")
    page.fill("#to_account", "2")
    page.fill("#to_customer", "8")
    page.click("#send-request")  # nothing chosen: the error is beside the Data Options
    page.wait_for_selector("#error-categories")
    page.check("#category-codes")
    page.click("#send-request")
    page.wait_for_selector("#saved")
    copy_id = int(re.search(r"/copies/(\d+)", page.url).group(1))
    sign_in(second, web, "bob@example.test")
    second.goto(f"{web.url}/accounts/2/copies/{copy_id}")
    second.once("dialog", lambda d: d.accept())  # "Decline this Data Copy request?"
    second.click("#decline")
    second.wait_for_selector("#saved")
    assert second.inner_text("#copy-status") == "Declined"
    page.goto(web.url + "/accounts/1/copies")
    assert "Declined" in page.inner_text(f"#sent-{copy_id}")
    page.click("#nav-messages")
    assert "declined your Data Copy request" in page.inner_text("li.message.kind-data_copy_declined")


def override_of_the_stream(s, group_id: int, source: int, target: int, name: str) -> str:
    """One command of the stream applier: customer ``source``'s first payer, renamed, over
    ``target``'s (what the worker does when that payer is edited); returns its payer code."""
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM payor WHERE customer_id = %s ORDER BY id LIMIT 1", (source,))
        values = {**encoded_rows(cur)[0], "name": name}
    cmd = SyncCommand(command_id=f"browser-test:{group_id}", group_id=group_id, mode="override", table="payor",
                      source_customer=source, target_customer=target, values=values, path=(source,))
    with connect_source(s) as conn, connect_state(s) as state:
        assert apply_command(conn, state, cmd, mark=False) == "overridden"
        flush_outbox(conn, state)
    return values["payer_code"]


def test_an_auth_rep_undoes_an_override_from_the_data_sync_page(page, stack22):
    s, web = stack22
    sync_groups.set_service(s, 1, True)
    group, tasks = data_sync.create_group(s, 1, (7,), ("payers",), "override")
    try:
        assert [t.state for t in sync_tasks.wait_for(s, list(tasks.values()), 60)] == ["done"]
        old = dict(q(s, "SELECT payer_code, name FROM payor WHERE customer_id = 7"))
        code = override_of_the_stream(s, group.group_id, 1, 7, "Renamed by the sync")
        q(s, "UPDATE payor SET claim_format = '837I' WHERE customer_id = 7 AND payer_code = %s", (code,))  # later

        sign_in(page, web, "alice@example.test")
        page.click("#open-sync")
        page.wait_for_selector(f"#overrides-{group.group_id}")
        listing = page.locator(f"#overrides-{group.group_id} tbody tr")
        assert listing.count() == 2  # the synchronized edit (newest) and the initial copy
        newest = listing.first.inner_text()
        assert f"{old[code]} → Renamed by the sync" in newest and "Payor" in newest
        assert "initial copy" in listing.nth(1).inner_text()
        shot(page, "19-sync-overrides")
        listing.first.locator("a.button").click()
        page.wait_for_selector("#undo-form")
        page.click("#undo-application")
        page.wait_for_selector("#conflicts")  # the later edit is shown and kept
        assert "claim_format" in page.inner_text("#conflict-items") and "837I" in page.inner_text("#conflict-items")
        assert q(s, "SELECT name FROM payor WHERE customer_id = 7 AND payer_code = %s", (code,)) == [
            ("Renamed by the sync",)]
        shot(page, "20-sync-undo-conflict")
        page.click("#undo-force")
        page.wait_for_selector("#undone")
        assert q(s, "SELECT name FROM payor WHERE customer_id = 7 AND payer_code = %s", (code,)) == [(old[code],)]
        page.goto(web.url + "/accounts/1/sync")
        page.wait_for_selector(f"#overrides-{group.group_id}")
        assert "Undone" in page.locator(f"#overrides-{group.group_id} tbody tr").first.inner_text()
    finally:
        sync_groups.delete_group(s, group.group_id)
        sync_groups.set_service(s, 1, False)


def test_a_viewer_reads_usage_and_copies_without_acting(page, stack22):
    _s, web = stack22
    sign_in(page, web, "vera@example.test")
    page.click("#nav-usage")
    page.wait_for_selector("#usage-chart")
    page.goto(web.url + "/accounts/1/copies")
    assert page.locator("#request-copy").count() == 0
    page.goto(web.url + "/accounts/1/sync")
    assert page.locator("a[id^=undo-]").count() == 0

