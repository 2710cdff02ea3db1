"""Deliveries shipped to a receiver's SFTP drop, through paramiko.

The server's host key is pinned (given with the destination, as ``ssh-keyscan`` prints it);
any other key is refused, never learnt. snapsync logs in with a key of its own (made for the
account, or given once and then kept 0600, never shown again); passwords are not accepted.

A delivery goes up under a temporary name (``.<delivery>.partial``) and is renamed to its own
name when every file is there, so the receiver never sees half a delivery; older deliveries
in the drop are then pruned to the account's ``keep``, as on the local disk. A failure that
passes (connection refused, reset, timed out) is tried again with the one back-off
(connectors/failures.py); a refused host key or login is not.
"""

from __future__ import annotations

import base64
import logging
import posixpath
import re
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from snapsync.connectors.failures import Backoff
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError

log = logging.getLogger("snapsync.sftp")

#: A delivery's folder name (sinks/export.py): only these are pruned from the drop.
DELIVERY_NAME = re.compile(r"^\d{8}T\d{6}Z-[a-z]+-[a-z]+(-\d+)?$")
PARTIAL = re.compile(r"^\.(.+)\.partial$")
TIMEOUT = 20.0


def _paramiko():
    import paramiko  # imported where a delivery is shipped, not at the CLI's start

    return paramiko


@dataclass(frozen=True)
class SftpUrl:
    user: str
    host: str
    port: int
    path: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.user}@{host}{'' if self.port == 22 else f':{self.port}'}{self.path}"

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_url(url: str) -> SftpUrl:
    """``sftp://user@host[:port]/path``.

    Raises:
        ConfigError: another scheme, no user, a password, no absolute path; the message says the form.
    """
    form = "give sftp://user@host[:port]/path"
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"not an SFTP address: {form}") from None
    if parts.scheme != "sftp" or not parts.hostname:
        raise ConfigError(f"not an SFTP address: {form}")
    if parts.password is not None:
        raise ConfigError("an SFTP address with a password is not accepted: snapsync logs in with its own key "
                          f"(the receiver adds its public key); {form}")
    if not parts.username:
        raise ConfigError(f"the SFTP address names no user: {form}")
    path = unquote(parts.path or "")
    if not path.startswith("/") or "\0" in path or parts.query or parts.fragment:
        raise ConfigError(f"the SFTP address needs the drop's absolute path: {form}")
    return SftpUrl(unquote(parts.username), parts.hostname, port, posixpath.normpath(path))


def parse_host_key(line: str):
    """The server's public host key from a line as ``ssh-keyscan`` or ``*.pub`` prints it
    (``[host] type base64 [comment]``); a paramiko key.

    Raises:
        ConfigError: not a public host key.
    """
    paramiko = _paramiko()
    words = line.strip().split()
    for i, word in enumerate(words[:-1]):
        if word.startswith(("ssh-", "ecdsa-")):
            try:
                return paramiko.PKey.from_type_string(word, base64.b64decode(words[i + 1], validate=True))
            except Exception:  # noqa: BLE001 - paramiko raises several kinds for a bad key
                break
    raise ConfigError("not an SSH public host key: give the line `ssh-keyscan -p PORT HOST` prints for the "
                      "server (e.g. 'ssh-ed25519 AAAA...')")


