"""The project's decoder on events recorded from the real Debezium connectors.

``tests/fixtures/debezium/`` holds what Debezium 3.6 ``MariaDbConnector`` and Debezium 3.0.7
``MySqlConnector`` wrote to Kafka for a seeded practice database (the scripts that made the
changes are beside them). Every change event of a catalog table goes through
``streams.decode.decode_change`` (what the workers call) without error, and the values of each
column type come out as the contract says, down to the MySQL text a package is written with.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from snapsync.schemas.catalog import dataset
from snapsync.schemas.events import ChangeEvent, image_texts, text_decoder
from snapsync.streams.decode import decode_change

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"
V36 = FIXTURES / "debezium-3.6-mariadbconnector-events.jsonl.gz"
V307 = FIXTURES / "debezium-3.0.7-mysqlconnector-on-mariadb-sample.jsonl"
_EPOCH = dt.datetime(1970, 1, 1)


def _records(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _raw(record: dict, part: str) -> bytes | None:
    """The bytes as Debezium wrote them when recorded (3.6), else compact JSON of the value."""
    if f"{part}_raw" in record:
        raw = record[f"{part}_raw"]
        return None if raw is None else raw.encode("utf-8")
    value = record[part]
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _is_change(record: dict) -> bool:
    """A change event of a catalog table (not a tombstone, heartbeat, transaction record or the
    schema history; the heartbeat table is not a data set)."""
    parts = record["topic"].split(".")
    return (len(parts) == 3 and parts[2] not in ("snapsync_heartbeat",) and isinstance(record["value"], dict)
            and "op" in record["value"])


def _decoded(path: Path) -> list[tuple[dict, ChangeEvent]]:
    out = []
    for record in _records(path):
        if _is_change(record):
            event, ds = decode_change(record["topic"], _raw(record, "key"), _raw(record, "value"))
            assert ds.table == event.table
            out.append((record, event))
    return out


@pytest.fixture(scope="module")
def v36() -> list[tuple[dict, ChangeEvent]]:
    return _decoded(V36)


def _micros(text: str) -> int:
    d = dt.datetime.fromisoformat(text) - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _find(events, table: str, key: int, op: str) -> list[ChangeEvent]:
    return [e for _r, e in events if e.table == table and e.row.get("id") == key and e.op == op]


def test_every_recorded_change_decodes(v36):
    counts = {"r": 0, "c": 0, "u": 0, "d": 0}
    for _record, event in v36:
        counts[event.op] += 1
    assert counts["r"] == 2250 and counts["c"] >= 2 and counts["u"] >= 7 and counts["d"] >= 1
    tables = {e.table for _r, e in v36}
    assert len(tables) == 32  # every data set of the catalog
    sample = _decoded(V307)
    assert {e.op for _r, e in sample} == {"r", "c", "u", "d"}
    for record in _records(V307):
        if record["value"] is None:  # the tombstone after the delete: not a change, nothing to decode
            assert record["topic"] == "dbz.practice.appt_type" and record["key"] == {"id": 101}


def test_source_fields_as_recorded(v36):
    snap = [e for _r, e in v36 if e.op == "r"]
    assert {e.server_id for e in snap} == {0} and {e.position.gtid for e in snap} == {None}
    assert len({(e.position.file, e.position.pos, e.position.row) for e in snap}) == 1  # one point for all
    assert all(e.source_ts_ms % 1000 == 0 for e in snap)  # whole seconds
    markers = [e.snapshot for e in snap]
    # "last" fell on the snapsync_heartbeat row: the include list goes on after the catalog
    assert markers.count("first") == 1 and markers.count("last") == 0
    assert {"first_in_data_collection", "last_in_data_collection", "true"} <= set(markers)
    streamed = [(r, e) for r, e in v36 if e.op != "r"]
    assert {e.server_id for _r, e in streamed} == {1}
    for record, event in streamed:
        source = record["value"]["source"]
        assert source["ts_us"] == event.source_ts_ms * 1000 and source["ts_ns"] == event.source_ts_ms * 10**6
        assert record["value"]["ts_us"] // 1000 == event.ts_ms
        assert event.ts_ns == record["value"]["ts_ns"]
        assert event.transaction and event.transaction["id"] == event.position.gtid
        # written back out, the envelope has Debezium's fields and values (only who made it differs)
        again = event.to_debezium()
        assert again["ts_ns"] == record["value"]["ts_ns"]
        assert {k: v for k, v in again["source"].items() if k not in ("version", "connector")} == {
            k: v for k, v in source.items() if k not in ("version", "connector")}


def test_extra_types(v36):
    one = _find(v36, "appt_type", 1, "r")[0].after
    assert one["t_ts6"] == "2024-03-10T07:30:00.123456Z" and one["t_ts0"] == "2024-03-10T07:30:01Z"
    assert one["t_dt0"] == _micros("2024-03-10 02:30:00") // 1000
    assert one["t_dt3"] == _micros("2024-03-10 02:30:00.123") // 1000
    assert one["t_time6"] == -((838 * 3600 + 59 * 60 + 58) * 1_000_000 + 999_999)
    assert one["t_blob"] == "AP8KCeKckw==" and one["t_vbin"] == "3q2+7w=="
    assert one["t_flag"] == 1 and one["t_dec"] == "-0.000001" and one["t_float"] == 0.1 and one["t_year"] == 2024
    assert one["t_big"] == -1  # BIGINT UNSIGNED max under bigint.unsigned.handling.mode=long (docs/capture.md)
    assert json.loads(one["t_json"]) == {"a": [1, 2.5, "x\ty"], "b": None}
    two = _find(v36, "appt_type", 2, "r")[0].after
    assert two["t_dt0"] == -1000 and two["t_dt3"] == _micros("1000-01-01 00:00:00") // 1000
    assert two["t_ts0"] == "1970-01-01T00:00:01Z" and two["t_time6"] == 0
    assert two["t_blob"] == "" and two["t_vbin"] == "" and two["t_flag"] == 0 and two["t_dec"] == "0.000000"
    three = _find(v36, "appt_type", 3, "r")[0].after
    assert three["t_dt0"] == _micros("9999-12-31 23:59:59") // 1000
    assert three["t_ts6"] == "2038-01-19T03:14:07.999999Z" and three["t_flag"] == 2 and three["t_big"] == 0
    # as MySQL prints them (what a package carries)
    assert text_decoder("DATETIME")(one["t_dt0"]) == "2024-03-10 02:30:00"
    assert text_decoder("DATETIME(3)")(one["t_dt3"]) == "2024-03-10 02:30:00.123"
    assert text_decoder("DATETIME(3)")(two["t_dt3"]) == "1000-01-01 00:00:00.000"
    assert text_decoder("DATETIME")(three["t_dt0"]) == "9999-12-31 23:59:59"
    assert text_decoder("TIMESTAMP(6)")(one["t_ts6"]) == "2024-03-10 07:30:00.123456"
    assert text_decoder("TIMESTAMP")(two["t_ts0"]) == "1970-01-01 00:00:01"
    assert text_decoder("BLOB")(two["t_blob"]) == ""


def test_catalog_column_types_as_mysql_text(v36):
    note = _find(v36, "patient_note", 1001, "c")[0]
    assert note.after["author"] == "tab\there"
    assert note.after["body"] == "line1\nline2\r\nq\"uote' back\\slash emoji \U0001F600 \u00fc\x00after-nul"
    assert note.after["note_date"] == _micros("2026-03-08 02:30:00.000001")
    assert note.source_ts_ms == 1795521600000  # SET TIMESTAMP of the recorded transaction
    texts = image_texts(dataset("patient_note"), note.after)
    assert texts["note_date"] == "2026-03-08 02:30:00.000001" and texts["created_at"] == "2026-11-24 12:00:00.500000"
    fee = _find(v36, "fee_schedule", 1, "u")[0]
    assert fee.after["amount"] == "-0.01" and fee.after["allowed_amount"] is None and fee.after["effective_date"] == -1
    assert fee.before["allowed_amount"] is not None
    texts = image_texts(dataset("fee_schedule"), fee.after)
    assert texts["effective_date"] == "1969-12-31" and texts["amount"] == "-0.01" and texts["allowed_amount"] is None
    notes = {e.after["id"]: e.after["notes"] for e in (x for _r, x in v36) if e.table == "referring_provider"
             and e.op == "u"}
    # '' vs the two characters \N (row 2 was NULL already: its UPDATE changed nothing, no event)
    assert notes == {1: "", 3: "\\N"}
    assert _find(v36, "referring_provider", 2, "r")[0].after["notes"] is None
    cpt = _find(v36, "cpt_code", 2, "u")[0].after
    assert cpt["default_charge"] == "12.30" and cpt["default_units"] == "0.000" and cpt["active"] == 0
    assert image_texts(dataset("cpt_code"), cpt)["active"] == "0"
    assert _find(v36, "provider", 1, "u")[0].after["provider_type"] == "billing"
    icd = [e for _r, e in v36 if e.table == "icd_code" and e.op == "u"]
    assert len(icd) == 3 and len({e.position.pos for e in icd}) == 1 and sorted(e.position.row for e in icd) == [0, 1, 2]


def test_insert_update_delete_and_alter(v36):
    assert _find(v36, "appt_type", 101, "c")[0].after["t_big"] == -1
    upd = _find(v36, "appt_type", 101, "u")[0]
    assert upd.before["t_blob"] == "AP8KCQ==" and upd.after["t_blob"] is None and upd.after["t_ts6"] is None
    gone = _find(v36, "appt_type", 101, "d")[0]
    assert gone.after is None and gone.before["id"] == 101
    added = _find(v36, "appt_type", 102, "c")[0].after
    assert added["t_added"] == "new col"


def test_3_0_7_sample(v36):
    sample = {(e.table, e.op): (r, e) for r, e in _decoded(V307)}
    record, first = sample[("patient", "r")]
    assert first.snapshot == "first_in_data_collection" and first.server_id == 0 and first.position.gtid is None
    assert first.after["date_of_birth"] == -25567 and first.after["address2"].endswith("\\")
    _r, note = sample[("patient_note", "c")]
    assert note.server_id == 1 and note.transaction is None and note.position.gtid is None  # 3.0.7 on MariaDB
    assert note.after["body"] == _find(v36, "patient_note", 1001, "c")[0].after["body"]
    _r, fee = sample[("fee_schedule", "u")]
    assert fee.after["amount"] == "-0.01" and fee.after["effective_date"] == -1
    _r, gone = sample[("appt_type", "d")]
    assert gone.before["t_ts0"] == "2026-11-24T10:11:12Z" and gone.before["t_time6"] == 86_399_500_000
    assert gone.before["t_big"] == -1 and gone.before["t_vbin"] == ""
