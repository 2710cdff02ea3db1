"""The web app's edge: what it believes of the network in front of it.

* **Proxies**: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the
  configured proxies (``--forwarded-allow-ips``; none by default): otherwise any local process
  could pose as the TLS proxy, rotate its address past the per-client sign-in limit and pass
  itself off as https. uvicorn's ``ProxyHeadersMiddleware`` reads the headers; a forwarded
  address that is not an IP address is ignored (the proxy's own address stays), so the throttle
  and the access log only ever see addresses.
* **Hosts**: only the ``--allowed-hosts`` are served (Starlette's ``TrustedHostMiddleware``,
  400 otherwise): links and redirects built from the ``Host`` header can never name another site.
* **Bodies**: a request body over ``--max-body-bytes`` (1 MiB) is refused with 413 before it is
  read whole, at once when ``Content-Length`` says so, else as soon as the bytes received pass
  the limit. Starlette's ``RequestBodyLimitMiddleware`` does the same but answers a fixed plain
  text in place of the app's answer; this one answers in the app's own format, with the limit.
* **Logs**: what a client sent (a path, a forwarded address) is printed with its control
  characters escaped, so no request writes terminal escapes into the log.
"""

from __future__ import annotations

import ipaddress

from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from snapsync.schemas.errors import ConfigError

_PEER = "snapsync.peer"


def printable(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) written as ``\\xNN``."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def parse_proxies(text: str) -> tuple[str, ...]:
    """``--forwarded-allow-ips``: addresses or networks, comma-separated ('' for none).

    Raises:
        ConfigError: an entry that is neither (a host name cannot be checked against a peer).
    """
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = []
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            bad.append(item)
    if bad:
        raise ConfigError(f"--forwarded-allow-ips: {', '.join(bad)} is not an IP address or network: give the "
                          "proxy's addresses, e.g. 10.0.0.5 or 172.16.0.0/12 (leave it empty to trust none)")
    return items


def parse_hosts(text: str) -> tuple[str, ...]:
    """``--allowed-hosts``: host names, ``*.example.com`` patterns, or ``*`` (any).

    Raises:
        ConfigError: none given, or a ``*`` elsewhere than at the start of ``*.name``.
    """
    hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
    bad = [h for h in hosts if "*" in h[1:] or (h.startswith("*") and h != "*" and not h.startswith("*."))]
    if not hosts or bad:
        raise ConfigError("--allowed-hosts: give the host names the app is reached by, comma-separated (e.g. "
                          "services.example.com,localhost); a pattern is *.example.com"
                          + (f" ({', '.join(bad)} is not one)" if bad else ""))
    return hosts


class ForwardedFor:
    """Believe ``X-Forwarded-For``/``-Proto`` from ``trusted`` peers only, and only an IP
    address as the client."""

    def __init__(self, app, trusted: tuple[str, ...]) -> None:
        self.app = app
        self._proxy = ProxyHeadersMiddleware(self._checked, trusted_hosts=list(trusted)) if trusted else None

    async def __call__(self, scope, receive, send):
        if self._proxy is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        scope[_PEER] = scope.get("client")
        await self._proxy(scope, receive, send)

    async def _checked(self, scope, receive, send):
        client = scope.get("client")
        if client and client != scope.get(_PEER):
            try:
                ipaddress.ip_address(client[0])
            except ValueError:  # not an address: keep the proxy's own
                scope["client"] = scope.get(_PEER)
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    size = f"{limit / (1 << 20):g} MB" if limit >= 1 << 20 else f"{limit:,} bytes"
    return f"The request body is too large: at most {size} is accepted. Send less (no form or API body needs more)."


class BodyLimit:
    """Refuse a request body over ``limit`` bytes (413) before it is read whole. ``respond(scope,
    status, message)`` makes the answer when the app is not called at all."""

    def __init__(self, app, limit: int, respond) -> None:
        self.app, self.limit, self.respond = app, limit, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.limit:
            return await self.respond(scope, 413, too_large(self.limit))(scope, receive, send)  # unread
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)  # the app's handler answers it (FastAPI re-raises it)
            return message

        await self.app(scope, limited, send)


def install(app, config, respond) -> None:
    """Add the edge's middlewares to ``app`` (Starlette adds the last one outermost: hosts are
    checked first, then the proxy's headers read, then the body's size)."""
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, respond=respond)
    app.add_middleware(ForwardedFor, trusted=tuple(config.trusted_proxies))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts), www_redirect=False)
