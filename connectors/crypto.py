"""Packages sealed for their receiver: each file encrypted to the account's OpenPGP public
key or age recipient as it is written, and snapsync's own OpenPGP signature over the
package's digest.

Two well-kept tools do the cryptography, never code of ours (docs/decisions.md, issue 23):

- **Reading keys and signing**: python-gnupg on Debian's ``gnupg``. A key is *scanned*
  (never imported into a shared keyring): its fingerprint, user ids, expiry, revocation and
  whether it can encrypt come from gpg itself.
- **Encrypting**: the tool itself on a pipe, ``gpg --encrypt --recipient-file`` or Debian's
  ``age -r``, its output the private file. Each file is encrypted as it is written (the pipe's
  back-pressure paces the writer), in C, with nothing in the clear on disk; python-gnupg's own
  ``encrypt_file`` would copy every byte through a Python thread.

No key material and no row value ever goes into a log line or an error message: errors
name the key by fingerprint and the tool's exit status only.
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from snapsync.connectors.files import FILE_MODE, open_private, private_dir
from snapsync.schemas.errors import ConfigError, FatalError

log = logging.getLogger("snapsync.crypto")

RecipientKind = Literal["openpgp", "age"]
#: Messaging warns this many days before a recipient's key expires.
EXPIRY_WARNING_DAYS = 30
#: An age recipient: ``age1`` and its bech32 payload (the tool checks the checksum).
_AGE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_FIX = "give the receiver's OpenPGP public key (gpg --armor --export KEYID > key.asc) or an age recipient (age1...)"


def _gnupg():
    import gnupg  # python-gnupg: imported where keys are read, not at the CLI's start

    return gnupg


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pkg = {"gpg": "gnupg", "age": "age"}[name]
        raise FatalError(f"encrypting packages needs the `{name}` command: install Debian's {pkg} package "
                         f"(apt-get install {pkg})")
    return path


@dataclass(frozen=True)
class Recipient:
    """Whom an account's packages are encrypted to. ``key``: the armored OpenPGP public key or
    the age recipient; shown to people only as ``fingerprint`` (and ``expires``)."""

    kind: RecipientKind
    key: str
    fingerprint: str
    expires: dt.datetime | None = None  # naive UTC; None: never
    uids: tuple[str, ...] = ()

    @property
    def suffix(self) -> str:
        """What an encrypted file's name ends with."""
        return ".gpg" if self.kind == "openpgp" else ".age"

    def public(self) -> dict:
        """What may be shown: never the key itself."""
        return {"kind": self.kind, "fingerprint": self.fingerprint,
                "expires": self.expires.isoformat() + "Z" if self.expires else None, "uids": list(self.uids)}

    def expires_within(self, days: int, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return self.expires is not None and self.expires - now <= dt.timedelta(days=days)


def parse_recipient(text: str | bytes, *, now: dt.datetime | None = None) -> Recipient:
    """The recipient in ``text`` (an OpenPGP public key, armored or binary, or an age recipient).

    Raises:
        ConfigError: malformed, a secret key, revoked, expired, not able to encrypt, or holding
            more than one key; the message says what to give instead.
    """
    if isinstance(text, bytes):
        try:
            as_text = text.decode("ascii").strip()
        except UnicodeDecodeError:
            as_text = None
    else:
        as_text = text.strip()
    if as_text is not None and as_text.startswith("age1"):
        return _age_recipient(as_text)
    if as_text is not None and "PRIVATE KEY BLOCK" in as_text:
        raise ConfigError("that is a secret key: give the receiver's public key only (gpg --armor --export KEYID)")
    data = text if isinstance(text, bytes) else text.encode()
    with tempfile.TemporaryDirectory(prefix="snapsync-gpg-") as home:
        keys = _gnupg().GPG(gpgbinary=_tool("gpg"), gnupghome=home).scan_keys_mem(data)
    public = [k for k in keys if k.get("type") == "pub"]
    if any(k.get("type") == "sec" for k in keys):
        raise ConfigError("that is a secret key: give the receiver's public key only (gpg --armor --export KEYID)")
    if not public:
        raise ConfigError(f"not an OpenPGP public key nor an age recipient: {_FIX}")
    if len(public) > 1:
        raise ConfigError(f"the file holds {len(public)} keys: give the one receiver's public key only")
    k = public[0]
    fpr = k["fingerprint"]
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    if k.get("trust") == "r":
        raise ConfigError(f"key {fpr} is revoked: ask the receiver for their new public key")
    expires = _when(k.get("expires"))
    if k.get("trust") == "e" or (expires is not None and expires <= now):
        raise ConfigError(f"key {fpr} expired on {expires:%Y-%m-%d}: ask the receiver to extend it "
                          "(gpg --quick-set-expire) and send the public key again" if expires else
                          f"key {fpr} has expired: ask the receiver for a current public key")
    subs = [s for s in (k.get("subkey_info") or {}).values() if "e" in s.get("cap", "")
            and s.get("trust") not in ("r", "e") and not ((_when(s.get("expires")) or dt.datetime.max) <= now)]
    if "E" not in k.get("cap", "") or (not subs and "e" not in k.get("cap", "")):
        raise ConfigError(f"key {fpr} cannot encrypt (no valid encryption subkey): ask the receiver for a key "
                          "with one (gpg --quick-add-key FPR cv25519 encr)")
    sub_expiry = [e for e in (_when(s.get("expires")) for s in subs) if e is not None]
    if subs and len(sub_expiry) == len(subs):
        latest = max(sub_expiry)
        expires = latest if expires is None else min(expires, latest)
    armored = data.decode() if data.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK") else None
    if armored is None:  # binary: kept armored, as people mail keys
        with tempfile.TemporaryDirectory(prefix="snapsync-gpg-") as home:
            g = _gnupg().GPG(gpgbinary=_tool("gpg"), gnupghome=home)
            g.import_keys(data)
            armored = g.export_keys(fpr)
    return Recipient("openpgp", armored, fpr, expires, tuple(k.get("uids") or ()))


def _when(epoch: str | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).replace(tzinfo=None) if epoch else None


def _age_recipient(text: str) -> Recipient:
    if not _AGE.match(text):
        raise ConfigError(f"not a valid age recipient (age1 followed by 58 characters): {_FIX}")
    proc = subprocess.run([_tool("age"), "-r", text, "-o", os.devnull], input=b"", capture_output=True)
    if proc.returncode != 0:
        raise ConfigError(f"not a valid age recipient (its checksum does not match): {_FIX}")
    return Recipient("age", text, text)


class SealedFile:
    """A private file written through the encrypting tool: ``write`` feeds its pipe, ``close``
    waits for the tool and checks it finished."""

    def __init__(self, path: Path, recipient: Recipient, key_file: Path | None) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            if recipient.kind == "openpgp":
                assert key_file is not None
                home = key_file.parent
                cmd = [_tool("gpg"), "--batch", "--no-tty", "--quiet", "--no-options", "--homedir", str(home),
                       "--trust-model", "always", "--compress-level", "1", "--recipient-file", str(key_file),
                       "--output", "-", "--encrypt"]
            else:
                cmd = [_tool("age"), "-r", recipient.key]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=fd, stderr=subprocess.PIPE)
        finally:
            os.close(fd)
        self._fingerprint = recipient.fingerprint

    def write(self, data) -> None:
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            self._fail()

    def close(self) -> None:
        if self._proc.stdin.closed:
            return
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            self._fail()

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def _fail(self) -> None:
        self.abort()
        raise FatalError(f"encrypting {self.path.name} to {self._fingerprint} failed "
                         f"(the tool exited with status {self._proc.returncode})")


