"""Nightly deliveries shipped to a real OpenSSH server's SFTP drop (Debian's sshd, chrooted,
``internal-sftp`` only): one account's packages encrypted and uploaded, another's in the clear
in its folder; the host key pinned, the upload whole or not at all, old deliveries pruned, and
a failed upload keeping the local delivery with a message."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import destinations, recipients, snapshot_settings
from snapsync.local import free_port
from snapsync.schemas.schedule import local_to_utc
from snapsync.seed import seed
from snapsync.sinks import scheduler
from snapsync.sinks.delivery import current_delivery
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.conftest import env_for, new_database, qs, settings_for
from tests.integration.sftp_helpers import start_sftp_server
from tests.integration.test_sealed_packages import BIN, decrypt_tree, gpg, receiver_key, same_package

DAY = dt.date(2026, 3, 9)
_n = iter(range(1000))


@pytest.fixture(scope="module")
def server():
    srv = start_sftp_server()
    yield srv
    srv.stop()


@pytest.fixture()
def two_accounts(base_settings, tmp_path):
    """Accounts 1 and 2, one customer each, snapshots enabled (.DAT, per customer), a home of their own."""
    name = f"sftp{next(_n)}_{tmp_path.name[:20]}".replace("-", "_")
    s = settings_for(base_settings, name, topic_prefix=name, home=str(tmp_path / "home"))
    new_database(s)
    with connect(s.db) as conn:
        seed(conn, customers=2, scale=0.004, seed_value=5, accounts=2)
    for a in (1, 2):
        snapshot_settings.configure(s, a, who="test-setup", enabled=True, customers=(a,), format="dat")
    return s


def round_at(s, day: dt.date) -> list[dict]:
    return scheduler.run_round(s, local_to_utc(day, dt.time(2, 0)))


def messages(s, account: int) -> list[tuple]:
    return [(k, m, json.loads(d) if d else None) for k, m, d in
            qs(s, "SELECT kind, message, detail FROM snapsync_notification WHERE account_id = %s "
                  "ORDER BY notification_id", (account,))]


def test_a_nightly_round_ships_one_account_sealed_by_sftp_and_keeps_another_in_the_clear(two_accounts, server,
                                                                                        tmp_path):
    s = two_accounts
    plain = export_snapshot(s, ExportRequest([1]), tmp_path / "plain")  # before the account has its key
    home = tmp_path / "receiver"
    recipients.set_key(s, 1, receiver_key(home))
    drop = server.drop / "account-1"
    drop.mkdir()
    drop.chmod(0o777)
    dest = destinations.set_sftp(s, 1, server.url("/drop/account-1"), server.host_key)
    server.authorize(dest.public_key)
    assert "PRIVATE" not in json.dumps(dest.public())
    done = round_at(s, DAY)
    assert sorted(d["account_id"] for d in done) == [1, 2]
    # account 1: on the drop under its delivery's name, whole, sealed; decrypted = the plain export
    local = current_delivery(scheduler.delivery_root(s, 1))
    assert [p.name for p in drop.iterdir()] == [local.name]
    received = drop / local.name / "customer-1"
    decrypt_tree(received, tmp_path / "decrypted", lambda p: gpg(home, "--decrypt", str(p)).stdout, private=False)
    same_package(tmp_path / "decrypted", plain.path / "customer-1")
    assert {p.name for p in received.iterdir()} == {p.name for p in (local / "customer-1").iterdir()}
    ready = [m for m in messages(s, 1) if m[0] == "snapshot_ready"]
    assert ready[0][2]["uploaded"]["path"] == f"/drop/account-1/{local.name}"
    # account 2: in the clear, in its own folder only
    other = current_delivery(scheduler.delivery_root(s, 2)) / "customer-2"
    assert (other / "patient.DAT").is_file() and not list(other.glob("*.gpg"))
    assert "uploaded" not in [m for m in messages(s, 2) if m[0] == "snapshot_ready"][0][2]
    # the next day: the new delivery replaces it there too (keep 1), nothing half-uploaded stays
    (drop / ".20260309T070000Z-full-dat.partial").mkdir()  # what a killed upload leaves
    round_at(s, DAY + dt.timedelta(days=1))
    newest = current_delivery(scheduler.delivery_root(s, 1))
    assert [p.name for p in drop.iterdir()] == [newest.name] != [local.name]


def test_an_upload_that_keeps_failing_keeps_the_local_delivery_and_says_so(two_accounts, server, monkeypatch):
    s = two_accounts
    monkeypatch.setattr(scheduler, "SFTP_ATTEMPTS", 2)
    monkeypatch.setattr(scheduler, "SFTP_FIRST_WAIT", 0.05)
    destinations.set_sftp(s, 1, f"sftp://nobody@127.0.0.1:{free_port()}/drop", server.host_key)  # nothing listens
    done = round_at(s, DAY)
    assert sorted(d["account_id"] for d in done) == [1, 2]
    assert (current_delivery(scheduler.delivery_root(s, 1)) / "customer-1" / "patient.DAT").is_file()
    failed = [m for m in messages(s, 1) if m[0] == "upload_failed"]
    assert len(failed) == 1 and "not reachable" in failed[0][1] and "kept on the server" in failed[0][1]
    assert qs(s, "SELECT status FROM snapsync_delivery WHERE account_id = 1") == (("delivered",),)


def test_a_server_showing_another_host_key_gets_nothing(two_accounts, server, monkeypatch, tmp_path):
    s = two_accounts
    monkeypatch.setattr(scheduler, "SFTP_ATTEMPTS", 3)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    impostor = (tmp_path / "other.pub").read_text()
    drop = server.drop / "account-1-pinned"
    drop.mkdir()
    drop.chmod(0o777)
    dest = destinations.set_sftp(s, 1, server.url("/drop/account-1-pinned"), impostor)
    server.authorize(dest.public_key)
    round_at(s, DAY)
    assert list(drop.iterdir()) == []
    failed = [m for m in messages(s, 1) if m[0] == "upload_failed"]
    assert len(failed) == 1 and "another host key than the one pinned" in failed[0][1]


@pytest.mark.parametrize("url, words", [
    ("ftp://nobody@127.0.0.1/drop", "not an SFTP address"),
    ("sftp://nobody:secret@127.0.0.1/drop", "password is not accepted"),
    ("sftp://127.0.0.1/drop", "names no user"),
    ("sftp://nobody@127.0.0.1", "absolute path"),
])
def test_a_bad_destination_is_refused_with_the_form_to_give(two_accounts, server, url, words):
    env = env_for(two_accounts)
    r = subprocess.run([BIN, "snapshot", "destination", "--account", "1", "--sftp", url, "--host-key",
                        server.host_key], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert "secret" not in r.stderr
    assert destinations.get(two_accounts, 1) is None


def test_the_cli_sets_shows_and_removes_a_destination_without_showing_its_login_key(two_accounts, server, tmp_path):
    s = two_accounts
    env = env_for(s)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "login")], check=True)
    r = subprocess.run([BIN, "snapshot", "destination", "--account", "1", "--sftp", server.url(), "--host-key",
                        server.host_key, "--identity", str(tmp_path / "login")], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    secret = (tmp_path / "login").read_text()
    assert (tmp_path / "login.pub").read_text().split()[1] in r.stdout
    kept = destinations.key_folder(s) / "account-1.key"
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_text() == secret
    for args in (["snapshot", "destination", "--account", "1", "--json"], ["snapshot", "show", "--account", "1"],
                 ["audit", "--account", "1", "--json"]):
        r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "PRIVATE" not in r.stdout and secret.splitlines()[1] not in r.stdout, args
    r = subprocess.run([BIN, "snapshot", "destination", "--account", "1", "--remove"], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0 and not kept.exists() and destinations.get(s, 1) is None
