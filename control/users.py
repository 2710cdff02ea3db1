"""People of the Services web app: users, their passwords, API tokens, browser sessions
and sign-in throttling.

* Passwords are hashed with argon2id (``argon2-cffi``'s defaults: memory-hard, 64 MiB), and
  must be hard to guess: at least :data:`MIN_PASSWORD` characters and a zxcvbn score of at
  least :data:`MIN_SCORE` (dictionaries of common passwords, names and words, keyboard
  patterns, repeats, dates, the user's own e-mail).
* API tokens and session ids are random; only their SHA-256 is stored, so a copy of the
  database opens no account. A token is shown once, when it is made; it can be listed (by
  id, never its value) and revoked one by one.
* Revocation revokes: a password change, disabling and enabling again end every session and
  token of the user (a token made before is never valid again).
* Sign-in is throttled per e-mail address *and* client address together
  (:data:`MAX_FAILURES_PER_PAIR`), per client address (:data:`MAX_FAILURES_PER_CLIENT`) and
  per e-mail address from all clients (:data:`MAX_FAILURES_PER_EMAIL`): past a limit within
  :data:`THROTTLE_WINDOW`, sign-in is refused without looking at the password until the
  oldest failure leaves the window. So one anonymous client cannot lock a known user out
  (docs/decisions.md, issue 24). Unknown e-mail addresses are treated exactly like wrong
  passwords (same answer, same work).
* Every change of a user is audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ValidationError
from zxcvbn import zxcvbn

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control.accounts import require_account
from snapsync.control.audit import actor, record_audit
from snapsync.schemas.config import Settings
from snapsync.schemas.control import User, utcnow
from snapsync.schemas.errors import ConfigError, NotFoundError, config_error

THROTTLE_WINDOW = dt.timedelta(minutes=15)
#: Failures of one e-mail address from one client address.
MAX_FAILURES_PER_PAIR = 5
#: Failures from one client address, whatever the e-mail (one address guessing many users).
MAX_FAILURES_PER_CLIENT = 20
#: Failures of one e-mail address from every client together (guessing from many addresses).
MAX_FAILURES_PER_EMAIL = 50
MIN_PASSWORD = 12
#: zxcvbn's score (0-4): 3 is "safely unguessable: moderate protection from an offline
#: slow-hash scenario" (about 10^8 guesses), which argon2id and the throttle make ample.
MIN_SCORE = 3
#: zxcvbn's work grows with the length; the first characters decide (more only adds strength).
SCORED_CHARACTERS = 100
TOKEN_PREFIX = "ssk_"

_hasher = PasswordHasher()
_dummy_hash: str | None = None
_COLUMNS = "user_id, account_id, email, role, disabled"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row) -> User:
    return User(user_id=row[0], account_id=row[1], email=row[2], role=row[3], disabled=bool(row[4]))


def check_password(password: str, *, email: str | None = None) -> None:
    """Raises ConfigError when the password is too weak to store: shorter than
    :data:`MIN_PASSWORD`, or easy to guess (zxcvbn, with the user's e-mail as known input).
    The message never quotes the password."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD} characters",
                          fields={"password": f"use at least {MIN_PASSWORD} characters"})
    if len(password) > 1024:
        raise ConfigError("the password is too long: use at most 1024 characters")
    known = [email, email.split("@")[0]] if email else []
    verdict = zxcvbn(password[:SCORED_CHARACTERS], user_inputs=known)
    if verdict["score"] < MIN_SCORE:
        # zxcvbn's feedback is fixed text (it never repeats the password)
        feedback = verdict.get("feedback") or {}
        why = (feedback.get("warning") or "it is made of common words, names or patterns").rstrip(".")
        advice = " ".join(feedback.get("suggestions") or []) or "Add another word or two."
        raise ConfigError(f"the password is too easy to guess ({why}): {advice} Use a passphrase of several "
                          "uncommon words.", fields={"password": "too easy to guess: use a passphrase of several "
                                                                 "uncommon words"})


