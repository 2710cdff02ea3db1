"""Issue 23 where Auth Reps work: the Snapshots page takes the account's public key and an
SFTP drop, shows them by fingerprint and address only, in headless Chromium; the same in the
JSON API; roles, CSRF and other accounts as for every route; no key material in the page, the
API or the server's log. Account 1 has customers 1, 3, 5; account 2 has 2, 4, 6 (web_db)."""

from __future__ import annotations

import io
import subprocess
import zipfile

import pytest
import requests

from snapsync.control import destinations, recipients, users
from tests.integration.test_sealed_packages import receiver_key
from tests.web.helpers import session, shot, sign_in
from tests.web.test_security import account_routes

NEW_ROUTES = {("GET", "/api/accounts/{account_id}/encryption-key"), ("PUT", "/api/accounts/{account_id}/encryption-key"),
              ("DELETE", "/api/accounts/{account_id}/encryption-key"),
              ("GET", "/api/accounts/{account_id}/sftp-destination"),
              ("PUT", "/api/accounts/{account_id}/sftp-destination"),
              ("DELETE", "/api/accounts/{account_id}/sftp-destination"),
              ("POST", "/accounts/{account_id}/snapshots/encryption"),
              ("POST", "/accounts/{account_id}/snapshots/destination")}


@pytest.fixture(scope="module")
def public_key(tmp_path_factory) -> str:
    return receiver_key(tmp_path_factory.mktemp("receiver") / "gnupg", name="Billing")


@pytest.fixture(scope="module")
def host_key(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("host") / "host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text()


@pytest.fixture()
def clean(web_db):
    yield
    recipients.clear(web_db, 1, who="test-cleanup")
    destinations.clear(web_db, 1, who="test-cleanup")


def test_an_auth_rep_adds_a_key_and_an_sftp_drop_on_the_snapshots_page(page, web, web_db, public_key, host_key,
                                                                        clean):
    sign_in(page, web, "alice@example.test")
    page.goto(f"{web.url}/accounts/1/snapshots")
    assert "unencrypted" in page.inner_text("#encryption-state")
    # a key that is not one: refused with the fix, the field left empty
    page.fill("#public_key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nnot really\n-----END PGP PUBLIC KEY BLOCK-----")
    page.click("#save-key")
    assert "not an OpenPGP public key" in page.inner_text("#error-public_key")
    assert page.input_value("#public_key") == ""
    page.fill("#public_key", public_key)
    page.click("#save-key")
    page.wait_for_selector("#saved")
    fpr = recipients.get(web_db, 1).fingerprint
    assert page.inner_text("#key-fingerprint") == fpr and "Billing" in page.inner_text("#encryption-state")
    assert page.inner_text("#key-expires")[:2] == "20"
    assert "BEGIN PGP" not in page.content()
    # the SFTP drop: a password is refused; then the address and host key, and the key to authorize
    page.fill("#sftp_url", "sftp://drop:hunter2@sftp.example.test/inbound")
    page.fill("#host_key", host_key)
    page.click("#save-sftp")
    assert "password is not accepted" in page.inner_text("#error-sftp_url")
    assert "hunter2" not in page.content()
    page.fill("#sftp_url", "sftp://drop@sftp.example.test:2222/inbound")
    page.click("#save-sftp")
    page.wait_for_selector("#sftp-public-key")
    assert page.inner_text("#sftp-url") == "sftp://drop@sftp.example.test:2222/inbound"
    assert page.inner_text("#sftp-host-key").startswith("SHA256:")
    assert page.inner_text("#sftp-public-key").startswith("ssh-ed25519 ")
    assert "PRIVATE" not in page.content()
    shot(page, "snapshots-encryption-sftp")
    page.click("#remove-key")
    page.wait_for_selector("#saved")
    assert "unencrypted" in page.inner_text("#encryption-state") and recipients.get(web_db, 1) is None


def test_the_api_sets_shows_and_removes_the_key_and_drop_for_reps_only(web, web_db, public_key, host_key, clean):
    api = f"{web.url}/api/accounts/1"
    rep = {"Authorization": f"Bearer {users.issue_token(web_db, 'alice@example.test', who='test-setup')}"}
    viewer = {"Authorization": f"Bearer {users.issue_token(web_db, 'vera@example.test', who='test-setup')}"}
    assert requests.get(api + "/encryption-key", headers=rep).json() is None
    r = requests.put(api + "/encryption-key", headers=rep, json={"key": "age1" + "q" * 58})
    assert r.status_code == 422 and "not a valid age recipient" in r.json()["detail"]
    assert requests.put(api + "/encryption-key", headers=viewer, json={"key": public_key}).status_code == 403
    r = requests.put(api + "/encryption-key", headers=rep, json={"key": public_key})
    assert r.status_code == 200 and r.json()["kind"] == "openpgp" and "key" not in r.json()
    assert requests.get(api + "/encryption-key", headers=viewer).json()["fingerprint"] == r.json()["fingerprint"]
    sample = requests.get(api + "/sample.zip", headers=rep)  # every delivery of the account is sealed, the sample too
    names = zipfile.ZipFile(io.BytesIO(sample.content)).namelist()
    assert sample.status_code == 200 and names and all(n.endswith(".gpg") for n in names), names
    r = requests.put(api + "/sftp-destination", headers=rep,
                     json={"url": "sftp://drop@sftp.example.test/inbound", "host_key": host_key})
    assert r.status_code == 200 and r.json()["public_key"].startswith("ssh-ed25519 "), r.text
    assert requests.get(api + "/sftp-destination", headers=viewer).json()["url"] == "sftp://drop@sftp.example.test/inbound"
    audit = requests.get(api + "/audit", headers=rep).json()
    assert {"encryption_key", "destination"} <= {a["entity"] for a in audit}
    assert "BEGIN PGP" not in str(audit) and "PRIVATE" not in str(audit)
    assert requests.delete(api + "/sftp-destination", headers=viewer).status_code == 403
    assert requests.delete(api + "/sftp-destination", headers=rep).status_code == 204
    assert requests.delete(api + "/encryption-key", headers=rep).status_code == 204
    assert requests.get(api + "/encryption-key", headers=rep).json() is None
    assert "BEGIN PGP" not in web.log.read_text() and "PRIVATE" not in web.log.read_text()


def test_the_new_routes_are_in_every_routes_checks_and_forms_need_their_token(web, web_db, public_key, clean):
    assert NEW_ROUTES <= set(account_routes(web_db))  # so the cross-account test covers each of them
    s, csrf = session(web, "alice@example.test")
    r = s.post(web.url + "/accounts/1/snapshots/encryption", data={"public_key": public_key}, allow_redirects=False)
    assert r.status_code == 403 and recipients.get(web_db, 1) is None
    r = s.post(web.url + "/accounts/2/snapshots/encryption", data={"public_key": public_key, "csrf_token": csrf},
               allow_redirects=False)
    assert r.status_code == 404 and recipients.get(web_db, 2) is None
    r = s.post(web.url + "/accounts/1/snapshots/encryption", data={"public_key": public_key, "csrf_token": csrf},
               allow_redirects=False)
    assert r.status_code == 303 and recipients.get(web_db, 1) is not None
