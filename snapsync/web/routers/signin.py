"""Signing in and out. The sign-in form has its own CSRF token (a signed cookie matched
by a hidden field), sign-in is throttled by the control plane, and signing out deletes the
session on the server."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import users
from snapsync.web import auth
from snapsync.web.pages import render

router = APIRouter(include_in_schema=False)

LOGIN_FORM_SECONDS = 3600


def _safe_next(target: str | None) -> str | None:
    """Only a path of this site (no scheme, no host, no ``//``) is followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


async def _form(request: Request, status: int = 200, error: str = "", email: str = "", next_: str = ""):
    token = secrets.token_urlsafe(32)
    response = await render(request, "login.html", None, status=status, login_csrf=token, error=error,
                            email=email, next=_safe_next(next_) or "")
    auth.set_cookie(response, request, auth.LOGIN_COOKIE, auth.sign(request.app.state.web, "login", token),
                    LOGIN_FORM_SECONDS)
    return response


@router.get("/")
async def home(request: Request):
    try:
        who = await auth.principal(request, None)
    except auth.SignInRequired:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/accounts/{who.user.account_id}/services", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = ""):  # noqa: A002 - the query parameter's name
    return await _form(request, next_=next)


@router.post("/login")
async def login(request: Request, email: str = Form(""), password: str = Form(""), csrf_token: str = Form(""),
                next: str = Form("")):  # noqa: A002
    config = request.app.state.web
    cookie = request.cookies.get(auth.LOGIN_COOKIE, "")
    expected = auth.unsign(config, "login", cookie, LOGIN_FORM_SECONDS) if cookie else None
    if expected is None or not secrets.compare_digest(expected, csrf_token):
        return await _form(request, 403, "The sign-in form expired: please try again.", email, next)
    client = request.client.host if request.client else "unknown"
    settings = request.app.state.settings

    result, opened = await run_in_threadpool(users.sign_in, settings, email, password, client,
                                             config.session_lifetime)
    if result.throttled:
        minutes = max(1, (result.retry_after + 59) // 60)
        response = await _form(request, 429, f"Too many failed sign-ins. Try again in {minutes} minute(s).", email,
                               next)
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if opened is None:
        return await _form(request, 401, "Wrong e-mail or password.", email, next)
    session_id, _csrf = opened
    target = _safe_next(next) or f"/accounts/{result.user.account_id}/services"
    response = RedirectResponse(target, status_code=303)
    auth.set_cookie(response, request, auth.SESSION_COOKIE, auth.sign(config, "session", session_id),
                    int(config.session_lifetime.total_seconds()))
    response.delete_cookie(auth.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, who: auth.Principal = Depends(auth.principal)):
    if who.via == "session":
        await auth.check_csrf(request, who.csrf)
        await run_in_threadpool(users.sign_out, request.app.state.settings, who.session_id, who.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=auth.secure_cookies(request))
    return response
