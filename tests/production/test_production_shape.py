"""The whole pipeline in production's shape: a source server of its own that cannot write into
any folder the exporter sees (``secure_file_priv`` elsewhere, as on a managed MySQL or another
container), snapsync's state in schemas of its own (the defaults: ``snapsync`` and
``snapsync_signal``), and every process under its own least-privileged login, made from the
grants ``snapsync db grants`` prints. Root is only the billing application here (it seeds and
edits the practice data) and the administrator who grants.

Processes: the embedded capture (capture role), the worker with Data Sync, its queued copies
and the deltas stage (sync), the scheduler publishing jobs and the web app (web), two export
workers (export); commands: ``db migrate`` (migrate), ``snapshot export`` full and incremental
(export), ``status``, ``snapshot show``, ``audit`` and the sample (web).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

import pymysql
import pytest
import requests

from snapsync.connectors.mysql import connect
from snapsync.local import MariaDB, free_port, stop_pid
from snapsync.schemas.catalog import DATASETS, dataset, sync_datasets
from snapsync.schemas.config import load_settings
from snapsync.seed import seed
from tests.integration.pipeline import wait_until
from tests.web.helpers import running_web

BIN = str(Path(sys.executable).with_name("snapsync"))
ROLES = ("migrate", "capture", "export", "sync", "web")
PASSWORDS = {r: f"Pw-{r}-{'x' * 6}'\\q" for r in ROLES}  # quotes and backslashes: the URL must carry them
DB = "prod"
PREFIX = "prod"
NY_DAY = dt.date(2026, 3, 9)


def login_url(port: int, role: str | None) -> str:
    from urllib.parse import quote

    if role is None:
        return f"mysql://root@127.0.0.1:{port}/{DB}"
    return f"mysql://snap_{role}:{quote(PASSWORDS[role], safe='')}@127.0.0.1:{port}/{DB}"


class Shape:
    """The source server, the broker, a home folder, and how to run snapsync as each role."""

    def __init__(self, server: MariaDB, bootstrap: str, home: Path, files: Path) -> None:
        self.server, self.bootstrap, self.home, self.files = server, bootstrap, home, files
        home.mkdir(mode=0o700, exist_ok=True)
        self.root = load_settings(None, database_url=login_url(server.port, None), kafka_bootstrap=bootstrap,
                                  topic_prefix=PREFIX, home=str(home))
        self.procs: list[subprocess.Popen] = []

    def env(self, role: str | None) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSYNC_")}
        env.update(SNAPSYNC_DATABASE_URL=login_url(self.server.port, role), SNAPSYNC_KAFKA_BOOTSTRAP=self.bootstrap,
                   SNAPSYNC_TOPIC_PREFIX=PREFIX, SNAPSYNC_HOME=str(self.home), SNAPSYNC_CONNECTOR="prodcap")
        return env

    def settings(self, role: str | None):
        return load_settings(None, **{k[9:].lower(): v for k, v in self.env(role).items() if k.startswith("SNAPSYNC_")})

    def run(self, role: str | None, *args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        r = subprocess.run([BIN, *args], env=self.env(role), capture_output=True, text=True, input=input,
                           timeout=timeout)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (args, r.stderr[-3000:])
        return r

    def spawn(self, role: str, *args: str) -> subprocess.Popen:
        log = open(self.home / f"{role}-{args[0]}.log", "ab")
        p = subprocess.Popen([BIN, *args], env=self.env(role), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def q(self, sql: str, args=(), schema: str = DB):
        with connect(self.root.db.with_database(schema), autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute(sql, args)
            return cur.fetchall()


@pytest.fixture(scope="module")
def shape(broker, tmp_path_factory):
    base = tmp_path_factory.mktemp("production")
    files = base / "server-files"  # the only folder the source may write; the exporter never looks there
    files.mkdir()
    server = MariaDB(base / "source" / "data", free_port(), server_id=7, secure_file_priv=str(files))
    server.start()
    home = base / "home"
    sh = Shape(server, broker.bootstrap, home, files)
    try:
        # the billing application: its schema and data
        with connect(sh.root.db, database=False, autocommit=True) as conn:
            conn.cursor().execute(f"CREATE DATABASE `{DB}`")
        with connect(sh.root.db) as conn:
            seed(conn, customers=5, scale=0.004, seed_value=21, accounts=2)  # account 1: 1, 3, 5; account 2: 2, 4
            cur = conn.cursor()
            cur.execute("SHOW MASTER STATUS")
            sh.start = cur.fetchone()[:2]  # the binlog from here on: what snapsync writes into the practice schema
        # the administrator: one login per role, each given exactly what `db grants` prints
        with connect(sh.root.db, database=False, autocommit=True) as conn:
            for role in ROLES:
                conn.cursor().execute(f"CREATE USER 'snap_{role}'@'127.0.0.1' IDENTIFIED BY %s", (PASSWORDS[role],))
        grant("migrate", sh)
        r = sh.run("migrate", "db", "migrate")
        assert r.returncode == 0 and "ready" in r.stdout, r.stderr
        for role in ROLES[1:]:  # the table-level grants need the tables migrate made
            grant(role, sh)
        yield sh
    finally:
        for p in sh.procs:
            stop_pid(p.pid, grace=15)
        stop_pid(server.pid or 0, grace=30)


def grant(role: str, sh: Shape) -> None:
    """Run exactly the statements ``db grants`` prints for the role, as the administrator."""
    r = sh.run(None, "db", "grants", "--role", role, "--user", f"snap_{role}", "--host", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    statements = [line for line in r.stdout.splitlines() if line.startswith("GRANT ")]
    assert statements and not any("ALL" in s for s in statements), r.stdout
    with connect(sh.root.db, database=False, autocommit=True) as conn:
        for statement in statements:
            conn.cursor().execute(statement.rstrip(";"))


@pytest.fixture(scope="module")
def running(shape):
    """The long-running processes, each under its own login; the web app's Auth Rep and token."""
    sh = shape
    sh.spawn("capture", "capture", "--commit-interval", "0.2", "--heartbeat-interval", "0.3")
    worker = sh.spawn("sync", "worker")
    log = sh.home / "sync-worker.log"
    wait_until(lambda: log.exists() and b"Worker]: Ready" in log.read_bytes() or worker.poll() is not None,
               timeout=90, what="the worker ready")
    assert worker.poll() is None, log.read_text()[-3000:]
    for _ in range(2):
        sh.spawn("export", "export-worker", "--lease", "10")
    r = sh.run("web", "users", "add", "--account", "1", "--email", "rep@example.test", "--role", "auth-rep",
               "--password-stdin", input="Rep-password-2026\n")
    assert r.returncode == 0, r.stderr
    token = sh.run("web", "users", "token", "--email", "rep@example.test").stdout.strip()
    web_settings = sh.settings("web")
    with running_web(web_settings, sh.home / "web.log") as web:
        yield sh, web, {"Authorization": f"Bearer {token}"}