def make_identity(path: Path) -> str:
    """A new ed25519 login key at ``path`` (0600, OpenSSH format); its public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from snapsync.connectors.files import open_private

    key = Ed25519PrivateKey.generate()
    with open_private(path) as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()))
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode() + " snapsync"


def load_identity(path: Path):
    """The login key at ``path`` (ed25519, ECDSA or RSA, unencrypted).

    Raises:
        ConfigError: not such a key; the message never quotes it.
    """
    paramiko = _paramiko()
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(str(path))
        except paramiko.PasswordRequiredException:
            raise ConfigError("the login key is protected by a passphrase: give a key without one "
                              "(snapsync logs in unattended; it keeps the key 0600)") from None
        except (paramiko.SSHException, ValueError, OSError):
            continue
    raise ConfigError("not an SSH private key (ed25519, ECDSA or RSA, OpenSSH or PEM format)")


def public_line(key) -> str:
    return f"{key.get_name()} {key.get_base64()} snapsync"


class Drop:
    """One SFTP session to a receiver's drop."""

    def __init__(self, url: SftpUrl, host_key, identity, timeout: float = TIMEOUT) -> None:
        self.url = url
        paramiko = _paramiko()
        self._ssh = paramiko.SSHClient()
        self._ssh.get_host_keys().add(url.known_hosts_name, host_key.get_name(), host_key)
        self._ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self._ssh.connect(url.host, url.port, username=url.user, pkey=identity, timeout=timeout,
                              banner_timeout=timeout, auth_timeout=timeout, allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException:
            raise FatalError(f"the SFTP server {url.known_hosts_name} showed another host key than the one pinned "
                             f"for {url} ({host_key.fingerprint}): nothing was sent; check the key with the receiver "
                             "and set the destination again") from None
        except paramiko.SSHException as exc:
            if isinstance(exc, paramiko.AuthenticationException):
                raise FatalError(f"the SFTP server refused snapsync's login as {url.user!r}: the receiver must add "
                                 "the destination's public key (`snapsync snapshot destination --account N` shows it) to its authorized keys"
                                 ) from None
            raise RetriableError(f"the SFTP session with {url.known_hosts_name} failed ({type(exc).__name__})") from None
        except (OSError, EOFError) as exc:
            raise RetriableError(f"the SFTP server {url.known_hosts_name} is not reachable "
                                 f"({type(exc).__name__})") from None
        self.sftp = self._ssh.open_sftp()
        self.sftp.get_channel().settimeout(timeout)

    def close(self) -> None:
        self._ssh.close()

    def __enter__(self) -> Drop:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _remove_tree(self, path: str) -> None:
        for entry in self.sftp.listdir_attr(path):
            child = posixpath.join(path, entry.filename)
            if stat.S_ISDIR(entry.st_mode or 0):
                self._remove_tree(child)
            else:
                self.sftp.remove(child)
        self.sftp.rmdir(path)

    def put_delivery(self, folder: Path, keep: int) -> str:
        """Upload the delivery ``folder`` (its files, no links) whole under its own name; prune
        older deliveries to ``keep``. Returns the remote path."""
        root = self.url.path
        try:
            names = {e.filename: e for e in self.sftp.listdir_attr(root)}
        except OSError:
            raise FatalError(f"the SFTP drop {self.url} has no folder {root}: ask the receiver for the right path") \
                from None
        final, partial = posixpath.join(root, folder.name), posixpath.join(root, f".{folder.name}.partial")
        if folder.name not in names:
            for name in names:  # what a killed upload left
                if PARTIAL.match(name):
                    self._remove_tree(posixpath.join(root, name))
            self.sftp.mkdir(partial, 0o700)
            self._put_tree(folder, partial)
            self.sftp.posix_rename(partial, final)
            names[folder.name] = None
        for old in sorted(n for n in names if DELIVERY_NAME.match(n))[:-keep or None]:
            if old != folder.name:
                self._remove_tree(posixpath.join(root, old))
        return final

    def _put_tree(self, local: Path, remote: str) -> None:
        for p in sorted(local.iterdir()):
            target = posixpath.join(remote, p.name)
            if p.is_symlink():
                continue  # never follow a link out of the delivery
            if p.is_dir():
                self.sftp.mkdir(target, 0o700)
                self._put_tree(p, target)
            else:
                with open(p, "rb") as f:
                    self.sftp.putfo(f, target, file_size=p.stat().st_size, confirm=True)
                self.sftp.chmod(target, 0o600)


def ship(url: SftpUrl, host_key, identity, folder: Path, keep: int, *, attempts: int = 4,
         backoff: Backoff | None = None, timeout: float = TIMEOUT) -> str:
    """:meth:`Drop.put_delivery`, tried again after failures that pass (``attempts`` in all).

    Raises:
        FatalError: a refused host key or login, a missing drop folder (not tried again).
        RetriableError: every attempt failed in passing.
    """
    backoff = backoff or Backoff(first=2.0, cap=60.0)
    for attempt in range(1, attempts + 1):
        try:
            with Drop(url, host_key, identity, timeout) as drop:
                return drop.put_delivery(folder, keep)
        except (RetriableError, OSError, EOFError, socket.timeout, _paramiko().SSHException) as exc:
            reason = exc if isinstance(exc, RetriableError) else RetriableError(
                f"the upload to {url} was cut ({type(exc).__name__})")
            if attempt == attempts:
                raise reason from None
            delay = backoff.next()
            log.warning("%s; trying again in %.0fs (attempt %d of %d)", reason, delay, attempt + 1, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")
