"""Who is asking, and may they: the one place where the web app authorizes.

Every page and API route under ``/accounts/{account_id}/`` or ``/api/accounts/{account_id}/``
depends on :class:`AccountAccess`. Before the handler runs it

1. resolves the caller: a bearer token (``Authorization: Bearer ssk_...`` from
   ``snapsync users token``) or the signed session cookie of a signed-in browser;
2. answers 404 when the account in the path is not the caller's own (the same answer as for
   an account that does not exist: nothing is revealed);
3. for routes that change or download, answers 403 to a ``viewer``;
4. for every unsafe method (POST, PUT, DELETE) sent with a session cookie, checks the CSRF
   token (form field ``csrf_token`` or header ``X-CSRF-Token``). Bearer requests carry no
   ambient credentials and need none.

Ids inside an account (sync groups) are resolved through the control plane with the
account's scope, so another account's group is "not found" too.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, TimestampSigner
from starlette.concurrency import run_in_threadpool

from snapsync.control import accounts, users
from snapsync.schemas.config import Settings
from snapsync.schemas.control import User
from snapsync.web.config import WebConfig

SESSION_COOKIE = "snapsync_session"
LOGIN_COOKIE = "snapsync_login"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

bearer_scheme = HTTPBearer(auto_error=False, description="A personal API token from `snapsync users token`.")


class SignInRequired(Exception):
    """No valid credentials: pages send the browser to the sign-in page, the API answers 401."""


@dataclass(frozen=True)
class Principal:
    user: User
    via: Literal["session", "token"]
    csrf: str = ""
    session_id: str = field(default="", repr=False)
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Scope:
    """What a handler gets: the caller, their account (checked) and the settings."""

    user: User
    account_id: int
    account_name: str
    settings: Settings
    csrf: str
    via: str
    principal: Principal | None = field(default=None, repr=False)

    @property
    def who(self) -> str:
        """The name the audit history records for changes made through the web app."""
        return self.user.email


def _signer(config: WebConfig, purpose: str) -> TimestampSigner:
    return TimestampSigner(config.secret, salt=f"snapsync-{purpose}")


def sign(config: WebConfig, purpose: str, value: str) -> str:
    return _signer(config, purpose).sign(value).decode()


def unsign(config: WebConfig, purpose: str, value: str, max_age: float) -> str | None:
    try:
        return _signer(config, purpose).unsign(value, max_age=max_age).decode()
    except BadSignature:  # also SignatureExpired
        return None


def secure_cookies(request: Request) -> bool:
    mode = request.app.state.web.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, Secure under https, expiring."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", path="/",
                        secure=secure_cookies(request))


def _resolve(request: Request, bearer: HTTPAuthorizationCredentials | None) -> Principal | None:
    settings: Settings = request.app.state.settings
    config: WebConfig = request.app.state.web
    if bearer is not None:
        user = users.by_token(settings, bearer.credentials)
        return None if user is None else Principal(user, "token", token=bearer.credentials)
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    session_id = unsign(config, "session", raw, config.session_lifetime.total_seconds())
    if session_id is None:
        return None
    found = users.by_session(settings, session_id)
    if found is None:
        return None
    return Principal(found[0], "session", csrf=found[1], session_id=session_id)


async def principal(request: Request,
                    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Principal:
    """The signed-in caller (raises :class:`SignInRequired` when there is none)."""
    found = await run_in_threadpool(_resolve, request, bearer)
    if found is None:
        raise SignInRequired()
    return found


def still_signed_in(settings: Settings, who: Principal) -> bool:
    """Whether the session or token that let ``who`` in is still good (not signed out, not
    revoked, the user not disabled): what a long-lived response (an event stream) re-checks."""
    if who.via == "token":
        user = users.by_token(settings, who.token, touch=False)
    else:
        found = users.by_session(settings, who.session_id)
        user = found[0] if found else None
    return user is not None and user.user_id == who.user.user_id and user.account_id == who.user.account_id


async def check_csrf(request: Request, expected: str) -> None:
    """The request carries the session's CSRF token (header or form field), else 403."""
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get("csrf_token")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "The form has expired or did not come from this site: reload the page and try again.")


class AccountAccess:
    """The authorization dependency (see the module docstring).

    Args:
        change: the route changes something or downloads data: ``auth-rep`` only.
    """

    def __init__(self, *, change: bool = False) -> None:
        self.change = change

    async def __call__(self, request: Request, account_id: int,
                       who: Principal = Depends(principal)) -> Scope:
        if who.user.account_id != account_id:
            raise HTTPException(404)
        if self.change and not who.user.can_change:
            raise HTTPException(403, "Your role is viewer: only an Auth Rep can change this or download data.")
        if request.method not in SAFE_METHODS and who.via == "session":
            await check_csrf(request, who.csrf)
        settings = request.app.state.settings
        name = await run_in_threadpool(accounts.name_of, settings, account_id)
        return Scope(who.user, account_id, name or f"Account #{account_id}", settings, who.csrf, who.via, who)


#: Read an account's pages and data.
reader = AccountAccess()
#: Change an account's settings, or download its data.
rep = AccountAccess(change=True)