# --- users (the CLI) -------------------------------------------------------------------------
def add_user(settings: Settings, account_id: int, email: str, role: str, password: str,
             *, who: str | None = None) -> User:
    """Create a user of ``account_id`` (audited).

    Raises:
        ConfigError: unknown account, bad e-mail or role, weak password, e-mail taken.
    """
    try:
        user = User(account_id=account_id, email=email, role=role)
    except ValidationError as exc:
        raise config_error(exc, "invalid user:", fixes={"role": "use auth-rep or viewer"}) from None
    check_password(password, email=user.email)
    with connect(settings.db) as practice:
        require_account(practice, account_id)
    with connect_state(settings) as conn:
        if find(conn, user.email) is not None:
            raise ConfigError(f"a user with e-mail {user.email} already exists: `snapsync users list` shows them")
        cur = conn.cursor()
        now = utcnow()
        cur.execute("INSERT INTO snapsync_user (account_id, email, role, password_hash, disabled, created_at, "
                    "updated_at) VALUES (%s, %s, %s, %s, 0, %s, %s)",
                    (account_id, user.email, user.role, _hasher.hash(password), now, now))
        user = user.model_copy(update={"user_id": cur.lastrowid})
        record_audit(cur, account_id=account_id, entity="user", entity_id=user.email, action="create",
                     after=user.model_dump(), who=who)
        conn.commit()
        return user


def find(conn, email: str) -> User | None:
    cur = conn.cursor()
    cur.execute(f"SELECT {_COLUMNS} FROM snapsync_user WHERE email = %s", (email.strip().lower(),))
    row = cur.fetchone()
    conn.commit()
    return None if row is None else _user(row)


def get_user(settings: Settings, email: str) -> User:
    with connect_state(settings) as conn:
        user = find(conn, email)
    if user is None:
        raise NotFoundError(f"no user with e-mail {email.strip().lower()}: `snapsync users list` shows them")
    return user


def list_users(settings: Settings, account_id: int | None = None) -> list[User]:
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {_COLUMNS} FROM snapsync_user"
                    + (" WHERE account_id = %s" if account_id is not None else "") + " ORDER BY account_id, email",
                    (account_id,) if account_id is not None else ())
        return [_user(r) for r in cur.fetchall()]


def _end_credentials(cur, user_id: int) -> dict[str, int]:
    """Every session and token of the user ends (in the caller's transaction): they are deleted,
    so nothing brings them back (enabling a user again, a password set back)."""
    cur.execute("DELETE FROM snapsync_web_session WHERE user_id = %s", (user_id,))
    sessions = cur.rowcount
    cur.execute("DELETE FROM snapsync_api_token WHERE user_id = %s", (user_id,))
    return {"sessions_ended": sessions, "tokens_revoked": cur.rowcount}


def set_disabled(settings: Settings, email: str, disabled: bool = True, *, who: str | None = None) -> User:
    """Disable (or enable again) a user; either way every session and token of the user ends."""
    before = get_user(settings, email)
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE snapsync_user SET disabled = %s, updated_at = %s WHERE user_id = %s",
                    (int(disabled), utcnow(), before.user_id))
        ended = _end_credentials(cur, before.user_id)
        after = before.model_copy(update={"disabled": disabled})
        record_audit(cur, account_id=before.account_id, entity="user", entity_id=before.email,
                     action="disable" if disabled else "enable", before=before.model_dump(),
                     after=after.model_dump(), detail=ended, who=who)
        conn.commit()
        return after


def set_password(settings: Settings, email: str, password: str, *, who: str | None = None) -> User:
    """Replace a user's password (audited; the hash is never shown); every session and token of
    the user ends."""
    user = get_user(settings, email)
    check_password(password, email=user.email)
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE snapsync_user SET password_hash = %s, updated_at = %s WHERE user_id = %s",
                    (_hasher.hash(password), utcnow(), user.user_id))
        ended = _end_credentials(cur, user.user_id)
        record_audit(cur, account_id=user.account_id, entity="user", entity_id=user.email, action="password",
                     detail=ended, who=who)
        conn.commit()
    return user