class Sealer:
    """Opens the sealed files of one package writer; ``close`` removes its scratch key folder."""

    def __init__(self, recipient: Recipient) -> None:
        self.recipient = recipient
        self._dir: Path | None = None
        self._key_file: Path | None = None
        if recipient.kind == "openpgp":
            self._dir = Path(tempfile.mkdtemp(prefix="snapsync-seal-"))
            self._key_file = self._dir / "recipient.asc"
            self._key_file.write_text(recipient.key)

    def open(self, path: Path) -> SealedFile:
        return SealedFile(path, self.recipient, self._key_file)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# -- snapsync's signing key ----------------------------------------------------------------
SIGNING_NAME = "snapsync package signing"
_signers: dict[Path, tuple[Path, str, str]] = {}  # key file -> (gpg home of this process, fingerprint, public key)
_signers_lock = threading.Lock()


def signing_key_file(home: Path) -> Path:
    """snapsync's signing key (armored, 0600) under the installation's home. Every export
    worker signs with this key: give them the same folder (docs/decisions.md)."""
    return home / "keys" / "signing-key.asc"


def signing_key(home: Path) -> tuple[str, str]:
    """(fingerprint, armored public key) of snapsync's signing key, made on first use (once,
    under a lock, when several processes start together).

    gpg signs through its agent, whose socket lives in the gpg home: a home under a deep
    folder passes the 108 bytes a socket's name may have. So each process signs from a short
    home of its own in the temporary folder, into which the key file is imported once.
    """
    path = signing_key_file(home).resolve()
    with _signers_lock:
        if path in _signers:
            return _signers[path][1:]
        private_dir(path.parent)
        _sweep()
        gdir = Path(tempfile.mkdtemp(prefix=f"snapsync-sign-{os.getpid()}-"))
        atexit.register(_forget, gdir)
        g = _gnupg().GPG(gpgbinary=_tool("gpg"), gnupghome=str(gdir))
        with open(path.parent / ".signing.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                g.import_keys(path.read_bytes())
            else:
                made = g.gen_key(g.gen_key_input(key_type="EDDSA", key_curve="ed25519", key_usage="sign",
                                                 name_real=SIGNING_NAME, name_email="snapsync@localhost",
                                                 expire_date=0, no_protection=True))
                if not made.fingerprint:
                    raise FatalError(f"could not make snapsync's signing key (gpg: {made.status})")
                secret = g.export_keys(made.fingerprint, secret=True, expect_passphrase=False)
                scratch = path.with_name(path.name + ".new")
                with open_private(scratch, "w") as f:
                    f.write(secret)
                os.replace(scratch, path)
                log.info("made snapsync's package signing key %s in %s", made.fingerprint, path)
        keys = g.list_keys(True)
        if not keys:
            raise FatalError(f"{path} holds no signing key: remove it to make a new one, or restore it from a backup")
        fpr = keys[0]["fingerprint"]
        _signers[path] = (gdir, fpr, g.export_keys(fpr))
        return _signers[path][1:]


def _forget(gdir: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(gdir), "--kill", "gpg-agent"], capture_output=True)
    shutil.rmtree(gdir, ignore_errors=True)


