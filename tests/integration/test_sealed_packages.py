"""Packages sealed for their receiver (issue 23), judged by the receiver's own tools: Debian's
``gpg`` and ``age`` decrypt them, ``gpg --verify`` checks snapsync's signature, ``sha256sum
-c`` the digest, and the decrypted package is the unencrypted export's bytes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from snapsync.connectors.crypto import parse_recipient, signing_key
from snapsync.control import recipients
from snapsync.schemas.errors import ConfigError
from snapsync.seed import HARD_TEXTS
from snapsync.sinks.export import ExportRequest, export_snapshot
from tests.conftest import env_for, qs
from tests.integration.test_loading_guide import ENCRYPTED_SECTION, GUIDE, guide_blocks

BIN = str(Path(sys.executable).with_name("snapsync"))
#: Manifest keys that differ between two exports of unchanged data: when each was taken, and the
#: binlog position (the first export's own usage record moved it on: the state store shares the server).
VOLATILE = ("as_of_utc", "as_of_local", "created_utc", "source_position")
NOW = dt.datetime(2026, 3, 8, 6, 0, tzinfo=dt.timezone.utc)


def gpg(home: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(home), *args], input=input,
                          capture_output=True)


def receiver_key(home: Path, expire: str = "1y", name: str = "Receiver") -> str:
    """A receiver's OpenPGP key made by gpg (its secret part stays in ``home``); the armored public key."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    uid = f"{name} <{name.lower()}@example.com>"
    assert gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire).returncode == 0
    fpr = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode().split("fpr:::::::::")[1].split(":")[0]
    assert gpg(home, "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", expire).returncode == 0
    return gpg(home, "--armor", "--export", fpr).stdout.decode()


