"""Where an account's nightly deliveries are shipped besides the server's own folder: an
SFTP drop (``snapsync_destination`` in the state store), its host key pinned, snapsync's
login key a 0600 file under ``SNAPSYNC_HOME/keys/sftp`` (made for the account, or given once
and kept; never shown again). Every change is audited by address and fingerprints only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from snapsync.connectors.files import open_private, private_dir
from snapsync.connectors.sftp import (SftpUrl, load_identity, make_identity, parse_host_key,
                                      parse_url, public_line)
from snapsync.connectors.state import connect_state
from snapsync.control.audit import actor, record_audit
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow


@dataclass(frozen=True)
class Destination:
    account_id: int
    url: SftpUrl
    host_key: str  # the pinned line
    identity: Path  # snapsync's login key (0600)
    public_key: str  # its public line, for the receiver's authorized_keys

    def public(self) -> dict:
        """What may be shown: never the login key."""
        return {"url": str(self.url), "host_key": parse_host_key(self.host_key).fingerprint,
                "public_key": self.public_key}

    def keys(self):
        """(pinned host key, login key) as paramiko keys."""
        return parse_host_key(self.host_key), load_identity(self.identity)


def key_folder(settings: Settings) -> Path:
    return Path(settings.home).resolve() / "keys" / "sftp"


def get(settings: Settings, account_id: int) -> Destination | None:
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT url, host_key, identity, public_key FROM snapsync_destination WHERE account_id = %s",
                    (account_id,))
        r = cur.fetchone()
        conn.commit()
    if r is None:
        return None
    return Destination(account_id, parse_url(r[0]), r[1], key_folder(settings) / r[2], r[3])


def set_sftp(settings: Settings, account_id: int, url: str, host_key: str, *, identity: bytes | None = None,
             who: str | None = None) -> Destination:
    """Ship the account's deliveries to ``url`` from now on. ``identity``: a private login key
    to use (kept 0600 under snapsync's home); None: the account's own, made on first use.

    Raises:
        ConfigError: a bad address, host key or login key; the message says what to give.
    """
    target = parse_url(url)
    parse_host_key(host_key)
    folder = private_dir(key_folder(settings))
    name = f"account-{account_id}.key"
    path = folder / name
    if identity is not None:
        scratch = folder / f".{name}.new"
        with open_private(scratch) as f:
            f.write(identity)
        try:
            load_identity(scratch)
        except Exception:
            scratch.unlink()
            raise
        os.replace(scratch, path)
    if not path.exists():
        make_identity(path)
    public = public_line(load_identity(path))
    new = Destination(account_id, target, host_key.strip(), path, public)
    with connect_state(settings) as conn:
        before = _row(conn, account_id)
        cur = conn.cursor()
        cur.execute("REPLACE INTO snapsync_destination (account_id, url, host_key, identity, public_key, updated_at, "
                    "updated_by) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (account_id, str(target), new.host_key, name, public, utcnow(), who or actor()))
        record_audit(cur, account_id=account_id, entity="destination", entity_id=str(account_id),
                     action="create" if before is None else "update", before=before, after=new.public(),
                     detail={"login_key": "given" if identity is not None else "snapsync's own"}, who=who)
        conn.commit()
    return new


def clear(settings: Settings, account_id: int, *, who: str | None = None) -> bool:
    """Stop shipping the account's deliveries (its login key file is removed); False when it had none."""
    with connect_state(settings) as conn:
        before = _row(conn, account_id)
        if before is None:
            return False
        cur = conn.cursor()
        cur.execute("DELETE FROM snapsync_destination WHERE account_id = %s", (account_id,))
        record_audit(cur, account_id=account_id, entity="destination", entity_id=str(account_id), action="delete",
                     before=before, after=None, who=who)
        conn.commit()
    (key_folder(settings) / f"account-{account_id}.key").unlink(missing_ok=True)
    return True


def _row(conn, account_id: int) -> dict | None:
    cur = conn.cursor()
    cur.execute("SELECT url, host_key, public_key FROM snapsync_destination WHERE account_id = %s", (account_id,))
    r = cur.fetchone()
    return None if r is None else {"url": r[0], "host_key": parse_host_key(r[1]).fingerprint, "public_key": r[2]}