def issue_token(settings: Settings, email: str, *, days: int = 90, who: str | None = None) -> str:
    """A new personal API token for the user (valid ``days`` days); only its hash is kept."""
    if not 1 <= days <= 366:
        raise ConfigError("a token is valid between 1 and 366 days: give --days in that range")
    user = get_user(settings, email)
    if user.disabled:
        raise ConfigError(f"user {user.email} is disabled: enable it before making a token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO snapsync_api_token (user_id, token_hash, created_at, expires_at) "
                    "VALUES (%s, %s, %s, %s)", (user.user_id, _digest(token), now, now + dt.timedelta(days=days)))
        record_audit(cur, account_id=user.account_id, entity="api_token", entity_id=str(cur.lastrowid),
                     action="create", detail={"user": user.email, "days": days}, who=who or actor())
        conn.commit()
    return token


def tokens_of(settings: Settings, user_id: int) -> list[dict]:
    """The user's API tokens, by id: when each was made, expires and was last used (never the
    token or its hash)."""
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT token_id, created_at, expires_at, last_used_at FROM snapsync_api_token "
                    "WHERE user_id = %s ORDER BY token_id", (user_id,))
        rows = cur.fetchall()
        conn.commit()
    now = utcnow()
    return [{"token_id": r[0], "created_at": r[1].isoformat(), "expires_at": r[2].isoformat(),
             "last_used_at": r[3].isoformat() if r[3] else None, "expired": r[2] <= now} for r in rows]


def list_tokens(settings: Settings, email: str) -> list[dict]:
    """:func:`tokens_of` the user with this e-mail (the CLI)."""
    return tokens_of(settings, get_user(settings, email).user_id)


def revoke_token(settings: Settings, user: User, token_id: int | None, *, who: str | None = None) -> int:
    """Revoke one of the user's tokens (``token_id`` None: all of them); returns how many.

    Raises:
        NotFoundError: the user has no token with that id (another user's token reads the same).
    """
    with connect_state(settings) as conn:
        cur = conn.cursor()
        one = token_id is not None
        cur.execute("DELETE FROM snapsync_api_token WHERE user_id = %s" + (" AND token_id = %s" if one else ""),
                    (user.user_id, token_id) if one else (user.user_id,))
        n = cur.rowcount
        if one and n == 0:
            conn.rollback()
            raise NotFoundError(f"user {user.email} has no token {token_id}: `snapsync users tokens --email "
                                f"{user.email}` lists them")
        record_audit(cur, account_id=user.account_id, entity="api_token", entity_id=str(token_id) if one else "all",
                     action="revoke", detail={"user": user.email, "tokens": n}, who=who)
        conn.commit()
        return n


