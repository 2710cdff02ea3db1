"""Whom an account's packages are encrypted to (``snapsync_recipient`` in the state store):
one OpenPGP public key or age recipient per account, checked when it is given and again at
every delivery. Every change is audited by fingerprint, never with the key itself."""

from __future__ import annotations

import datetime as dt
import json

from snapsync.connectors.crypto import EXPIRY_WARNING_DAYS, Recipient, parse_recipient
from snapsync.connectors.state import connect_state
from snapsync.control.audit import actor, record_audit
from snapsync.control.notifications import notify
from snapsync.schemas.config import Settings
from snapsync.schemas.control import utcnow
from snapsync.schemas.errors import ConfigError


def load(conn, account_id: int) -> Recipient | None:
    """The account's recipient as stored (not re-checked: see :func:`for_delivery`)."""
    cur = conn.cursor()
    cur.execute("SELECT kind, key_text, fingerprint, expires, uids FROM snapsync_recipient WHERE account_id = %s",
                (account_id,))
    r = cur.fetchone()
    conn.commit()
    if r is None:
        return None
    return Recipient(r[0], r[1], r[2], r[3], tuple(json.loads(r[4]) if r[4] else ()))


def get(settings: Settings, account_id: int) -> Recipient | None:
    with connect_state(settings) as conn:
        return load(conn, account_id)


def for_delivery(settings: Settings, account_id: int) -> Recipient | None:
    """The recipient a delivery for the account is encrypted to, checked now (a key that
    expired or was revoked since it was given stops the delivery: nothing goes out in the clear).

    Raises:
        ConfigError: the stored key no longer encrypts; the message names the fix.
    """
    stored = get(settings, account_id)
    if stored is None:
        return None
    try:
        return parse_recipient(stored.key)
    except ConfigError as exc:
        raise ConfigError(f"account {account_id}'s encryption key cannot be used: {exc}; nothing was delivered "
                          "(upload a current key: snapshot configure --encrypt-to FILE)") from None


def set_key(settings: Settings, account_id: int, text: str | bytes, *, who: str | None = None) -> Recipient:
    """Encrypt the account's packages to the key in ``text`` from now on.

    Raises:
        ConfigError: the key is malformed, expired, revoked or cannot encrypt.
    """
    new = parse_recipient(text)
    with connect_state(settings) as conn:
        before = load(conn, account_id)
        cur = conn.cursor()
        cur.execute("REPLACE INTO snapsync_recipient (account_id, kind, fingerprint, expires, key_text, uids, "
                    "warned_expiry, updated_at, updated_by) VALUES (%s,%s,%s,%s,%s,%s,NULL,%s,%s)",
                    (account_id, new.kind, new.fingerprint, new.expires, new.key, json.dumps(list(new.uids)),
                     utcnow(), who or actor()))
        record_audit(cur, account_id=account_id, entity="encryption_key", entity_id=str(account_id),
                     action="create" if before is None else "update",
                     before=before.public() if before else None, after=new.public(), who=who)
        if new.expires_within(EXPIRY_WARNING_DAYS):
            _warn(cur, account_id, new)
        conn.commit()
    return new


def clear(settings: Settings, account_id: int, *, who: str | None = None) -> bool:
    """Deliver the account's packages in the clear again; False when it had no key."""
    with connect_state(settings) as conn:
        before = load(conn, account_id)
        if before is None:
            return False
        cur = conn.cursor()
        cur.execute("DELETE FROM snapsync_recipient WHERE account_id = %s", (account_id,))
        record_audit(cur, account_id=account_id, entity="encryption_key", entity_id=str(account_id),
                     action="delete", before=before.public(), after=None, who=who)
        conn.commit()
    return True


def warn_expiring(settings: Settings, now: dt.datetime | None = None) -> int:
    """A message to each account whose key expires within 30 days, once per key expiry (the
    scheduler calls this every round). Returns how many were sent."""
    now = now or utcnow()
    sent = 0
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT account_id, kind, key_text, fingerprint, expires FROM snapsync_recipient "
                    "WHERE expires IS NOT NULL AND expires <= %s AND (warned_expiry IS NULL OR warned_expiry <> expires) "
                    "FOR UPDATE", (now + dt.timedelta(days=EXPIRY_WARNING_DAYS),))
        for account_id, kind, key, fpr, expires in cur.fetchall():
            _warn(cur, account_id, Recipient(kind, key, fpr, expires), now=now)
            sent += 1
        conn.commit()
    return sent


def _warn(cur, account_id: int, r: Recipient, now: dt.datetime | None = None) -> None:
    assert r.expires is not None
    now = now or utcnow()
    when = "has expired" if r.expires <= now else f"expires on {r.expires:%Y-%m-%d}"
    notify(cur, account_id=account_id, kind="key-expiring",
           message=f"The key your snapshots are encrypted to ({r.fingerprint}) {when}: upload a renewed public key "
                   "in Snapshots, or deliveries stop when it expires.",
           detail={"fingerprint": r.fingerprint, "expires": r.expires.isoformat() + "Z"})
    cur.execute("UPDATE snapsync_recipient SET warned_expiry = expires WHERE account_id = %s", (account_id,))
