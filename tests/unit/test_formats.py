"""Each package format on its own: what it writes for a data set, full and incremental."""

from __future__ import annotations

import io

import pytest

from snapsync.schemas.catalog import dataset
from snapsync.schemas.control import Format
from snapsync.sinks.formats import get_format, registry

PATIENT = dataset("patient")


def test_every_format_is_registered_and_choosable_in_the_settings():
    assert set(registry()) == set(Format.__args__)
    with pytest.raises(ValueError, match="unknown package format 'xml'"):
        get_format("xml")


def _row(**values):
    row = {c.name: None for c in PATIENT.columns}
    row.update(values)
    return row


def test_dat_full_data_set_is_header_then_server_lines():
    fmt, out = get_format("dat"), io.BytesIO()
    assert fmt.file_name(PATIENT) == "patient.DAT"
    fmt.begin(PATIENT, out)
    fmt.write_rows(PATIENT, b"1\t2\n", out)
    fmt.end(PATIENT, out)
    assert out.getvalue() == ("\t".join(PATIENT.column_names) + "\n1\t2\n").encode()
    assert "CONCAT_WS('\\t'" in fmt.row_expr(PATIENT)


def test_dat_changes_have_the_op_column_upserts_escaped_and_deletes_by_key():
    fmt, out = get_format("dat"), io.BytesIO()
    fmt.begin(PATIENT, out, changes=True)
    fmt.write_upserts(PATIENT, [_row(id="7", customer_id="1", last_name="tab\there", city=None)], out)
    fmt.write_deletes(PATIENT, [{"id": 9}], out)
    header, upsert, delete = out.getvalue().decode().splitlines()
    assert header.split("\t")[:2] == ["_op", "id"]
    fields = upsert.split("\t")
    assert fields[0] == "U" and fields[1] == "7" and "tab\\there" in fields
    assert fields[1 + PATIENT.column_names.index("city")] == "\\N"
    assert delete.split("\t")[:2] == ["D", "9"] and set(delete.split("\t")[2:]) == {"\\N"}
    assert fmt.row_expr(PATIENT, changes=True).startswith("CONCAT('U\\t',")


def test_sql_package_is_one_file_with_statements_per_data_set():
    fmt, out = get_format("mysql"), io.BytesIO()
    assert fmt.file_name(PATIENT) == "snapshot.sql" == fmt.package_file
    fmt.start_package(out)
    fmt.begin(PATIENT, out)
    fmt.write_rows(PATIENT, b"(1,'a'),\n(2,'b'),\n", out)
    fmt.end(PATIENT, out)
    fmt.finish_package(out)
    text = out.getvalue().decode()
    assert "DROP TABLE IF EXISTS `patient`;" in text and "CREATE TABLE `patient`" in text
    assert "INSERT INTO `patient` VALUES (1,'a'),\n(2,'b');\n" in text
    assert text.rstrip().endswith("-- end of snapshot")


def test_sql_changes_are_replace_and_delete():
    fmt, out = get_format("mysql"), io.BytesIO()
    fmt.begin(PATIENT, out, changes=True)
    fmt.write_upserts(PATIENT, [_row(id="7", customer_id="1", last_name="O'Hara")], out)
    fmt.write_deletes(PATIENT, [{"id": 9}, {"id": 10}], out)
    fmt.end(PATIENT, out, changes=True)
    text = out.getvalue().decode()
    assert "CREATE TABLE IF NOT EXISTS `patient`" in text and "DROP TABLE" not in text
    # by column name: yesterday's table may hold the columns in another order, or one more
    names = ", ".join(f"`{c}`" for c in PATIENT.column_names)
    assert f"REPLACE INTO `patient` ({names}) VALUES (7,1," in text and "'O\\'Hara'" in text
    assert "DELETE FROM `patient` WHERE `id` IN (9,10);" in text


def test_only_customers_with_a_key_range_of_their_own_are_read_by_range():
    from snapsync.sinks.source_reader import Query, disjoint_ranges

    ranges = {1: (1, 100), 2: (101, 200), 3: (150, 160), 4: (300, 300)}
    assert disjoint_ranges(ranges) == {1: (1, 100), 4: (300, 300)}  # 2 and 3 overlap
    q = Query("k", "charge", "x", "`customer_id` = 1", "`id`", customer=1, pk="id")
    assert q.sql((1, 100)) == ("SELECT x FROM `charge` FORCE INDEX (PRIMARY) WHERE `id` BETWEEN 1 AND 100 "
                               "AND `customer_id` = 1 ORDER BY `id`;")
    assert q.sql() == "SELECT x FROM `charge` WHERE `customer_id` = 1 ORDER BY `id`;"


def test_sql_changes_of_customers_sent_in_full_replace_their_rows():
    fmt, out = get_format("mysql"), io.BytesIO()
    fmt.begin(PATIENT, out, changes=True)
    fmt.write_replaced(PATIENT, [3, 5], out)
    fmt.write_replaced(PATIENT, [], out)  # nobody in full: nothing
    text = out.getvalue().decode()
    assert text.count("DELETE FROM") == 1 and "DELETE FROM `patient` WHERE `customer_id` IN (3,5);" in text
    dat = io.BytesIO()
    get_format("dat").write_replaced(PATIENT, [3], dat)
    assert dat.getvalue() == b""  # a .DAT loader reads full_for_customers (loading.md)


def test_a_column_the_source_added_is_added_where_missing_in_mysql_and_mariadb():
    import dataclasses

    from snapsync.schemas.catalog import Column

    assert PATIENT.added_columns_ddl() == ""  # as the catalog has it
    live = dataclasses.replace(PATIENT, columns=(*PATIENT.columns, Column("note", "ENUM('a','b')")))
    sql = live.added_columns_ddl()
    assert "IF NOT EXISTS" not in sql  # MariaDB's only
    assert "TABLE_NAME = 'patient' AND COLUMN_NAME = 'note'" in sql and "PREPARE snapsync_ddl" in sql
    assert "ENUM(''a'',''b'') NULL" in sql  # the ALTER inside a string literal, its quotes doubled
