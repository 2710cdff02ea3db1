"""API tokens: the signed-in user's own personal tokens, listed (never their value) and revoked
one by one, on a page and through the API. Any user may revoke their own (a viewer too);
another user's token is "not found", as a token that does not exist. Tokens are made by an
operator (`snapsync users token`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from snapsync.control import users
from snapsync.web.auth import Scope, reader
from snapsync.web.pages import render

router = APIRouter()


@router.get("/accounts/{account_id}/tokens", include_in_schema=False)
async def tokens_page(request: Request, revoked: int = 0, scope: Scope = Depends(reader)):
    rows = await run_in_threadpool(users.tokens_of, scope.settings, scope.user.user_id)
    return await render(request, "tokens.html", scope, tokens=rows, revoked=revoked)


@router.post("/accounts/{account_id}/tokens/{token_id}/revoke", include_in_schema=False)
async def revoke_page(token_id: int, scope: Scope = Depends(reader)):
    await run_in_threadpool(lambda: users.revoke_token(scope.settings, scope.user, token_id, who=scope.who))
    return RedirectResponse(f"/accounts/{scope.account_id}/tokens?revoked={token_id}", status_code=303)


@router.get("/api/accounts/{account_id}/tokens", tags=["tokens"], response_model=list[dict[str, Any]])
def list_tokens(scope: Scope = Depends(reader)):
    """The caller's own API tokens: id, when made, expires, last used (never the token)."""
    return users.tokens_of(scope.settings, scope.user.user_id)


@router.delete("/api/accounts/{account_id}/tokens/{token_id}", tags=["tokens"], response_model=dict[str, int])
def revoke_token(token_id: int, scope: Scope = Depends(reader)):
    """Revoke one of the caller's own tokens (it may be the one sending this request)."""
    users.revoke_token(scope.settings, scope.user, token_id, who=scope.who)
    return {"revoked": token_id}