def test_every_role_holds_its_grants_and_no_more_is_needed(shape):
    for role in ROLES:
        r = shape.run(role, "db", "check", "--role", role)
        assert r.returncode == 0, (role, r.stdout)
        # and none of them may run DDL in the practice schema or the state store
        with pytest.raises(pymysql.err.OperationalError):
            with connect(shape.settings(role).db) as conn:
                conn.cursor().execute("CREATE TABLE snapsync_probe (i INT)")
    missing = shape.run("web", "db", "check", "--role", "export")  # the web login is not an exporter
    assert missing.returncode == 1 and "missing" in missing.stdout and "snapsync_heartbeat" in missing.stdout


def test_full_export_takes_the_remote_path_and_equals_the_root_same_host_run(shape, mariadb, base_settings,
                                                                          tmp_path):
    sh = shape
    out = tmp_path / "remote"
    r = sh.run("export", "snapshot", "export", "--customers", "1,3", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert not list(sh.files.iterdir())  # the server wrote nothing: every row came over the wire
    remote = out / "current"
    manifest = json.loads((remote / "customer-1" / "manifest.json").read_text())
    assert manifest["snapshot_method"] == "consistent-snapshot" and "MariaDB" in manifest["source_server"]
    # the same data on the session's server, exported there by root on one host (the server writes the rows)
    from snapsync.sinks.export import ExportRequest, export_snapshot
    from tests.conftest import new_database, settings_for

    copy = new_database(settings_for(base_settings, "prod_copy"))
    dump = subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{sh.server.port}", "-uroot", "--single-transaction",
                           DB], capture_output=True, check=True)
    subprocess.run(["mariadb", "-h127.0.0.1", f"-P{mariadb.port}", "-uroot", copy.db.database], input=dump.stdout,
                   check=True)
    local = export_snapshot(copy, ExportRequest([1, 3], "dat", "per-customer"), tmp_path / "local").path
    for pkg in ("customer-1", "customer-3"):
        for ds in DATASETS:
            name = f"{ds.table}.DAT"
            assert (remote / pkg / name).read_bytes() == (local / pkg / name).read_bytes(), (pkg, name)


