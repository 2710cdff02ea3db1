"""`snapsync users`: the people of the Services web app (one account each, a role)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, lazy, out, settings

users = lazy("snapsync.control.users")

app = typer.Typer(help="Users of the Services web app: add, token, tokens, revoke-token, list, disable, password.",
                  no_args_is_help=True)

EmailOpt = Annotated[str, typer.Option("--email", help="The user's e-mail address (their sign-in name).")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def users_add(
    account: Annotated[int, typer.Option(help="The account the user belongs to.")],
    email: EmailOpt,
    role: Annotated[str, typer.Option(help="auth-rep (changes settings, downloads) or viewer (read only).")] = "auth-rep",
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create a user (the password is stored as an argon2id hash; the change is audited)."""
    user = users.add_user(settings(config), account, email, role, _password(password_stdin))
    print(json.dumps(user.model_dump())) if json_ else out.print(
        f"user {user.email} ({user.role}) added to account {user.account_id}")


@app.command("token")
def users_token(
    email: EmailOpt,
    days: Annotated[int, typer.Option(help="Days the token stays valid.", min=1, max=366)] = 90,
    config: ConfigOpt = None,
) -> None:
    """Print a new personal API token (shown once; send it as `Authorization: Bearer <token>`)."""
    print(users.issue_token(settings(config), email, days=days))


@app.command("tokens")
def users_tokens(email: EmailOpt, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List a user's API tokens: id, made, expires, last used (never the tokens themselves)."""
    rows = users.list_tokens(settings(config), email)
    if json_:
        print(json.dumps(rows))
        return
    for t in rows:
        out.print(f"token {t['token_id']}: made {t['created_at']}, expires {t['expires_at']}"
                  f"{' (expired)' if t['expired'] else ''}, last used {t['last_used_at'] or 'never'}", highlight=False)
    if not rows:
        out.print(f"{email} has no API token")


@app.command("revoke-token")
def users_revoke_token(
    email: EmailOpt,
    token_id: Annotated[Optional[int], typer.Option("--id", help="The token to revoke (`snapsync users tokens` lists them).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Revoke every token of the user.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Revoke one API token of a user (or all of them): it stops working at once (audited)."""
    from snapsync.schemas.errors import ConfigError

    if (token_id is None) == (not all_):
        raise ConfigError("give the token to revoke with --id N (`snapsync users tokens --email E` lists them), "
                          "or --all")
    s = settings(config)
    n = users.revoke_token(s, users.get_user(s, email), None if all_ else token_id)
    out.print(f"{n} token(s) of {email} revoked")


@app.command("list")
def users_list(account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
               config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List the users (never their passwords or tokens)."""
    rows = users.list_users(settings(config), account)
    if json_:
        print(json.dumps([u.model_dump() for u in rows]))
        return
    for u in rows:
        out.print(f"{u.email} account={u.account_id} role={u.role}{' (disabled)' if u.disabled else ''}",
                  highlight=False)


@app.command("disable")
def users_disable(email: EmailOpt, enable: Annotated[bool, typer.Option("--enable", help="Enable the user again.")] = False,
                  config: ConfigOpt = None) -> None:
    """Disable a user, or enable them again: either way their sessions end and their tokens are
    revoked (audited)."""
    user = users.set_disabled(settings(config), email, not enable)
    out.print(f"user {user.email} {'disabled' if user.disabled else 'enabled'}")


@app.command("password")
def users_password(email: EmailOpt, password_stdin: PasswordStdin = False, config: ConfigOpt = None) -> None:
    """Set a user's password (audited): their sessions end and their tokens are revoked."""
    users.set_password(settings(config), email, _password(password_stdin))
    out.print(f"password of {email} changed")
