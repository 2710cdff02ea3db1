"""Prometheus metrics and the health endpoints every long-running process serves.

``--metrics-port`` on capture, the worker, the scheduler, the export workers and the web app
starts :func:`serve` in a daemon thread (the faust worker runs an asyncio loop, uvicorn
another: a thread serves them all alike). On that port:

* ``/metrics``: the Prometheus text format (prometheus-client's default registry: the
  process's own ``process_*``/``python_*`` metrics and the ``snapsync_*`` ones it uses);
* ``/healthz``: 200 while the process is alive and its main loop turns; 503 when a check
  fails (restarting it is the cure);
* ``/readyz``: 200 while the process does its job now (what that means is the process's
  own: e.g. capture is streaming, the worker has its partitions); 503 with the reasons.

Both answer JSON ``{"status": ..., "checks": {name: {"ok": bool, "detail": str}}}``. Check
details, metric names and labels are the process's own words: never a row value (PHI).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from snapsync.schemas.errors import ConfigError

log = logging.getLogger("snapsync.metrics")

#: Shared by every process that dead-letters (the worker's agents, the export workers).
DEAD_LETTERS = Counter("snapsync_dead_letters_total",
                       "Messages sent to the dead-letter topic <prefix>.dlq, by the topic they came from.", ["topic"])

#: A check answers (ok, detail). It runs on the metrics thread: it must be quick and never raise.
Check = Callable[[], tuple[bool, str]]


class PeriodicMonitor:
    """A daemon thread that calls :meth:`tick` every ``interval`` seconds, registered with a
    Prometheus collector (its ``monitors`` set) while it runs."""

    def __init__(self, collector, name: str, interval: float) -> None:
        self.interval = interval
        self._collector = collector
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._collector.monitors.add(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._collector.monitors.discard(self)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def tick(self) -> None:
        raise NotImplementedError


@dataclass
class Health:
    """The named liveness and readiness checks of one process."""

    live: dict[str, Check] = field(default_factory=dict)
    ready: dict[str, Check] = field(default_factory=dict)

    def report(self, which: str) -> tuple[bool, dict]:
        checks = self.live if which == "live" else {**self.live, **self.ready}
        results = {}
        for name, check in checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # noqa: BLE001 - a failing check is a failed check
                ok, detail = False, f"the check failed ({type(exc).__name__})"
            results[name] = {"ok": bool(ok), "detail": detail}
        ok = all(r["ok"] for r in results.values())
        return ok, {"status": "ok" if ok else "failing", "checks": results}


class Heartbeat:
    """A loop's last turn, for a liveness check: ``beat()`` in the loop, ``check`` on the port."""

    def __init__(self, what: str, stale_after: float) -> None:
        self.what = what
        self.stale_after = stale_after
        self.at = time.monotonic()

    def beat(self) -> None:
        self.at = time.monotonic()

    def check(self) -> tuple[bool, str]:
        age = time.monotonic() - self.at
        if age > self.stale_after:
            return False, f"{self.what} has not turned for {age:.0f}s (limit {self.stale_after:.0f}s)"
        return True, f"{self.what} turned {age:.1f}s ago"


class _Handler(BaseHTTPRequestHandler):
    health: Health
    registry = REGISTRY

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, status, ctype = generate_latest(self.registry), 200, CONTENT_TYPE_LATEST
        elif path in ("/healthz", "/readyz"):
            ok, report = self.health.report("live" if path == "/healthz" else "ready")
            body, status, ctype = json.dumps(report).encode() + b"\n", 200 if ok else 503, "application/json"
        else:
            body, status, ctype = b"not found: /metrics, /healthz, /readyz\n", 404, "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - scrapes are not worth a log line each
        pass


class MetricsServer:
    """The metrics port of one process (a daemon thread); :meth:`close` stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(port: int, health: Health, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread.

    Raises:
        ConfigError: the port cannot be bound (in use, or not allowed).
    """
    handler = type("Handler", (_Handler,), {"health": health})
    try:
        httpd = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                          "choose a free port") from None
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="snapsync-metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)", host, httpd.server_address[1])
    return MetricsServer(httpd, thread)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the Prometheus text format into {(name, sorted labels): value} (tests, status)."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
