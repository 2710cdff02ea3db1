"""The Services web app (FastAPI): pages for Auth Reps and a JSON API for scripts.

Handlers are thin: they call the control plane (``snapsync.control``), which validates and
audits every change once for the CLI and the web alike. Authorization is one dependency
(:mod:`snapsync.web.auth`). Errors never quote request values or row values, and the log
records an unexpected error by its type only (PHI stays out of logs).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from snapsync.schemas import VERSION
from snapsync.connectors.state import connect_state
from snapsync.connectors.mysql import connect
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError, NotFoundError, RetriableError
from snapsync.web import auth, edge
from snapsync.web.config import WebConfig
from snapsync.web.live import NotificationHub
from snapsync.web.pages import templates
from snapsync.web.routers import (
    api,
    api_copies,
    api_usage,
    audit,
    copies,
    download,
    messages,
    services,
    signin,
    snapshots,
    sync,
    tokens,
    usage,
)

log = logging.getLogger("snapsync.web")

REQUESTS = Counter("snapsync_web_requests_total", "Requests answered, by method, route template and status.",
                   ["method", "route", "status"])
SECONDS = Histogram("snapsync_web_request_seconds", "Seconds to answer a request, by route template.", ["route"])

#: Pages may load only this site's own scripts, styles and images: no CDN, no inline code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str, fields: dict | None = None):
    if _is_api(request):
        body = {"detail": message, **({"fields": fields} if fields else {})}
        return JSONResponse(body, status_code=status,
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    return templates.TemplateResponse(request, "error.html", {"scope": None, "status": status, "message": message},
                                      status_code=status)


class PathOnlyAccessLog(logging.Filter):
    """The access log names the path, never the query string: a filter typed into a page (an
    e-mail, a date, a search) is the user's input and stays out of the log. What the client sent
    is printed with its control characters escaped (no terminal escapes in the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (edge.printable(str(args[0])), args[1], edge.printable(args[2].split("?", 1)[0]), args[3],
                           args[4])
        return True


def install_log_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PathOnlyAccessLog) for f in access.filters):
        access.addFilter(PathOnlyAccessLog())


class SafeErrors:
    """Outermost handler of unexpected exceptions: a plain 500, and one log line naming the
    exception's type and the route (an exception's text may quote a value)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"),
                      edge.printable(str(scope.get("path"))))
            if not started:
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": b"Internal error: the server log has its type."})


class RequestMetrics:
    """Counts requests and their durations by route template (never the path itself: ids and
    query strings stay out of the labels)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), {"code": 500}

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or ("/static" if scope["path"].startswith("/static/")
                                                                 else "unmatched")
            REQUESTS.labels(scope.get("method", "?"), route, str(status["code"])).inc()
            SECONDS.labels(route).observe(time.monotonic() - started)


class SecurityHeaders:
    """The same protective headers on every response (a plain ASGI middleware, so that
    streamed downloads and server-sent events pass through untouched)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        private = scope["path"].startswith(("/api/", "/accounts/", "/login"))

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                extra = [h for h in self.HEADERS if h[0] not in names]
                if private and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: Settings, config: WebConfig, *, live: bool = True) -> FastAPI:
    """The application for one database and broker.

    Args:
        live: run the notifications consumer that feeds the pop-ups.
    """
    hub = NotificationHub(settings) if live else None
    install_log_filter()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(prepare, settings)
        if hub is not None:
            hub.start()
        try:
            yield
        finally:
            if hub is not None:
                hub.stop()

    app = FastAPI(title="snapsync Services", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="The Services of an account: Recurring Data Snapshots, Data Sync, Data Copy and "
                              "Usage. Every route "
                              "under /api/accounts/{account_id}/ takes a bearer token from `snapsync users token` "
                              "and answers 404 for any account but the token owner's.")
    app.state.settings = settings
    app.state.web = config
    app.state.hub = hub
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    for router in (signin.router, services.router, snapshots.router, sync.router, copies.router, usage.router,
                   messages.router, audit.router, download.router, tokens.router, api.router, api_copies.router,
                   api_usage.router):
        app.include_router(router)

    @app.exception_handler(auth.SignInRequired)
    async def _sign_in(request: Request, _exc):
        if _is_api(request):
            return _error(request, 401,
                          "Sign-in required: send Authorization: Bearer <token from `snapsync users token`>.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # quoted whole: a `&` in the page's own query stays in `next`
        return RedirectResponse("/login?" + urlencode({"next": target}) if request.method == "GET" else "/login",
                                status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # Say which field and what is wrong; never echo the value sent (FastAPI's default does),
        # nor the name of a field the model does not have (it is input too).
        fields = {}
        for e in exc.errors():
            loc, msg = list(e["loc"]), e["msg"]
            if e["type"] == "extra_forbidden":
                loc, msg = loc[:-1], "unknown field: remove it (the fields are in /api/openapi.json)"
            fields[".".join(str(p) for p in loc if p != "body") or "body"] = msg
        return _error(request, 422, "invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items()), fields)

    @app.exception_handler(NotFoundError)
    async def _missing(request: Request, _exc):
        return _error(request, 404, "Not Found")

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError):
        return _error(request, 422, str(exc), exc.fields)

    @app.exception_handler(RetriableError)
    async def _unavailable(request: Request, exc: RetriableError):
        log.warning("service unavailable: %s", type(exc).__name__)
        return _error(request, 503, "The service is briefly unavailable: try again in a minute.")

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True, "live": bool(hub and hub.ready.is_set())}

    edge.install(app, config, lambda scope, status, message: _error(Request(scope), status, message))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(SafeErrors)
    app.add_middleware(RequestMetrics)
    return app


def metrics_health(app: FastAPI):
    """The web app's checks for its metrics port: alive while the process runs; ready while
    the database answers (checked at most every 5 s) and the live notices are being read."""
    from snapsync.connectors.metrics import Health

    settings: Settings = app.state.settings
    last = {"at": 0.0, "ok": False, "detail": "not checked yet"}

    def database() -> tuple[bool, str]:
        if time.monotonic() - last["at"] > 5:
            try:
                with connect(settings.db, connect_timeout=3, read_timeout=3) as conn:
                    conn.cursor().execute("SELECT 1")
                with connect_state(settings, connect_timeout=3, read_timeout=3) as conn:
                    conn.cursor().execute("SELECT 1")
                last.update(ok=True, detail="the database answers")
            except Exception as exc:  # noqa: BLE001 - not ready, whatever the reason
                last.update(ok=False, detail=f"the database does not answer ({type(exc).__name__})")
            last["at"] = time.monotonic()
        return last["ok"], last["detail"]

    def notices() -> tuple[bool, str]:
        hub = app.state.hub
        if hub is None:
            return True, "live notices off"
        return hub.ready.is_set(), "reading live notices" if hub.ready.is_set() else "live notices not connected yet"

    return Health(live={"process": lambda: (True, "serving")}, ready={"database": database, "notices": notices})


def prepare(settings: Settings) -> None:
    """The state store the app reads (users, sessions, messages...) is at this release's
    version (it never creates tables: ``snapsync db migrate`` does).

    Raises:
        SchemaError: it is missing or not current (exit 2).
    """
    with connect_state(settings):
        pass
