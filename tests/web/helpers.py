"""Running the web app and a browser in tests: `snapsync web` as a process on a free
loopback port, Debian's Chromium driven by Playwright, sign-in and screenshot helpers."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from snapsync.local import free_port, stop_pid
from tests.conftest import env_for

BIN = str(Path(sys.executable).with_name("snapsync"))
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
#: How Debian's Chromium runs headless on these machines (the closed network refuses the rest).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"


def screenshot_dir() -> Path:
    """Where screenshots go: ``SNAPSYNC_SCREENSHOTS`` (``make screenshots`` sets docs/web), else
    ``.artifacts/screenshots`` of the checkout."""
    d = Path(os.environ.get("SNAPSYNC_SCREENSHOTS") or ROOT / ".artifacts" / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class WebServer:
    url: str
    log: Path
    proc: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_web(settings, log: Path, *args: str):
    """``snapsync web`` on a free loopback port against ``settings``; yields a :class:`WebServer`."""
    port = free_port()
    env = env_for(settings)
    proc = subprocess.Popen([BIN, "web", "--port", str(port), *args], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"snapsync web did not start:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(url + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        yield WebServer(url, log, proc)
    finally:
        stop_pid(proc.pid, grace=10)


def wait_live(server: WebServer, timeout: float = 30) -> None:
    """Until the web app's notifications consumer is assigned (pop-ups can flow)."""
    deadline = time.monotonic() + timeout
    while not requests.get(server.url + "/healthz", timeout=2).json()["live"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the web app's live notices did not start")
        time.sleep(0.2)


def sign_in(page, server: WebServer, email: str, password: str = PASSWORD) -> None:
    """The user's steps: open the app, type e-mail and password, press Sign in."""
    page.goto(server.url + "/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r".*/accounts/\d+/services$"))


def shot(page, name: str) -> Path:
    """A full-page screenshot named after the step."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def session(server: WebServer, email: str, password: str = PASSWORD, **headers) -> tuple[requests.Session, str]:
    """A signed-in ``requests`` session as a browser has it, and its CSRF token."""
    s = requests.Session()
    s.headers.update(headers)
    form = s.get(server.url + "/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = s.post(server.url + "/login", data={"email": email, "password": password, "csrf_token": token},
               allow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    page = s.get(server.url + r.headers["location"]).text
    return s, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
