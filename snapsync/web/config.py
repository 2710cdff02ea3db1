"""The web app's own settings: the signing secret, session lifetime, cookie policy, and what it
believes of the network in front of it (proxies, host names, body sizes: ``snapsync/web/edge.py``).

The database, broker and topic prefix come from the project's :class:`Settings`; these
are the few things only the web process needs.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from snapsync.connectors.files import open_private, private_dir
if TYPE_CHECKING:
    from snapsync.schemas.config import Settings

CookieSecure = Literal["auto", "always", "never"]
#: What ``snapsync web`` serves by default: itself on loopback.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: The largest request body read (no form or API body comes near it).
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class WebConfig:
    """Args:
        secret: signs the session and sign-in cookies.
        session_hours: a session's lifetime (absolute; signing in again starts a new one).
        cookie_secure: ``auto`` marks cookies Secure when the request came over https (directly
            or, from a trusted proxy, by ``X-Forwarded-Proto``); ``always`` / ``never`` force it.
        trusted_proxies: addresses or networks whose ``X-Forwarded-For``/``-Proto`` are believed;
            none by default.
        allowed_hosts: the host names served (``Host`` header); others are answered 400.
        max_body_bytes: the largest request body read; a larger one is answered 413.
    """

    secret: str
    session_hours: float = 8.0
    cookie_secure: CookieSecure = "auto"
    trusted_proxies: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    max_body_bytes: int = MAX_BODY_BYTES

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
