"""The pop-up of the Data Sync document: with capture and the worker running, an edit of a
sync-from customer's record tells the account's open pages at once that it will be
synchronized to N customers."""

from __future__ import annotations

from snapsync.control import users
from tests.integration.pipeline import running_pipeline, wait_until
from tests.web.helpers import PASSWORD, running_web, shot, sign_in, wait_live


def test_editing_a_sync_from_record_pops_up_on_open_pages(base_settings, tmp_path, browser):
    marker = "PHIMARKpopup91"
    with running_pipeline(base_settings, tmp_path, "webpopup", customers=6, seed_value=5, accounts=2) as (s, _log, _w):
        users.add_user(s, 1, "alice@example.test", "auth-rep", PASSWORD, who="test-setup")
        with running_web(s, tmp_path / "web.log") as web:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(20_000)
            try:
                # the Auth Rep sets up Data Sync: customer 1's codes to customers 3 and 5
                sign_in(page, web, "alice@example.test")
                page.click("#open-sync")
                page.check("#sync-enabled")
                page.click("#save-service")
                page.wait_for_selector("#saved")
                page.click("#add-group")
                page.select_option("#source_customer", "1")
                page.check("#target-3")
                page.check("#target-5")
                page.check("#category-codes")
                page.click("#save")
                page.wait_for_selector("#saved")
                wait_live(web)
                page.wait_for_selector("body[data-live=on]")  # this page listens
                assert page.is_hidden("#popup")

                # someone edits a procedure code of the sync-from customer
                from snapsync.connectors.mysql import connect

                with connect(s.db, autocommit=True) as conn:
                    conn.cursor().execute(
                        "UPDATE cpt_code SET description = %s WHERE customer_id = 1 ORDER BY id LIMIT 1",
                        (f"Office visit {marker}",))
                page.wait_for_selector("#popup:not([hidden])")
                text = page.inner_text("#popup")
                assert "will be synchronized to 2 customer(s)" in text and "customer 1" in text
                assert marker not in text
                shot(page, "12-data-sync-pop-up")
                # the notice is in Messages too, unread
                page.click("#popup-close")
                page.click("#nav-messages")
                assert "will be synchronized to 2 customer(s)" in page.inner_text("#messages")
            finally:
                page.close()
            wait_until(lambda: "POST /accounts/1/sync/groups" in web.log_text(), 5, "the access log")
            assert marker not in web.log_text()
