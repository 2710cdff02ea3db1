"""The server dialect: each flavour's statements, chosen from version strings (no MySQL server
installs here: these cases are the MySQL branches' test; MariaDB's run in every integration test)."""

from __future__ import annotations

import pytest

from snapsync.connectors.dialect import Dialect, parse_version
from snapsync.connectors.mysql import snapshot_script_lines


@pytest.mark.parametrize("version, comment, flavor, status, lockless", [
    ("10.11.19-MariaDB-0+deb12u1-log", "Debian 12", "mariadb", "SHOW MASTER STATUS", True),
    ("11.4.2-MariaDB", "mariadb.org binary distribution", "mariadb", "SHOW MASTER STATUS", True),
    ("5.5.5-10.11.6-MariaDB", "", "mariadb", "SHOW MASTER STATUS", True),
    ("8.0.36", "MySQL Community Server - GPL", "mysql", "SHOW MASTER STATUS", False),
    ("8.0.40-cll-lve", "", "mysql", "SHOW MASTER STATUS", False),
    ("8.2.0", "MySQL Community Server - GPL", "mysql", "SHOW BINARY LOG STATUS", False),
    ("8.4.3", "MySQL Community Server - GPL", "mysql", "SHOW BINARY LOG STATUS", False),
    ("9.1.0-commercial", "MySQL Enterprise Server - Commercial", "mysql", "SHOW BINARY LOG STATUS", False),
    ("8.0.39-30", "Percona Server (GPL), Release 30", "percona", "SHOW MASTER STATUS", True),
    ("8.4.2-2", "Percona Server (GPL), Release '2'", "percona", "SHOW BINARY LOG STATUS", True),
])
def test_each_flavour_gets_its_statements(version, comment, flavor, status, lockless):
    d = Dialect.from_version(version, comment)
    assert d.flavor == flavor
    assert d.binlog_status == status
    assert d.lockless_snapshot is lockless
    opening, report, after = d.snapshot_statements()
    assert "START TRANSACTION WITH CONSISTENT SNAPSHOT" in opening
    if lockless:  # the snapshot's own position: no lock, nothing after
        assert "FLUSH TABLES WITH READ LOCK" not in opening and after == ()
        assert "BINLOG_SNAPSHOT_FILE" in report[0] and d.snapshot_method == "consistent-snapshot"
        assert d.snapshot_privileges == ()
    else:  # an instant of global read lock, bounded, released after the position is read
        assert opening.index("FLUSH TABLES WITH READ LOCK") < opening.index("START TRANSACTION WITH CONSISTENT "
                                                                             "SNAPSHOT")
        assert any(s.startswith("SET SESSION lock_wait_timeout") for s in opening)
        assert report[0] == status and after == ("UNLOCK TABLES",)
        assert d.snapshot_method == "flush-tables-with-read-lock" and d.snapshot_privileges == ("RELOAD",)


def test_the_status_table_of_each_lockless_flavour():
    maria = Dialect.from_version("10.11.19-MariaDB").snapshot_statements()[1][0]
    percona = Dialect.from_version("8.0.39-30", "Percona Server").snapshot_statements()[1][0]
    assert "information_schema.SESSION_STATUS" in maria and "@@gtid_binlog_pos" in maria
    assert "performance_schema.session_status" in percona and "@@global.gtid_executed" in percona


def test_reports_parse_into_points_with_their_method():
    maria = Dialect.from_version("10.11.19-MariaDB")
    p = maria.parse_snapshot_report([["binlog.000003", "1234", "0-1-77", "2026-03-08 05:00:00.000001"],
                                     ["binlog.000003", "1234", "", ""]])
    assert (p.file, p.pos, p.gtid, p.method) == ("binlog.000003", 1234, "0-1-77", "consistent-snapshot")
    moved = maria.parse_snapshot_report([["binlog.000003", "1234", "0-1-77", "t"], ["binlog.000003", "2000"]])
    assert moved.gtid is None  # the binlog moved past the snapshot: its GTID is unknown, not wrong
    mysql = Dialect.from_version("8.4.3")
    p = mysql.parse_snapshot_report([["binlog.000009", "77", "", "", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"],
                                     ["", "2026-03-08 05:00:00.000001"]])
    assert (p.file, p.pos, p.gtid, p.method) == ("binlog.000009", 77, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
                                                 "flush-tables-with-read-lock")


def test_client_script_lines_end_each_statement_and_mark_the_report():
    lines = snapshot_script_lines(Dialect.from_version("8.4.3"), lambda: "-- POS")
    assert lines[lines.index("-- POS") + 1] == "SHOW BINARY LOG STATUS;" and lines[-1] == "UNLOCK TABLES;"
    assert all(line.endswith(";") for line in lines if line != "-- POS")


@pytest.mark.parametrize("text, parsed", [("10.11.19-MariaDB-log", (10, 11, 19)), ("8.4.3", (8, 4, 3)),
                                          ("8.0", (8, 0, 0))])
def test_versions(text, parsed):
    assert parse_version(text) == parsed
    with pytest.raises(ValueError):
        parse_version("MariaDB")
