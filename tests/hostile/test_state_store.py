"""snapsync's own schemas under bad input: a state store that is the practice schema, one that
does not answer, one that was never migrated or is newer than the code, a login missing one
grant, an earlier release's tables in the practice schema (upgraded in place, nothing lost), and
a long query on a practice table while an export runs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect, ensure_database
from snapsync.local import free_port
from snapsync.schemas.state import SCHEMA_VERSIONS, SIGNAL_TABLES, STATE_TABLES
from snapsync.seed import seed
from tests.conftest import db_env, qs, settings_for, sig

BIN = str(Path(sys.executable).with_name("snapsync"))


def run(env, *args, timeout=120):
    r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    return r


def _schemas(s) -> set[str]:
    with connect(s.db, database=False) as conn:
        cur = conn.cursor()
        cur.execute("SHOW DATABASES")
        return {r[0] for r in cur.fetchall()}


@pytest.mark.parametrize("args", [["status"], ["audit"], ["snapshot", "show", "--account", "1"], ["worker"],
                                  ["capture"], ["web", "--port", "1"], ["export-worker"], ["users", "list"]])
def test_a_schema_never_migrated_is_named_and_nothing_is_created(base_settings, cli_env, args):
    s = settings_for(base_settings, "nevermigrated")
    ensure_database(s.db)
    r = run({**cli_env, **db_env(s)}, *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "snapsync db migrate" in r.stderr
    assert s.state.database not in _schemas(s) and s.signal_schema not in _schemas(s)  # no DDL ran


def test_a_state_url_at_the_practice_schema_is_refused(seeded_db, cli_env):
    env = {**cli_env, **db_env(seeded_db), "SNAPSYNC_STATE_URL": seeded_db.database_url.get_secret_value()}
    r = run(env, "status")
    assert r.returncode == 2 and "SNAPSYNC_STATE_URL (state_url) points at the practice schema" in r.stderr
    r = run(env, "db", "migrate")
    assert r.returncode == 2  # and nothing written: the practice schema has no snapsync table
    with connect(seeded_db.db) as conn:
        cur = conn.cursor()
        cur.execute("SHOW TABLES LIKE 'snapsync%%'")
        assert cur.fetchall() == ()


def test_an_unreachable_state_store_is_a_clear_exit_3(seeded_db, cli_env):
    env = {**cli_env, **db_env(seeded_db), "SNAPSYNC_STATE_URL": f"mysql://root@127.0.0.1:{free_port()}/snapsync"}
    r = run(env, "snapshot", "show", "--account", "1")
    assert r.returncode == 3 and "cannot reach the database" in r.stderr


def test_a_schema_from_a_newer_release_is_named_and_left_alone(fresh_db, cli_env):
    s = fresh_db
    env = {**cli_env, **db_env(s)}
    qs(s, "INSERT INTO snapsync_schema_version (`version`, description, `release`, applied_at) "
          "VALUES (%s, 'from the future', '9.9.9', UTC_TIMESTAMP(6))", (SCHEMA_VERSIONS["state"] + 1,))
    try:
        r = run(env, "status")
        assert r.returncode == 2 and "newer release of snapsync" in r.stderr and "upgrade snapsync" in r.stderr
        r = run(env, "db", "migrate")
        assert r.returncode == 2 and "newer release" in r.stderr
        r = run(env, "db", "status", "--json")
        assert r.returncode == 1 and json.loads(r.stdout)["state"]["state"] == "newer"
    finally:
        qs(s, "DELETE FROM snapsync_schema_version WHERE `version` > %s", (SCHEMA_VERSIONS["state"],))
    assert run(env, "db", "status").returncode == 0


def test_a_table_missing_at_the_right_version_is_named_and_made_again(fresh_db, cli_env):
    """A state store recorded at this release's version but lacking one of its tables (made by a
    pre-release build of the version, or a table dropped by hand): commands say so and name
    `db migrate`, which makes the table again; nothing else is touched."""
    s = fresh_db
    env = {**cli_env, **db_env(s)}
    qs(s, "INSERT INTO snapsync_audit (at, actor, entity, action) VALUES (UTC_TIMESTAMP(6), 'kept', 'x', 'y')")
    qs(s, "DROP TABLE snapsync_usage_event")
    r = run(env, "status")
    assert r.returncode == 2 and "lacks 1 table(s) of this release (snapsync_usage_event)" in r.stderr, r.stderr
    assert "snapsync db migrate" in r.stderr
    r = run(env, "db", "migrate")
    assert r.returncode == 0, r.stderr
    assert qs(s, "SELECT COUNT(*) FROM snapsync_usage_event") == ((0,),)
    assert qs(s, "SELECT actor FROM snapsync_audit") == (("kept",),)
    r = run(env, "audit")
    assert r.returncode == 0 and "kept" in r.stdout, r.stderr


def test_a_login_missing_one_grant_is_told_which(seeded_db, cli_env):
    s = seeded_db
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("DROP USER IF EXISTS 'halfweb'@'%'")
        cur.execute("CREATE USER 'halfweb'@'%' IDENTIFIED BY 'pw-half'")
        cur.execute(f"GRANT SELECT ON `{s.db.database}`.* TO 'halfweb'@'%'")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{s.state.database}`.* TO 'halfweb'@'%'")
        cur.execute(f"GRANT SELECT ON `{s.signal_schema}`.`snapsync_schema_version` TO 'halfweb'@'%'")
    env = {**cli_env, **db_env(s),
           "SNAPSYNC_DATABASE_URL": f"mysql://halfweb:pw-half@{s.db.host}:{s.db.port}/{s.db.database}",
           "SNAPSYNC_STATE_URL": f"mysql://halfweb:pw-half@{s.db.host}:{s.db.port}/{s.state.database}"}
    r = run(env, "db", "check", "--role", "web")
    assert r.returncode == 1 and "missing on the source server: SELECT on" in r.stdout
    assert "snapsync_heartbeat" in r.stdout and "pw-half" not in r.stdout + r.stderr
    r = run(env, "db", "check", "--role", "web", "--json")
    assert [m["scope"] for m in json.loads(r.stdout)["missing"]] == [f"{s.signal_schema}.snapsync_heartbeat"]
    assert run(env, "status").returncode in (0, 1)  # what it may read it shows; the heartbeat is left out


def _legacy_tables(conn, practice: str) -> None:
    """The tables of release 0.1, inside the practice schema: today's layout, with the three
    columns 0.1 did not have yet (and the before-images keyed by ``audit_id``)."""
    cur = conn.cursor()
    for name, ddl in {**STATE_TABLES, **SIGNAL_TABLES}.items():
        if name in ("snapsync_sync_task", "snapsync_audit_outbox"):
            continue  # new in this release
        ddl = ddl.replace(f"CREATE TABLE IF NOT EXISTS `{name}`", f"CREATE TABLE `{practice}`.`{name}`")
        if name == "snapsync_audit":
            ddl = ddl.replace("  `journal_id` BIGINT UNSIGNED NULL,\n", "").replace(
                "  UNIQUE KEY `uk_journal` (`journal_id`),\n", "")
        if name == "snapsync_sync_before":
            ddl = ddl.replace("`journal_id`", "`audit_id`").replace("  `after_json` JSON NULL,\n", "")
        if name == "snapsync_sync_echo":
            ddl = ddl.replace("  `path` JSON NULL,\n", "")
        cur.execute(ddl)


def test_an_earlier_releases_tables_move_out_of_the_practice_schema_with_nothing_lost(base_settings, cli_env):
    from snapsync.control import snapshot_settings
    from snapsync.control.sync_undo import undo_application

    s = settings_for(base_settings, "legacystack")
    ensure_database(s.db)
    with connect(s.db) as conn:
        seed(conn, customers=3, scale=0.003, seed_value=4, accounts=1)
        _legacy_tables(conn, s.db.database)
        cur = conn.cursor()
        cur.execute("SELECT id, description FROM icd_code WHERE customer_id = 3 ORDER BY id LIMIT 1")
        row_id, original = cur.fetchone()
        cur.execute("SELECT code FROM icd_code WHERE id = %s", (row_id,))
        code = cur.fetchone()[0]
        # an override by 0.1's applier: the row changed, its audit record and before-image kept
        cur.execute("UPDATE icd_code SET description = 'overridden by 0.1' WHERE id = %s", (row_id,))
        cur.execute("INSERT INTO snapsync_audit (at, actor, account_id, entity, entity_id, action, detail) VALUES "
                    "(UTC_TIMESTAMP(6), 'snapsync-sync', NULL, 'sync_apply', 'cmd-1', 'override', %s)",
                    (json.dumps({"table": "icd_code", "target_customer": 3}),))
        audit_id = cur.lastrowid
        cur.execute("INSERT INTO snapsync_sync_before (audit_id, table_name, target_customer, row_id, natural_key, "
                    "before_json) VALUES (%s, 'icd_code', 3, %s, %s, %s)",
                    (audit_id, row_id, json.dumps({"code": code}), json.dumps({"description": original})))
        cur.execute("INSERT INTO snapsync_snapshot_settings (account_id, enabled, format, kind, packaging, container, "
                    "customers, `keep`, updated_at, updated_by) VALUES (1, 1, 'dat', 'full', 'combined', 'folder', "
                    "'[1, 3]', 1, UTC_TIMESTAMP(6), 'someone')")
        for _ in range(40):  # more audit records than the application's: new journal ids must start above them
            cur.execute("INSERT INTO snapsync_audit (at, actor, entity, action) VALUES (UTC_TIMESTAMP(6), 'x', "
                        "'user', 'create')")
        conn.commit()
    env = {**cli_env, **db_env(s)}
    assert run(env, "status").returncode == 2  # the new schemas are not there yet: `db migrate` is named
    r = run(env, "db", "migrate")
    assert r.returncode == 0, r.stderr
    assert "moved snapsync_audit out of the practice schema" in r.stdout and "undoable" in r.stdout
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SHOW TABLES LIKE 'snapsync%%'")
        assert cur.fetchall() == ()
    assert snapshot_settings.get(s, 1).customers == (1, 3)  # the settings came along
    assert qs(s, "SELECT COUNT(*) FROM snapsync_audit")[0][0] == 41
    # the 0.1 application is still undoable: its before-image found through its audit record
    assert undo_application(s, audit_id) == 1
    with connect(s.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT description FROM icd_code WHERE id = %s", (row_id,))
        assert cur.fetchone()[0] == original
    with connect(s.db) as conn:  # and new journal ids start above every old audit id
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {sig(s, 'snapsync_audit_outbox')} (at, actor, entity, action) VALUES "
                    "(UTC_TIMESTAMP(6), 'x', 'sync_apply', 'override')")
        assert cur.lastrowid > qs(s, "SELECT MAX(audit_id) FROM snapsync_audit")[0][0]
        conn.rollback()
    assert run(env, "db", "migrate").returncode == 0  # again: nothing to do
    assert run(env, "db", "status").returncode == 0


def test_a_long_query_on_a_practice_table_blocks_neither_the_export_nor_the_writers(seeded_db, tmp_path):
    """MariaDB's consistent snapshot reports its own position: no FLUSH TABLES WITH READ LOCK,
    which would wait behind the long query and stall every writer meanwhile."""
    from snapsync.sinks.export import ExportRequest, export_snapshot

    s = seeded_db
    done = threading.Event()

    def long_query():
        import pymysql

        with connect(s.db) as conn:
            cur = conn.cursor()
            try:
                cur.execute("SELECT COUNT(*), SLEEP(20) FROM patient")  # holds the table open for 20 s
                cur.fetchall()
            except pymysql.err.OperationalError:
                pass  # killed at the end of the test
        done.set()

    t = threading.Thread(target=long_query, daemon=True)
    t.start()
    time.sleep(1.0)
    for server_side in (True, False):  # the same-host path and the client path
        result = export_snapshot(s, ExportRequest([1], "dat", server_side=server_side), tmp_path / f"out{server_side}")
        assert result.rows > 0 and not done.is_set()
        manifest = json.loads((result.path / "customer-1" / "manifest.json").read_text())
        assert manifest["snapshot_method"] == "consistent-snapshot"
    with connect(s.db, autocommit=True) as conn:  # a writer commits while the query still runs
        conn.cursor().execute("UPDATE patient SET city = 'not blocked' WHERE customer_id = 1 ORDER BY id LIMIT 1")
    assert not done.is_set()
    with connect(s.db, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT COUNT(*), SLEEP(20)%%'")
        for (pid,) in cur.fetchall():
            cur.execute(f"KILL QUERY {int(pid)}")
    t.join(30)
