"""The web app's boundaries that an attacker tried on the main of issue 24 (cases 2, 3, 4 and
7): request bodies read whole before the 401, revocation that did not revoke, live-notice
streams that outlived their session, and the smaller defects (a 500 on a far date, a length-only
password policy, validation errors echoing input, the operator's login shown to tenants, the
sign-in redirect dropping query parameters, the audit API's row images)."""

from __future__ import annotations

import getpass
import json
import re
import select
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.control import users
from snapsync.control.audit import record_audit
from snapsync.schemas.errors import ConfigError
from tests.conftest import db_env
from tests.web.helpers import BIN, PASSWORD, session

MB = 1 << 20


# --- case 2: request bodies ---------------------------------------------------------------
def _raw(web, head: bytes, chunks, timeout: float = 30.0) -> bytes:
    """Send a request by hand (``head``, then ``chunks`` until the server answers) and return
    the start of the answer; the server is given ``timeout`` seconds to answer."""
    url = urlsplit(web.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered already: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            got = sock.recv(65536)  # raises socket.timeout when the server waits for the rest of the body
            if not got:
                break
            answer += got
        return answer
    finally:
        sock.close()


def test_a_large_body_is_refused_before_it_is_read(web, web_db):
    head = (b"PUT /api/accounts/1/snapshot-settings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    # 400 MB announced, no credentials: answered 413 after 64 KB, the rest never read
    answer = _raw(web, head + b"Content-Length: 400000000\r\n\r\n", [b"[" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # the same streamed without a length: refused once past the limit
    piece = b"1," * (32 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw(web, head + b"Transfer-Encoding: chunked\r\n\r\n", [chunk] * (3 * MB // len(piece)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # a sign-in form too
    answer = _raw(web, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                       b"\r\nContent-Length: 5000000\r\n\r\n", [b"email=" + b"a" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # what the API says, and a body under the limit still goes through
    token = users.issue_token(web_db, "alice@example.test", who="test-setup")
    auth = {"Authorization": f"Bearer {token}"}
    big = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                       data=b'{"account_id": 1, "customers": [1], "pad": "' + b"x" * (2 * MB) + b'"}')
    assert big.status_code == 413 and "1 MB" in big.json()["detail"]
    read = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth,
                        json={"account_id": 1, "customers": [77], "pad": "x" * (MB // 2)})
    assert read.status_code == 422, read.text  # read and judged on its content
