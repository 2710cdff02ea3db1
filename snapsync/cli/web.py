"""`snapsync web`: the Services web app (pages for Auth Reps and the JSON API)."""

from __future__ import annotations

from typing import Annotated

import typer

from snapsync.cli.common import ConfigOpt, MetricsHostOpt, MetricsPortOpt, settings, setup_logging
from snapsync.web.config import DEFAULT_HOSTS, MAX_BODY_BYTES


def web(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default; put a TLS proxy in front).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    cookie_secure: Annotated[str, typer.Option(help="Mark cookies Secure: auto (when the request came over https), always, never.")] = "auto",
    session_hours: Annotated[float, typer.Option(help="How long a sign-in lasts.", min=0.1, max=24 * 30)] = 8.0,
    forwarded_allow_ips: Annotated[str, typer.Option(help="Proxies (IP addresses or networks, comma-separated) whose X-Forwarded-Proto/For are believed; none by default.")] = "",
    allowed_hosts: Annotated[str, typer.Option(help="Host names the app is reached by (comma-separated, *.example.com patterns); any other Host header is refused.")] = ",".join(DEFAULT_HOSTS),
    max_body_bytes: Annotated[int, typer.Option(help="The largest request body read (larger: 413).", min=1024, max=64 << 20)] = MAX_BODY_BYTES,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
    config: ConfigOpt = None,
) -> None:
    """Serve the Services web app: Recurring Data Snapshots, Data Sync, Messages, Downloads,
    Audit History, and the JSON API (OpenAPI at /api/openapi.json).

    Signing secret: SNAPSYNC_WEB_SECRET, or a random one kept in <home>/web/secret. Behind the TLS
    proxy, name it with --forwarded-allow-ips and the public host name with --allowed-hosts.
    """
    import uvicorn

    from snapsync.schemas.errors import ConfigError
    from snapsync.web.app import create_app, prepare
    from snapsync.web.config import WebConfig, load_secret
    from snapsync.web.edge import parse_hosts, parse_proxies

    if cookie_secure not in ("auto", "always", "never"):
        raise ConfigError("--cookie-secure: use auto, always or never")
    proxies, hosts = parse_proxies(forwarded_allow_ips), parse_hosts(allowed_hosts)
    setup_logging()
    s = settings(config)
    prepare(s)  # a database that cannot be reached is one clear message, before serving
    app = create_app(s, WebConfig(secret=load_secret(s), session_hours=session_hours, cookie_secure=cookie_secure,
                                  trusted_proxies=proxies, allowed_hosts=hosts, max_body_bytes=max_body_bytes))
    from snapsync.control.processes import Beacon
    from snapsync.web.app import metrics_health

    server = None
    if metrics_port is not None:
        from snapsync.connectors.metrics import serve

        server = serve(metrics_port, metrics_health(app), metrics_host)
    beacon = Beacon(s, "web", metrics_port=metrics_port).start()
    try:
        # The app reads the proxy's headers itself (snapsync/web/edge.py): uvicorn's own reading
        # would trust 127.0.0.1 (or $FORWARDED_ALLOW_IPS) by default.
        uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False,
                    timeout_graceful_shutdown=3, server_header=False)
    finally:
        beacon.stop()
        if server is not None:
            server.close()
