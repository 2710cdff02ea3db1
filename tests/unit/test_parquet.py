"""The Parquet format on its own, and the typed schema every package carries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snapsync.schemas.catalog import DATASETS, Column, dataset
from snapsync.schemas.control import SnapshotSettings
from snapsync.schemas.types import canonical_type, parse_type
from snapsync.sinks.formats import get_format, registry
from snapsync.sinks.formats.dat import escape_text, unescape_field
from snapsync.sinks.formats.parquet import arrow_schema, arrow_type, decode_escapes

PATIENT = dataset("patient")
#: Values whose escaping trips naive decoders: chained str.replace turns the second into TAB/LF.
HARD = ["tab\there", "C:\\new\\temp", "C:\\\\new\\\\temp", "\\N", "\\", "\\\\t", "a\t\n\r\0\\ b", "", None,
        "emoji 🩺😀", "\\0\\n", "end\\"]


def test_catalog_types_are_canonical_and_server_spellings_map_to_them():
    for ds in DATASETS:
        for c in ds.columns:
            assert canonical_type(c.type) == c.type, (ds.table, c.name)
    assert canonical_type("bigint(20) unsigned") == "BIGINT UNSIGNED"
    assert canonical_type("int(11)") == "INT" and canonical_type("tinyint(1)") == "TINYINT(1)"
    assert canonical_type("tinyint(3) unsigned") == "TINYINT UNSIGNED"
    assert canonical_type("enum('rendering','Billing')") == "ENUM('rendering','Billing')"
    assert canonical_type("decimal(12,2)") == "DECIMAL(12,2)" and canonical_type("datetime(6)") == "DATETIME(6)"
    assert parse_type("DECIMAL(12,2)").precision_scale() == (12, 2) and parse_type("DECIMAL").precision_scale() == (10, 0)
    assert parse_type("BIGINT UNSIGNED").unsigned and not parse_type("INT").unsigned


def test_arrow_types_are_exact():
    assert arrow_type("DECIMAL(12,2)") == pa.decimal128(12, 2)
    assert arrow_type("DECIMAL(65,30)") == pa.decimal256(65, 30)
    assert arrow_type("DATE") == pa.date32()
    assert arrow_type("DATETIME(6)") == arrow_type("TIMESTAMP") == pa.timestamp("us")
    assert arrow_type("VARCHAR(10)") == arrow_type("TEXT") == arrow_type("CHAR(9)") == pa.string()
    assert arrow_type("ENUM('a','b')") == pa.string()
    assert arrow_type("BLOB") == arrow_type("VARBINARY(16)") == pa.binary()
    assert arrow_type("BIGINT UNSIGNED") == pa.uint64() and arrow_type("INT") == pa.int32()
    assert arrow_type("TINYINT(1)") == pa.int8() and arrow_type("SMALLINT UNSIGNED") == pa.uint16()
    schema = arrow_schema(PATIENT)
    assert schema.field("zip").type == pa.string() and schema.field("balance").type == pa.decimal128(12, 2)
    assert not schema.field("id").nullable and schema.field("notes").nullable
    assert schema.field("balance").metadata == {b"mysql_type": b"DECIMAL(12,2)"}
    changes = arrow_schema(PATIENT, changes=True)
    assert changes.names[0] == "_op" and not changes.field("id").nullable and changes.field("last_name").nullable


def test_escapes_are_decoded_in_one_step_exactly_as_load_data_reads_them():
    escaped = pa.array([None if v is None else escape_text(v) for v in HARD])
    assert decode_escapes(escaped).to_pylist() == HARD
    assert [unescape_field(escape_text(v)) for v in HARD if v is not None] == [v for v in HARD if v is not None]


def _row(**values):
    row = {c.name: None for c in PATIENT.columns}
    row.update(values)
    return row


def _full_line(i: int, notes: str | None) -> bytes:
    values = [str(i), "1", "A-1", "Ann", None, "Lee", "2000-02-29", "F", "012345678", None, None, None, None,
              "02134", None, None, "-9999999999.99", notes, "2026-03-08 02:30:00.000001", "1970-01-01 00:00:00.000000"]
    assert len(values) == len(PATIENT.columns)
    return ("\t".join("\\N" if v is None else escape_text(v) for v in values) + "\n").encode()


def test_parquet_full_data_set_has_declared_types_and_exact_values():
    fmt, out = get_format("parquet"), io.BytesIO()
    assert fmt.file_name(PATIENT) == "patient.parquet" and fmt.package_file is None
    fmt.begin(PATIENT, out)
    fmt.write_rows(PATIENT, b"".join(_full_line(i, v) for i, v in enumerate(HARD, 1)), out)
    fmt.end(PATIENT, out)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema.equals(arrow_schema(PATIENT))
    rows = table.to_pylist()
    assert [r["notes"] for r in rows] == HARD  # NULL, '' and the text \N all distinct
    assert rows[0]["zip"] == "02134" and rows[0]["ssn"] == "012345678"  # leading zeros kept
    assert rows[0]["balance"] == Decimal("-9999999999.99") and rows[0]["date_of_birth"] == dt.date(2000, 2, 29)
    assert rows[0]["created_at"] == dt.datetime(2026, 3, 8, 2, 30, 0, 1) and rows[0]["id"] == 1


def test_parquet_changes_have_op_upserts_and_deletes():
    fmt, out = get_format("parquet"), io.BytesIO()
    fmt.begin(PATIENT, out, changes=True)
    fmt.write_rows(PATIENT, b"U\t" + _full_line(5, "full row"), out)
    fmt.write_upserts(PATIENT, [_row(id="7", customer_id="1", account_number="A", first_name="B", last_name="C\\new",
                                     date_of_birth="1900-01-01", sex="M", balance="0.01", notes="",
                                     created_at="2026-11-01 01:30:00.999999", updated_at="2026-11-01 01:30:00.999999")],
                      out)
    fmt.write_deletes(PATIENT, [{"id": 9}], out)
    fmt.end(PATIENT, out, changes=True)
    rows = pq.read_table(io.BytesIO(out.getvalue())).to_pylist()
    assert [(r["_op"], r["id"]) for r in rows] == [("U", 5), ("U", 7), ("D", 9)]
    assert rows[1]["last_name"] == "C\\new" and rows[1]["notes"] == "" and rows[1]["balance"] == Decimal("0.01")
    assert rows[1]["created_at"] == dt.datetime(2026, 11, 1, 1, 30, 0, 999999)
    assert {k for k, v in rows[2].items() if v is not None} == {"_op", "id"}


def test_binary_columns_are_bytes_and_empty_data_sets_still_have_their_schema():
    ds = dataclasses.replace(PATIENT, columns=(*PATIENT.columns[:2], Column("photo", "BLOB")))
    fmt, out = get_format("parquet"), io.BytesIO()
    fmt.begin(ds, out, changes=True)
    fmt.write_upserts(ds, [{"id": "1", "customer_id": "1", "photo": b"\x00\t\n\xff".decode("utf-8", "surrogateescape")},
                           {"id": "2", "customer_id": "1", "photo": None}], out)
    fmt.write_rows(ds, b"U\t3\t1\t00FF0A\n", out)
    fmt.end(ds, out, changes=True)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema.field("photo").type == pa.binary()
    assert table.column("photo").to_pylist() == [b"\x00\t\n\xff", None, b"\x00\xff\n"]
    empty = io.BytesIO()
    fmt.begin(PATIENT, empty)
    fmt.end(PATIENT, empty)
    assert pq.read_table(io.BytesIO(empty.getvalue())).schema.equals(arrow_schema(PATIENT))


def test_a_bad_value_names_the_column_never_the_value():
    from snapsync.schemas.errors import DataError

    fmt = get_format("parquet")
    fmt.begin(PATIENT, io.BytesIO())
    line = _full_line(1, None).replace(b"2000-02-29", b"secret-dob")
    with pytest.raises(DataError, match="column date_of_birth") as e:
        fmt.write_rows(PATIENT, line, io.BytesIO())
    assert "secret" not in str(e.value)


def test_parquet_can_be_chosen_like_the_others():
    assert registry()["parquet"].label.startswith("Parquet")
    assert SnapshotSettings(account_id=1, customers=(1,), format="parquet").format == "parquet"


def test_every_format_writes_the_same_typed_schema_into_the_manifest(tmp_path):
    from snapsync.sinks.package import DDL_FILE, PackageWriter

    for name in registry():
        w = PackageWriter(tmp_path / name, "customer-1", name, [1])
        w.begin(PATIENT)
        w.end(PATIENT)
        manifest = w.finish({"kind": "full"})
        assert manifest["ddl"] == DDL_FILE and DDL_FILE in {f["file"] for f in manifest["files"]}
        (entry,) = manifest["datasets"]
        assert entry["columns"][0] == {"name": "id", "type": "BIGINT UNSIGNED", "nullable": False, "primary_key": True}
        assert [c["name"] for c in entry["columns"]] == list(PATIENT.column_names)
        ddl = (tmp_path / name / DDL_FILE).read_text()
        assert "CREATE TABLE IF NOT EXISTS `patient`" in ddl and "FOREIGN KEY" not in ddl
