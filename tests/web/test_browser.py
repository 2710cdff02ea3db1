"""The Auth Rep's stories, step by step in a real browser (Debian's headless Chromium).
Each saves a screenshot of every page it visits (docs/web.md shows them)."""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile

from snapsync.connectors.mysql import connect
from snapsync.control import deliveries, snapshot_settings, sync_groups
from snapsync.sinks.scheduler import deliver
from tests.web.helpers import shot, sign_in


def test_an_auth_rep_signs_in_and_sees_the_services(page, web):
    page.goto(web.url + "/")
    page.wait_for_selector("#login-form")
    shot(page, "01-sign-in")
    sign_in(page, web, "alice@example.test")
    assert page.inner_text("#service-snapshots h2") == "Recurring Data Snapshots"
    assert page.inner_text("#service-sync h2") == "Data Sync"
    assert "Account #1" in page.inner_text("header")
    shot(page, "02-services")


def test_an_auth_rep_configures_recurring_snapshots(page, web, web_db):
    sign_in(page, web, "alice@example.test")
    page.click("#open-snapshots")
    page.wait_for_selector("#snapshot-form")
    assert "Recurring Data Snapshot for Account #1" in page.inner_text("h1")
    # the format list comes from the package formats (a new format appears by itself)
    assert {"dat", "mysql"} <= set(page.eval_on_selector_all("#format option", "os => os.map(o => o.value)"))
    # the incremental data sets are listed beside the Incremental type
    listed = page.inner_text("#incremental-tables")
    for name in ("Patient", "Charge", "Credit", "Activity"):
        assert name in listed
    # only this account's customers are offered
    offered = page.eval_on_selector_all("#customers input", "xs => xs.map(x => x.value)")
    assert offered == ["1", "3", "5"]
    shot(page, "03-snapshots")

    # a mistake first: nothing selected -> the error appears beside the customers (another
    # module may have saved settings of account 1 before: clear its choice)
    for c in offered:
        page.uncheck(f"#customer-{c}")
    page.check("#enabled")
    page.click("#save")
    page.wait_for_selector("#error-customers")
    assert "select at least one customer" in page.inner_text("#error-customers")
    shot(page, "04-snapshots-error")

    page.check("#enabled")
    page.select_option("#format", "mysql")
    page.check("#kind-full")
    page.check("#customer-1")
    page.check("#customer-3")
    page.select_option("#packaging", "combined")
    page.click("#save")
    page.wait_for_selector("#saved")
    saved = snapshot_settings.get(web_db, 1)
    assert saved.enabled and saved.format == "mysql" and saved.customers == (1, 3) and saved.packaging == "combined"
    # Cancel leaves without saving
    page.select_option("#format", "dat")
    page.click("#cancel")
    page.wait_for_url(re.compile(r".*/services$"))
    assert snapshot_settings.get(web_db, 1).format == "mysql"
    assert "Enabled" in page.inner_text("#service-snapshots")


def test_an_auth_rep_downloads_a_sample(page, web):
    sign_in(page, web, "alice@example.test")
    page.goto(web.url + "/accounts/1/snapshots")
    page.select_option("#format", "dat")  # the link follows the format chosen, saved or not
    with page.expect_download() as download:
        page.click("#download-sample")
    path = download.value.path()
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert {"customer-1/manifest.json", "customer-3/manifest.json", "customer-5/manifest.json"} <= set(names)
        patient = z.read("customer-1/patient.DAT").decode().splitlines()
        assert len(patient) == 1 + 5  # the header and the first five rows
        assert not any(n.startswith("customer-2/") for n in names)  # nothing of another account


def test_an_auth_rep_adds_edits_and_deletes_a_sync_group(page, web, web_db):
    sign_in(page, web, "alice@example.test")
    page.click("#open-sync")
    page.wait_for_selector("#service-form")
    page.check("#sync-enabled")
    page.click("#save-service")
    page.wait_for_selector("#saved")
    shot(page, "05-data-sync")

    page.click("#add-group")
    page.wait_for_selector("#group-form")
    page.fill("#source-search", "#1 ")  # the searchable Sync From field
    assert page.eval_on_selector("#source_customer", "s => s.value") == "1"
    page.check("#target-3")
    page.check("#category-codes")
    page.check("#category-payers")
    assert page.is_checked("#mode-create-only")  # the default
    assert "We recommend" in page.inner_text("#override-warning").replace("we recommend", "We recommend")
    shot(page, "06-sync-add")
    page.click("#save")
    page.wait_for_selector("#saved")
    groups = sync_groups.load_groups_for(web_db, 1)
    assert len(groups) == 1 and groups[0].targets == (3,) and groups[0].categories == ("codes", "payers")
    gid = groups[0].group_id
    assert "Initial copy to 1 Sync To customer(s)" in page.inner_text("#saved")  # the copy ran, as the CLI's

    page.click(f"#edit-{gid}")
    page.wait_for_selector("#group-form")
    page.check("#target-5")
    page.check("#mode-override")
    page.click("#save")
    page.wait_for_selector("#saved")
    group = sync_groups.load_groups_for(web_db, 1)[0]
    assert group.targets == (3, 5) and group.mode == "override"
    shot(page, "07-sync-groups")

    page.once("dialog", lambda d: d.accept())  # "Delete this synchronization option?"
    page.click(f"#delete-{gid}")
    page.wait_for_selector("#saved")
    assert sync_groups.load_groups_for(web_db, 1) == []