def test_data_sync_from_the_web_app_copies_and_follows_edits(running):
    sh, web, auth = running
    r = sh.run("web", "sync", "enable", "--account", "1")
    assert r.returncode == 0, r.stderr
    body = {"account_id": 1, "source_customer": 1, "targets": [3], "categories": ["codes"], "mode": "override"}
    created = requests.post(f"{web.url}/api/accounts/1/sync-groups", json=body, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    task = created.json()["initial_copy"]["3"]
    cols = ", ".join(f"`{c}`" for c in dataset("icd_code").sync_columns)

    def codes(customer):
        return sh.q(f"SELECT {cols} FROM icd_code WHERE customer_id = %s ORDER BY code", (customer,))

    # the web app (read-only on the practice data) queued the copy; the worker, the only writer, made it
    wait_until(lambda: codes(3) == codes(1), timeout=90, what="the initial copy in customer 3")
    # the task ends (outcome, message) in a transaction of its own after the copy's: wait for it
    wait_until(lambda: any(t["task_id"] == task and t["state"] == "done" for t in requests.get(
        f"{web.url}/api/accounts/1/sync-tasks", headers=auth, timeout=30).json()), timeout=60, what="the task done")
    code = codes(1)[0][0]
    sh.q("UPDATE icd_code SET description = 'edited at the source' WHERE customer_id = 1 AND code = %s", (code,))
    wait_until(lambda: sh.q("SELECT description FROM icd_code WHERE customer_id = 3 AND code = %s", (code,))
               == (("edited at the source",),), timeout=60, what="the edit in customer 3")
    notes = requests.get(f"{web.url}/api/accounts/1/notifications", headers=auth, timeout=30).json()
    assert any("Data Sync copied customer 1" in n["message"] for n in notes)


def test_incremental_export_under_the_export_role(running, tmp_path):
    sh, _web, _auth = running
    out = tmp_path / "inc"
    cutoff = dt.datetime(2026, 3, 8)  # New York midnight; the changes below are dated the evening before
    r = sh.run("export", "snapshot", "export", "--customers", "1", "--out", str(out), "--kind", "incremental",
               "--cutoff", cutoff.isoformat(), "--watermark-timeout", "120")
    assert r.returncode == 0, r.stderr  # the first delivery to a folder: customer 1 in full
    with connect(sh.root.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SET TIMESTAMP = UNIX_TIMESTAMP('2026-03-09 02:00:00')")  # 2026-03-08 21:00 New York
        cur.execute("UPDATE patient SET city = 'Changed City' WHERE customer_id = 1 ORDER BY id LIMIT 2")
        cur.execute("SET TIMESTAMP = DEFAULT")
    r = sh.run("export", "snapshot", "export", "--customers", "1", "--out", str(out), "--kind", "incremental",
               "--cutoff", "2026-03-09T00:00", "--watermark-timeout", "120", "--json")
    assert r.returncode == 0, r.stderr
    lines = (out / "current" / "customer-1" / "patient.DAT").read_text().splitlines()
    assert len(lines) == 3 and all("Changed City" in line for line in lines[1:]), lines[:3]


def test_the_nightly_round_status_show_audit_and_sample_under_the_web_role(running, tmp_path):
    sh, web, auth = running
    put = requests.put(f"{web.url}/api/accounts/1/snapshot-settings", headers=auth, timeout=30,
                       json={"account_id": 1, "enabled": True, "customers": [1, 5], "format": "dat",
                             "kind": "full", "packaging": "combined"})
    assert put.status_code == 200, put.text
    r = sh.run("web", "snapshot", "scheduler", "--jobs", "--once", "--as-of", f"{NY_DAY}T02:00", "--json")
    assert r.returncode == 0, r.stderr
    assert [j["account_id"] for j in json.loads(r.stdout)] == [1]
    wait_until(lambda: sh.q("SELECT COUNT(*) FROM snapsync_delivery WHERE account_id = 1 AND slot_date = %s AND "
                            "status = 'delivered'", (NY_DAY,), schema="snapsync")[0][0] == 1,
               timeout=120, what="the round's delivery by an export worker")
    zipped = requests.get(f"{web.url}/api/accounts/1/deliveries/current.zip", headers=auth, timeout=60)
    assert zipped.status_code == 200
    with zipfile.ZipFile(BytesIO(zipped.content)) as z:
        assert "combined/patient.DAT" in z.namelist()
    sample = requests.get(f"{web.url}/api/accounts/1/sample.zip", headers=auth, timeout=60)
    with zipfile.ZipFile(BytesIO(sample.content)) as z:
        patients = [n for n in z.namelist() if n.endswith("/patient.DAT")]
        assert patients and len(z.read(patients[0]).decode().splitlines()) == 6  # header and five rows
    for args in (["status", "--json"], ["snapshot", "show", "--account", "1"], ["audit", "--account", "1"],
                 ["db", "status"]):
        r = sh.run("web", *args)
        assert r.returncode in (0, 1), (args, r.stderr)
        assert "migrate" not in r.stderr, r.stderr
    st = json.loads(sh.run("web", "status", "--json").stdout)
    assert {p["role"] for p in (*st["processes"]["capture"], *st["processes"]["worker"]) if p["state"] == "running"} \
        == {"capture", "worker"}
    assert st["capture"]["connectors"][0]["heartbeat_written_s_ago"] is not None  # the web login reads the heartbeat


def test_nothing_of_snapsyncs_is_left_in_the_practice_schema(running):
    sh, _web, _auth = running
    tables = {r[0] for r in sh.q("SHOW TABLES")}
    assert tables == {"account", "customer", *(d.table for d in DATASETS)}
    assert {r[0] for r in sh.q("SHOW DATABASES")} >= {DB, "snapsync", "snapsync_signal"}


def test_the_practice_binlog_carries_no_write_of_snapsyncs_but_data_syncs(running):
    """From the end of the seed on: row events in the practice schema are the billing
    application's edits (patient, icd_code) and Data Sync's writes (the sync data sets); no DDL."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import QueryEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    sh, _web, _auth = running
    time.sleep(1)
    end = sh.q("SHOW MASTER STATUS")[0][:2]
    reader = BinLogStreamReader(connection_settings={"host": "127.0.0.1", "port": sh.server.port, "user": "root",
                                                     "password": ""}, server_id=99123, log_file=sh.start[0],
                                log_pos=int(sh.start[1]), resume_stream=True, blocking=False,
                                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent])
    written, ddl = {}, []
    try:
        for ev in reader:
            if (reader.log_file, reader.log_pos) > (end[0], int(end[1])):
                break
            schema = ev.schema.decode() if isinstance(ev.schema, bytes) else ev.schema
            if schema != DB:
                continue
            if isinstance(ev, QueryEvent):
                if ev.query.strip().upper() not in ("BEGIN", "COMMIT"):
                    ddl.append(ev.query[:80])
                continue
            written[ev.table] = written.get(ev.table, 0) + len(ev.rows)
    finally:
        reader.close()
    sync_tables = {d.table for d in sync_datasets()}
    assert ddl == []
    assert set(written) <= sync_tables | {"patient"}, written
    assert "icd_code" in written and "patient" in written  # the copy, the edits: the check saw them
