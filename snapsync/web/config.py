"""The web app's own settings: the signing secret, session lifetime and cookie policy.

The database, broker and topic prefix come from the project's :class:`Settings`; these
are the few things only the web process needs.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from snapsync.connectors.files import open_private, private_dir
from snapsync.schemas.config import Settings

CookieSecure = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class WebConfig:
    """Args:
        secret: signs the session and sign-in cookies.
        session_hours: a session's lifetime (absolute; signing in again starts a new one).
        cookie_secure: ``auto`` marks cookies Secure when the request came over https (directly
            or, from a trusted proxy, by ``X-Forwarded-Proto``); ``always`` / ``never`` force it.
    """

    secret: str
    session_hours: float = 8.0
    cookie_secure: CookieSecure = "auto"

    @property
    def session_lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_hours)


def load_secret(settings: Settings) -> str:
    """``SNAPSYNC_WEB_SECRET``, or a random secret kept in ``<home>/web/secret`` (0600),
    made on first use, so that sessions survive a restart of the web app."""
    env = os.environ.get("SNAPSYNC_WEB_SECRET")
    if env:
        return env
    folder = private_dir(Path(settings.home).resolve() / "web")
    path = folder / "secret"
    if not path.is_file():
        with open_private(path, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