def test_an_auth_rep_reads_the_delivery_message_and_downloads_it(page, web, web_db):
    # a night whose delivery failed, then one that worked, as the scheduler records them
    with connect(web_db.state) as conn:
        failed = deliveries.start(conn, 1, dt.date(2026, 3, 8), "full")
        deliveries.fail(conn, failed, 1, dt.date(2026, 3, 8), OSError("disk full"))
    snapshot_settings.configure(web_db, 1, who="test-setup", enabled=True, customers=(1, 3), format="dat",
                                packaging="per-customer", kind="full")
    deliver(web_db, snapshot_settings.get(web_db, 1), dt.date(2026, 3, 9))
    sign_in(page, web, "alice@example.test")
    unread = int(page.inner_text("#unread-count"))
    assert unread >= 1
    page.click("#nav-messages")
    page.wait_for_selector("#messages")
    first = page.locator("li.message").first
    assert "data snapshot for 2026-03-09 is ready" in first.inner_text()
    assert "new" in first.inner_text()
    shot(page, "08-messages")
    with page.expect_download() as download:
        first.locator("a.download-current").click()
    with zipfile.ZipFile(download.value.path()) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("customer-1/manifest.json"))
    assert {"customer-1/manifest.json", "customer-3/manifest.json", "customer-1/patient.DAT"} <= names
    assert manifest["customers"] == [1] and manifest["kind"] == "full"
    failure = page.locator("li.message.kind-snapshot_failed").first
    assert "Snapshot failed" in failure.inner_text() and "2026-03-08 could not be made" in failure.inner_text()
    first.locator("button.mark-read").click()
    page.wait_for_selector("#messages")
    assert int(page.inner_text("#unread-count")) == unread - 1

    page.click("text=Downloads")
    page.wait_for_selector("#packages")
    assert page.locator("#packages tbody tr").count() == 2
    shot(page, "09-downloads")
    with page.expect_download() as download:
        page.click("#download-customer-3")
    with zipfile.ZipFile(download.value.path()) as z:
        assert all(n.startswith("customer-3/") for n in z.namelist())
        assert "customer-3/manifest.json" in z.namelist()

    # the next night's delivery replaces it: the previous one is gone
    before = page.inner_text("#delivery-id")
    deliver(web_db, snapshot_settings.get(web_db, 1), dt.date(2026, 3, 10))
    page.reload()
    assert page.inner_text("#delivery-id") != before
    with page.expect_download() as download:
        page.click("#download-all")
    with zipfile.ZipFile(download.value.path()) as z:
        created = {json.loads(z.read(f"customer-{c}/manifest.json"))["created_utc"] for c in (1, 3)}
    assert created != {manifest["created_utc"]} and len(created) == 1


def test_an_auth_rep_opens_the_audit_history(page, web, web_db):
    snapshot_settings.configure(web_db, 1, who="alice@example.test", enabled=True, customers=(1, 5), format="dat",
                                packaging="combined", kind="full")
    sign_in(page, web, "alice@example.test")
    page.goto(web.url + "/accounts/1/snapshots")
    page.click("#view-audit")
    page.wait_for_selector("#audit")
    assert page.eval_on_selector("#filter-entity", "s => s.value") == "snapshot_settings"
    rows = page.locator("#audit tbody tr")
    assert rows.count() >= 1 and "snapshot_settings" in rows.first.inner_text()
    page.select_option("#filter-user", "alice@example.test")
    page.fill("#filter-since", "2020-01-01")
    page.click("#apply-filters")
    page.wait_for_selector("#audit")
    texts = page.locator("#audit tbody tr").all_inner_texts()
    assert texts and all("alice@example.test" in t and "snapshot_settings" in t for t in texts)
    assert any("customers: [1, 3] → [1, 5]" in t or "customers: [1, 5]" in t for t in texts)
    shot(page, "10-audit-history")
    # downloads are audited with who made them
    page.select_option("#filter-entity", "download")
    page.fill("#filter-since", "")
    page.click("#apply-filters")
    page.wait_for_selector("#audit")
    assert "alice@example.test" in page.inner_text("#audit tbody")


def test_a_viewer_reads_but_cannot_change(page, web):
    sign_in(page, web, "vera@example.test")
    page.goto(web.url + "/accounts/1/snapshots")
    page.wait_for_selector("#snapshot-form")
    assert page.locator("#save").count() == 0 and page.locator("#download-sample").count() == 0
    page.goto(web.url + "/accounts/1/sync")
    assert page.locator("#add-group").count() == 0
    shot(page, "11-viewer")


def test_signing_out_ends_the_session(page, web):
    sign_in(page, web, "alice@example.test")
    page.click("#sign-out")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(web.url + "/accounts/1/services")
    page.wait_for_selector("#login-form")  # sent back to sign in