@pytest.fixture(scope="module")
def openpgp(tmp_path_factory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("receiver") / "gnupg"
    return home, receiver_key(home)


@pytest.fixture(scope="module")
def age_identity(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("age") / "identity.txt"
    r = subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    public = next(line.split(": ")[1] for line in path.read_text().splitlines() if "public key" in line)
    return path, public


def decrypt_tree(folder: Path, out: Path, decrypt, *, private: bool = True) -> list[str]:
    """Every file of a sealed package decrypted into ``out`` by the receiver's tool; their names.
    ``private``: each file is 0600 (not so once unzipped: zipfile does not keep modes)."""
    out.mkdir(parents=True)
    names = []
    for p in sorted(folder.iterdir()):
        assert p.suffix in (".gpg", ".age"), f"{p.name} is not encrypted"
        assert not private or stat.S_IMODE(p.stat().st_mode) == 0o600
        (out / p.stem).write_bytes(decrypt(p))
        names.append(p.stem)
    return names


def plain_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def same_package(decrypted: Path, plain: Path) -> None:
    """The decrypted package holds the plain export's files byte for byte (the manifest: but
    for when each export was taken), plus the signed digest."""
    got, want = plain_files(decrypted), plain_files(plain)
    assert set(got) == set(want) | {"SHA256SUMS", "SHA256SUMS.sig"}
    for name, data in want.items():
        if name == "manifest.json":
            a, b = json.loads(got[name]), json.loads(data)
            assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}
        else:
            assert got[name] == data, name


def verify(home: Path, folder: Path, signer_home: Path) -> None:
    """snapsync's signature of the digest, and the digest of every file, as the receiver checks them."""
    _fpr, public = signing_key(signer_home)
    assert gpg(home, "--import", input=public.encode()).returncode == 0
    r = gpg(home, "--status-fd", "1", "--verify", str(folder / "SHA256SUMS.sig"), str(folder / "SHA256SUMS"))
    assert r.returncode == 0 and b"GOODSIG" in r.stdout, r.stderr
    r = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_openpgp_sealed_package_decrypts_to_the_plain_export_and_its_signature_holds(seeded_db, tmp_path,
                                                                                       openpgp):
    home, public = openpgp
    plain = export_snapshot(seeded_db, ExportRequest([1, 2], "dat"), tmp_path / "plain", now=NOW)
    sealed = export_snapshot(seeded_db, ExportRequest([1, 2], "dat", recipient=parse_recipient(public)),
                             tmp_path / "sealed", now=NOW)
    assert sealed.rows == plain.rows and [p["files"] for p in sealed.packages] == [p["files"] for p in plain.packages]
    for pkg in ("customer-1", "customer-2"):
        folder = sealed.path / pkg
        raw = b"".join(p.read_bytes() for p in folder.iterdir())
        assert HARD_TEXTS[1].encode() not in raw and b"manifest" not in raw  # nothing in the clear
        out = tmp_path / "received" / pkg
        decrypt_tree(folder, out, lambda p: gpg(home, "--decrypt", str(p)).stdout)
        same_package(out, plain.path / pkg)
        verify(home, out, seeded_db.home)


def test_an_age_sealed_zip_of_a_mysql_package_decrypts_to_the_plain_export(seeded_db, tmp_path, age_identity):
    identity, public = age_identity
    req = dict(customers=[1, 2], format="mysql", packaging="combined", container="zip")
    plain = export_snapshot(seeded_db, ExportRequest(**req), tmp_path / "plain", now=NOW)
    sealed = export_snapshot(seeded_db, ExportRequest(**req, recipient=parse_recipient(public)), tmp_path / "sealed",
                             now=NOW)
    with zipfile.ZipFile(sealed.path / "combined.zip") as z:
        assert all(n.endswith(".age") for n in z.namelist())
        z.extractall(tmp_path / "zip")
    with zipfile.ZipFile(plain.path / "combined.zip") as z:
        z.extractall(tmp_path / "plain-zip")
    decrypt_tree(tmp_path / "zip", tmp_path / "received", lambda p: subprocess.run(
        ["age", "-d", "-i", str(identity), str(p)], capture_output=True, check=True).stdout, private=False)
    same_package(tmp_path / "received", tmp_path / "plain-zip")
    # the dump loads with the mariadb client, as a plain one does
    db = seeded_db.db
    target = f"{db.database}_sealed"
    base = ["mariadb", "-h", db.host, "-P", str(db.port), "-u", db.user, "--protocol=TCP"]
    subprocess.run([*base, "-e", f"DROP DATABASE IF EXISTS `{target}`; CREATE DATABASE `{target}`"], check=True)
    for name in ("schema.sql", "snapshot.sql"):
        with open(tmp_path / "received" / name, "rb") as f:
            r = subprocess.run([*base, target], stdin=f, capture_output=True)
        assert r.returncode == 0, r.stderr[-500:]
    verifier = tmp_path / "verifier"
    verifier.mkdir(mode=0o700)
    verify(verifier, tmp_path / "received", seeded_db.home)


def test_the_accounts_key_seals_every_export_of_its_customers(seeded_db, tmp_path, openpgp):
    """An account's key applies to exports that do not name it (the CLI without --encrypt-to)."""
    home, public = openpgp
    key = tmp_path / "key.asc"
    key.write_text(public)
    env = env_for(seeded_db)
    r = subprocess.run([BIN, "snapshot", "configure", "--account", "1", "--encrypt-to", str(key), "--json"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)["encryption"]
    assert shown["kind"] == "openpgp" and len(shown["fingerprint"]) == 40 and "BEGIN" not in r.stdout
    r = subprocess.run([BIN, "snapshot", "export", "--customers", "1", "--out", str(tmp_path / "out")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "out" / "current" / "customer-1").iterdir())
    assert files and all(f.endswith(".gpg") for f in files) and "SHA256SUMS.sig.gpg" in files
    audit = qs(seeded_db, "SELECT before_json, after_json FROM snapsync_audit WHERE entity = 'encryption_key'")
    assert len(audit) == 1 and "BEGIN PGP" not in str(audit) and shown["fingerprint"] in str(audit)
    r = subprocess.run([BIN, "snapshot", "configure", "--account", "1", "--no-encryption"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert recipients.get(seeded_db, 1) is None


@pytest.mark.parametrize("case", ["garbage", "secret", "expired", "revoked", "sign-only", "two-keys", "age-typo",
                                  "missing-file"])
def test_a_key_that_cannot_seal_is_refused_with_the_fix_and_no_key_material(seeded_db, tmp_path, case):
    home = tmp_path / "gnupg"
    public = receiver_key(home, name="Other")
    fpr = parse_recipient(public).fingerprint
    key = tmp_path / "key.asc"
    if case == "garbage":
        key.write_bytes(b"\x00not a key\xff" * 10)
    elif case == "secret":
        key.write_bytes(gpg(home, "--armor", "--export-secret-keys", fpr).stdout)
    elif case == "expired":
        gpg(home, "--passphrase", "", "--quick-set-expire", fpr, "seconds=1")
        gpg(home, "--passphrase", "", "--quick-set-expire", fpr, "seconds=1", "*")
        import time

        time.sleep(2)
        key.write_bytes(gpg(home, "--armor", "--export", fpr).stdout)
    elif case == "revoked":
        rev = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
        gpg(home, "--import", input=rev.encode())
        key.write_bytes(gpg(home, "--armor", "--export", fpr).stdout)
    elif case == "sign-only":
        gpg(home, "--passphrase", "", "--quick-gen-key", "Signer <s@example.com>", "ed25519", "sign", "1y")
        key.write_bytes(gpg(home, "--armor", "--export", "s@example.com").stdout)
    elif case == "two-keys":
        receiver_key(home, name="Third")
        key.write_bytes(gpg(home, "--armor", "--export").stdout)
    elif case == "age-typo":
        key.write_text("age1" + "q" * 58)
    env = env_for(seeded_db)
    r = subprocess.run([BIN, "snapshot", "configure", "--account", "1", "--encrypt-to", str(key)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    words = {"garbage": "not an OpenPGP public key", "secret": "secret key", "expired": "expired",
             "revoked": "revoked", "sign-only": "cannot encrypt", "two-keys": "keys: give the one",
             "age-typo": "not a valid age recipient", "missing-file": "cannot read it"}[case]
    assert words in r.stderr, r.stderr
    assert "BEGIN PGP" not in r.stderr + r.stdout and "mQ" not in r.stderr
    assert recipients.get(seeded_db, 1) is None


def test_a_key_expiring_soon_gets_one_message_and_an_expired_one_stops_the_delivery(seeded_db, tmp_path,
                                                                                      monkeypatch):
    home = tmp_path / "gnupg"
    public = receiver_key(home, expire="10d")
    recipients.set_key(seeded_db, 1, public)
    assert recipients.warn_expiring(seeded_db) == 0  # set_key warned already: once per key expiry
    messages = qs(seeded_db, "SELECT kind, message FROM snapsync_notification WHERE account_id = 1")
    assert [m[0] for m in messages] == ["key-expiring"] and "expires on" in messages[0][1]
    assert "BEGIN" not in messages[0][1]
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(days=11)
    real = recipients.parse_recipient  # the export as if run 11 days later: the key has expired
    monkeypatch.setattr(recipients, "parse_recipient", lambda text: real(text, now=later))
    with pytest.raises(ConfigError, match="expired .*nothing was delivered"):
        export_snapshot(seeded_db, ExportRequest([1]), tmp_path / "out")
    assert not (tmp_path / "out" / "current").exists()


def test_scratch_key_folders_and_tools_are_gone_after_a_failed_sealed_export(seeded_db, tmp_path, openpgp,
                                                                            monkeypatch):
    """An export stopped half-way (its account's customer moved) leaves no encrypting process
    and no scratch folder behind, and nothing is delivered."""
    import tempfile

    _home, public = openpgp
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    import snapsync.sinks.export as export

    def moved(_s, _req):
        raise RuntimeError("stopped after the rows were read")

    monkeypatch.setattr(export, "_check_still_owned", moved)
    with pytest.raises(RuntimeError):
        export_snapshot(seeded_db, ExportRequest([1, 2], recipient=parse_recipient(public)), tmp_path / "out")
    assert not list(scratch.glob("snapsync-seal-*"))
    assert not (tmp_path / "out" / "current").exists()
    children = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "gpg --batch"], capture_output=True, text=True)
    assert children.stdout.strip() == ""


def test_the_loading_guides_decrypt_and_verify_snippets_run_as_written(seeded_db, tmp_path, openpgp, age_identity):
    """docs/loading.md's encrypted-package blocks, run by bash in a receiver's folder with the
    stock gpg and age, leave the plain export's files, signature and digest checked."""
    home, public = openpgp
    identity, age_public = age_identity
    work = tmp_path / "work"
    work.mkdir()
    plain = export_snapshot(seeded_db, ExportRequest([1]), tmp_path / "plain", now=NOW)
    for name, key in (("sealed", public), ("sealed-age", age_public)):
        made = export_snapshot(seeded_db, ExportRequest([1], recipient=parse_recipient(key)), tmp_path / name, now=NOW)
        shutil.copytree(made.path / "customer-1", work / name / "customer-1")
    shutil.copy(identity, work / "identity.txt")
    r = subprocess.run([BIN, "snapshot", "signing-key"], env=env_for(seeded_db), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK"), r.stderr
    (work / "snapsync-signing-key.asc").write_text(r.stdout)
    keyring = tmp_path / "keyring"  # the receiver's keyring, a copy (the module's key serves other tests)
    shutil.copytree(home, keyring, ignore=shutil.ignore_patterns("S.*"))
    blocks = [code for section, lang, code in guide_blocks(GUIDE.read_text()) if section == ENCRYPTED_SECTION]
    assert len(blocks) == 2
    for i, code in enumerate(blocks):
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, capture_output=True, text=True,
                           env={**os.environ, "GNUPGHOME": str(keyring)})
        assert r.returncode == 0, f"docs/loading.md encrypted block {i + 1}: {r.stderr[-2000:]}"
        lines = r.stdout.splitlines()
        assert "Good signature" in r.stderr and lines and all(line.endswith(": OK") for line in lines), r.stdout
    for received in ("received", "received-age"):
        same_package(work / received / "customer-1", plain.path / "customer-1")