# --- the web app ----------------------------------------------------------------------------
def token_user(conn, token: str, *, touch: bool = True) -> User | None:
    """The enabled user owning an unexpired API token, or None (``touch``: record its use)."""
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))} FROM snapsync_api_token t "
                "JOIN snapsync_user u ON u.user_id = t.user_id "
                "WHERE t.token_hash = %s AND t.expires_at > %s AND u.disabled = 0",
                (_digest(token), utcnow()))
    row = cur.fetchone()
    if row is not None and touch:
        cur.execute("UPDATE snapsync_api_token SET last_used_at = %s WHERE token_hash = %s",
                    (utcnow(), _digest(token)))
    conn.commit()
    return None if row is None else _user(row)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the user, or why not (``retry_after`` seconds when throttled)."""

    user: User | None
    throttled: bool = False
    retry_after: int = 0


def _failures(cur, key: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    cur.execute("SELECT COUNT(*), MIN(at) FROM snapsync_login_failure WHERE throttle_key = %s AND at > %s",
                (key, since))
    n, oldest = cur.fetchone()
    return int(n), oldest


def authenticate(conn, email: str, password: str, client: str) -> SignIn:
    """Check a sign-in, counting failures per e-mail and client together, per client and per
    e-mail (see the module docstring)."""
    global _dummy_hash
    now = utcnow()
    email = email.strip().lower()[:254]
    pair = f"pair:{_digest(email + chr(0) + client)}"
    keys = {pair: MAX_FAILURES_PER_PAIR, f"client:{client}"[:300]: MAX_FAILURES_PER_CLIENT,
            f"email:{email}": MAX_FAILURES_PER_EMAIL}
    cur = conn.cursor()
    cur.execute("DELETE FROM snapsync_login_failure WHERE at < %s", (now - THROTTLE_WINDOW,))
    for key, limit in keys.items():
        n, oldest = _failures(cur, key, now - THROTTLE_WINDOW)
        if n >= limit:
            conn.commit()
            wait = (oldest + THROTTLE_WINDOW - now).total_seconds()
            return SignIn(None, throttled=True, retry_after=max(1, int(wait) + 1))
    cur.execute("SELECT user_id, account_id, email, role, disabled, password_hash FROM snapsync_user "
                "WHERE email = %s", (email,))
    row = cur.fetchone()
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_hex(16))
    try:
        ok = _hasher.verify(row[5] if row else _dummy_hash, password) and row is not None and not row[4]
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        cur.executemany("INSERT INTO snapsync_login_failure (throttle_key, at) VALUES (%s, %s)",
                        [(k, now) for k in keys])
        conn.commit()
        return SignIn(None)
    if _hasher.check_needs_rehash(row[5]):
        cur.execute("UPDATE snapsync_user SET password_hash = %s WHERE user_id = %s",
                    (_hasher.hash(password), row[0]))
    # This client's failures for the user are forgiven; those of others still count.
    cur.execute("DELETE FROM snapsync_login_failure WHERE throttle_key = %s", (pair,))
    conn.commit()
    return SignIn(_user(row))


def open_session(conn, user: User, lifetime: dt.timedelta) -> tuple[str, str]:
    """A new browser session for ``user``: returns (session id for the cookie, CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    cur = conn.cursor()
    cur.execute("DELETE FROM snapsync_web_session WHERE expires_at < %s", (now,))
    cur.execute("INSERT INTO snapsync_web_session (session_hash, user_id, csrf_token, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s)", (_digest(session_id), user.user_id, csrf, now, now + lifetime))
    record_audit(cur, account_id=user.account_id, entity="session", entity_id=None, action="sign-in",
                 who=user.email)
    conn.commit()
    return session_id, csrf


def session_user(conn, session_id: str) -> tuple[User, str] | None:
    """(user, CSRF token) of a live session of an enabled user, or None."""
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))}, s.csrf_token "
                "FROM snapsync_web_session s JOIN snapsync_user u ON u.user_id = s.user_id "
                "WHERE s.session_hash = %s AND s.expires_at > %s AND u.disabled = 0",
                (_digest(session_id), utcnow()))
    row = cur.fetchone()
    conn.commit()
    return None if row is None else (_user(row[:5]), row[5])


def close_session(conn, session_id: str, user: User) -> None:
    """Sign out: the session is gone from the server, whatever the browser keeps."""
    cur = conn.cursor()
    cur.execute("DELETE FROM snapsync_web_session WHERE session_hash = %s", (_digest(session_id),))
    record_audit(cur, account_id=user.account_id, entity="session", entity_id=None, action="sign-out",
                 who=user.email)
    conn.commit()


# --- the same, each on its own connection (what the web app's handlers call) ----------------
def sign_in(settings: Settings, email: str, password: str, client: str,
            lifetime: dt.timedelta) -> tuple[SignIn, tuple[str, str] | None]:
    """:func:`authenticate`, then :func:`open_session` when it succeeded."""
    with connect_state(settings) as conn:
        result = authenticate(conn, email, password, client)
        return result, (open_session(conn, result.user, lifetime) if result.user else None)


def sign_out(settings: Settings, session_id: str, user: User) -> None:
    with connect_state(settings) as conn:
        close_session(conn, session_id, user)


def by_token(settings: Settings, token: str, *, touch: bool = True) -> User | None:
    with connect_state(settings) as conn:
        return token_user(conn, token, touch=touch)


def by_session(settings: Settings, session_id: str) -> tuple[User, str] | None:
    with connect_state(settings) as conn:
        return session_user(conn, session_id)
