"""A Kafka Connect REST API client (``requests``), for the Debezium connector's tooling.

Transient failures are retried by urllib3's :class:`~urllib3.util.Retry` mounted on the
session (no hand-written loop): refused or dropped connections, and the answers a worker
gives while it cannot serve the request yet — 409 while a rebalance is in progress,
500/502/503/504 while it (or a proxy in front of it) is starting or restarting — with
exponential back-off, honouring ``Retry-After``. Every method is retried
(``allowed_methods=None``): Connect's mutating calls are idempotent (``PUT .../config``,
pause, resume, delete) or harmless to repeat (restart).

"Not yet" states are waited for, not fatal: a connector that was just created answers 404
on ``/status`` and then runs without tasks or with ``UNASSIGNED`` ones for a few seconds
(:meth:`ConnectClient.wait_status`).

Errors say what to do: retries exhausted raise :class:`RetriableError` (exit code 3), an
unknown connector :class:`NotFoundError`, a refused config :class:`ConfigError` (both exit
code 2). The connector's password never appears in a message: the worker's answers are
searched for it and it is masked.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from snapsync.schemas.errors import ConfigError, FatalError, NotFoundError, RetriableError, SnapsyncError

#: Answers retried with back-off: 409 rebalance in progress, 500 (a worker that is starting or
#: whose leader is changing answers 500 before it can forward the request), gateways, 503.
RETRY_STATUSES = (409, 500, 502, 503, 504)
#: Task and connector states that are still on their way to a settled one.
TRANSIENT_STATES = {"UNASSIGNED", "RESTARTING"}


def _reason(exc: BaseException) -> str:
    """A short reason for a connection failure, from the innermost cause urllib3 recorded."""
    inner: Any = exc.args[0] if exc.args else exc
    inner = getattr(inner, "reason", inner)
    text = str(inner)
    for known in ("Connection refused", "timed out", "Name or service not known", "Connection reset",
                  "No route to host", "Remote end closed connection"):
        if known.lower() in text.lower():
            return known.lower()
    return type(inner).__name__


class ConnectClient:
    """Kafka Connect REST API client with retries, waits and clear errors.

    Args:
        url: the worker's REST URL, ``http(s)://host:port``.
        retries: how many times a failed request is tried again (connection errors and the
            :data:`RETRY_STATUSES`); back-off ``backoff * 2**n`` seconds, at most ``backoff_max``.
        timeout: seconds to connect and to read one answer (validation connects to the database,
            so the read timeout is generous).
        secret: a value to mask in every message (the connector's database password).
    """

    def __init__(self, url: str, *, retries: int = 6, backoff: float = 0.3, backoff_max: float = 5.0,
                 timeout: tuple[float, float] = (5.0, 95.0), secret: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--connect-url {url!r} must start with http:// or https:// (e.g. http://connect:8083)")
        if retries < 0:
            raise ConfigError(f"--retries {retries}: use 0 or more")
        self.url = url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        self.secret = secret
        retry = Retry(
            total=retries, connect=retries, status=retries,
            read=min(retries, 1),  # an answer that never came may have been applied: try once more only
            backoff_factor=backoff, backoff_max=backoff_max,
            status_forcelist=RETRY_STATUSES, allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,  # the last answer is returned: its message goes into the error
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})

    # -- plumbing ---------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "****")
        return text

    def _message(self, r: requests.Response) -> str:
        try:
            body = r.json()
            message = body.get("message", r.text) if isinstance(body, dict) else r.text
        except ValueError:
            message = r.text
        message = " ".join(str(message).split())
        return self._mask(message[:600] + ("..." if len(message) > 600 else ""))

    def _call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        attempts = self.retries + 1
        try:
            r = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableError(
                f"Kafka Connect at {self.url} did not answer {method} {path.split('?')[0]} "
                f"after {attempts} attempt(s) ({_reason(exc)}): check --connect-url (SNAPSYNC_CONNECT_URL) and that "
                "the Connect worker is running (`snapsync local up --connect` starts a local one)"
            ) from None
        except requests.RequestException as exc:
            raise RetriableError(f"Kafka Connect at {self.url}: {type(exc).__name__} on {method} "
                                 f"{path.split('?')[0]}") from None
        if r.status_code in ok:
            try:
                return r.json() if r.content else None
            except ValueError:
                raise FatalError(f"Kafka Connect at {self.url} answered {method} {path.split('?')[0]} with a body "
                                 "that is not JSON: is --connect-url the Connect REST port?") from None
        message = self._message(r)
        where = f"{method} {path.split('?')[0]}"
        if r.status_code == 409:
            raise RetriableError(
                f"Kafka Connect at {self.url} was still rebalancing after {attempts} attempt(s) of {where} "
                f"({message}): the workers have not settled; try again in a minute")
        if r.status_code in RETRY_STATUSES:
            raise RetriableError(
                f"Kafka Connect at {self.url} answered HTTP {r.status_code} to {where} {attempts} time(s) "
                f"({message}): check the worker's log, and try again when it is healthy")
        if r.status_code == 404:
            raise NotFoundError(f"Kafka Connect at {self.url}: {message} (HTTP 404 on {where})")
        if r.status_code in (400, 422):
            raise ConfigError(f"Kafka Connect at {self.url} refused {where}: {message} (HTTP {r.status_code})")
        raise FatalError(f"Kafka Connect at {self.url} refused {where}: {message} (HTTP {r.status_code})")

    # -- the REST API -----------------------------------------------------------------------
    def connector_plugins(self) -> list[str]:
        """The connector classes installed on the worker."""
        return [p.get("class", "") for p in self._call("GET", "/connector-plugins?connectorsOnly=true") or []]

    def validate(self, config: dict[str, Any], name: str | None = None) -> list[str]:
        """``PUT /connector-plugins/{class}/config/validate``: each failing field with its error,
        as ``"field: error"``.

        Real Connect requires ``name`` inside the config it validates; it is added from ``name``
        when missing.

        Raises:
            ConfigError: ``connector.class`` is missing or not installed on the worker.
        """
        cls = str(config.get("connector.class") or "").strip()
        if not cls:
            raise ConfigError("connector.class: missing (required): render the connector with "
                              "`snapsync connector render`, or set it in the file")
        installed = self.connector_plugins()
        if cls not in installed:
            raise ConfigError(
                f"connector.class: {cls} is not installed on the Kafka Connect worker at {self.url} (it has: "
                f"{', '.join(sorted(installed)) or 'no connectors'}): install that connector plugin on every worker, "
                "or choose an installed one with --connector-class")
        body = dict(config)
        if name and not body.get("name"):
            body["name"] = name
        result = self._call("PUT", f"/connector-plugins/{cls}/config/validate", body) or {}
        failing = []
        for item in result.get("configs", []):
            value = item.get("value", {})
            for error in value.get("errors", []):
                failing.append(self._mask(f"{value.get('name')}: {' '.join(str(error).split())}"))
        return failing

    def put_config(self, name: str, config: dict[str, Any]) -> bool:
        """``PUT /connectors/{name}/config``: create or update; True when it was created.
        The answer (which echoes the password) is not kept."""
        body = {k: v for k, v in config.items() if k != "name"} | {"name": name}
        before = set(self.connectors())
        self._call("PUT", f"/connectors/{name}/config", body)
        return name not in before

    def connectors(self) -> list[str]:
        return list(self._call("GET", "/connectors") or [])

    def status(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/status``.

        Raises:
            NotFoundError: the worker does not know the connector (yet).
        """
        try:
            return self._call("GET", f"/connectors/{name}/status")
        except NotFoundError:
            raise NotFoundError(self._unknown(name)) from None

    def _unknown(self, name: str, waited: float = 0.0) -> str:
        still = f" (still unknown after waiting {waited:g}s)" if waited else ""
        try:
            known = ", ".join(sorted(self.connectors())) or "none"
        except SnapsyncError:
            known = "unknown"
        return (f"connector {name!r} is not on the Kafka Connect worker at {self.url}{still}; the worker has: "
                f"{known}. Check --name, or deploy it with `snapsync connector deploy`")

    def wait_status(self, name: str, timeout: float, want: str | None = None,
                    poll: float = 0.5) -> dict[str, Any]:
        """The connector's status once it has settled, waiting up to ``timeout`` seconds.

        Settled: the connector and at least one task are all in ``want`` (e.g. ``RUNNING``,
        ``PAUSED``); with ``want=None``, none is ``UNASSIGNED`` or ``RESTARTING`` and tasks are
        assigned. Any ``FAILED`` state is settled too (waiting would not change it). After the
        timeout the last status is returned as it is.

        Raises:
            NotFoundError: the connector was still unknown when the time was up.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                st: dict[str, Any] | None = self._call("GET", f"/connectors/{name}/status")
            except NotFoundError:
                st = None
            if st is not None and settled(st, want):
                return st
            left = deadline - time.monotonic()
            if left <= 0:
                if st is None:
                    raise NotFoundError(self._unknown(name, timeout))
                return st
            time.sleep(min(poll, left))

    def wait_restarted(self, name: str, timeout: float, poll: float = 0.2) -> dict[str, Any]:
        """After :meth:`restart`: wait until the restart has been seen (a state ``RESTARTING`` or
        ``UNASSIGNED``; the worker applies the request a moment after answering it), then until
        everything is ``RUNNING`` again, within ``timeout`` seconds in all."""
        deadline = time.monotonic() + max(timeout, 0.0)
        seen_by = min(deadline, time.monotonic() + 10.0)
        while time.monotonic() < seen_by:
            try:
                st = self._call("GET", f"/connectors/{name}/status")
            except NotFoundError:
                break
            if TRANSIENT_STATES & set(states(st)) or len(states(st)) < 2:
                break
            time.sleep(poll)
        return self.wait_status(name, max(deadline - time.monotonic(), 0.0), "RUNNING")

    def wait_gone(self, name: str, timeout: float, poll: float = 0.5) -> bool:
        """Wait until the worker no longer lists the connector nor has a status for it (the status
        goes a moment after the listing); True when it is gone."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if name not in self.connectors():
                try:
                    self._call("GET", f"/connectors/{name}/status")
                except NotFoundError:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def pause(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/resume")

    def stop(self, name: str) -> None:
        """Stop the connector (Kafka Connect 3.5+): its tasks shut down, their offsets committed,
        and nothing runs until :meth:`resume`, which starts them from those offsets."""
        self._call("PUT", f"/connectors/{name}/stop")

    def restart(self, name: str) -> None:
        """Restart the connector and all its tasks."""
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=false")

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{name}")

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """``GET /connectors/{name}/offsets`` (Kafka Connect 3.6+): the committed source offsets,
        ``[{"partition": {"server": prefix}, "offset": {"file", "pos", "row"?, "gtids"?, ...}}]``."""
        return (self._call("GET", f"/connectors/{name}/offsets") or {}).get("offsets", [])


def states(st: dict[str, Any]) -> list[str]:
    """The connector's state followed by each task's."""
    return [st.get("connector", {}).get("state", "UNASSIGNED"), *(t.get("state", "") for t in st.get("tasks", []))]


def settled(st: dict[str, Any], want: str | None = None) -> bool:
    """Whether a status answer is final enough to report (see :meth:`ConnectClient.wait_status`)."""
    all_states = states(st)
    if "FAILED" in all_states:
        return True
    if all_states[0] == "STOPPED":
        return want in (None, "STOPPED")
    if len(all_states) < 2:  # no task assigned yet
        return False
    if want is not None:
        return all(s == want for s in all_states)
    return not TRANSIENT_STATES & set(all_states)