def _sweep() -> None:
    """The signing homes (and their agents) of processes that died without cleaning up (a
    ``kill -9``): at most one agent per living process stays."""
    for gdir in Path(tempfile.gettempdir()).glob("snapsync-sign-*-*"):
        try:
            pid = int(gdir.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            _forget(gdir)
        except (ValueError, PermissionError, IndexError):
            continue


def signing_fingerprint(home: Path) -> str | None:
    """The signing key's fingerprint when it exists (never made here: the web app shows it on
    every Snapshots page, so gpg reads the file once per change of it)."""
    path = signing_key_file(home)
    try:
        return _fingerprint_of(path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=8)
def _fingerprint_of(path: Path, _mtime_ns: int) -> str | None:
    with tempfile.TemporaryDirectory(prefix="snapsync-gpg-") as scratch:
        keys = _gnupg().GPG(gpgbinary=_tool("gpg"), gnupghome=scratch).scan_keys(str(path))
    return keys[0]["fingerprint"] if keys else None


def sign_detached(home: Path, data: bytes) -> bytes:
    """An armored detached OpenPGP signature of ``data`` by snapsync's signing key."""
    fpr, _public = signing_key(home)
    g = _gnupg().GPG(gpgbinary=_tool("gpg"), gnupghome=str(_signers[signing_key_file(home).resolve()][0]))
    sig = g.sign(data, keyid=fpr, detach=True, clearsign=False)
    if not sig.data:
        raise FatalError(f"signing the package digest with {fpr} failed (gpg: {sig.status})")
    return sig.data
