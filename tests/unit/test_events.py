"""The envelope codec: bad inputs give their exact error; encodings round-trip."""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from snapsync.schemas.errors import DataError
from snapsync.schemas.events import ChangeEvent, SourcePosition, encode_value, to_mysql_text
from snapsync.schemas.messages import row_digest
from snapsync.streams.sync_apply import plan_commands

BAD = Path(__file__).parent.parent / "fixtures" / "bad_events"
EXPECTED = json.loads((BAD / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_event_fixture_gives_its_error(name):
    with pytest.raises(DataError) as e:
        ChangeEvent.from_debezium((BAD / name).read_bytes())
    assert str(e.value).startswith(EXPECTED[name])
    assert "hostile" not in str(e.value)  # errors never quote row values


def test_envelope_round_trip_and_schema_wrapped_form():
    ev = ChangeEvent(op="u", db="practice", table="cpt_code", before={"id": 1}, after={"id": 1, "x": "a\tb"},
                     position=SourcePosition("binlog.000002", 120, 3, "0-1-9"), source_ts_ms=1000, ts_ms=2000)
    back = ChangeEvent.from_debezium(ev.to_json())
    assert back == ev
    wrapped = json.dumps({"schema": {}, "payload": ev.to_debezium()})
    assert ChangeEvent.from_debezium(wrapped) == ev
    assert back.position.key() == (2, 120, 3)


@pytest.mark.parametrize(
    "value, kw, column_type, text",
    [
        (dt.datetime(2026, 3, 8, 2, 30, 0, 1), {"fsp": 6}, "DATETIME(6)", "2026-03-08 02:30:00.000001"),
        (dt.datetime(1970, 1, 1), {"fsp": 6}, "DATETIME(6)", "1970-01-01 00:00:00.000000"),
        (dt.datetime(2026, 1, 2, 3, 4, 5), {"fsp": 0}, "DATETIME", "2026-01-02 03:04:05"),
        (dt.date(1900, 1, 1), {}, "DATE", "1900-01-01"),
        (Decimal("-0.01"), {"scale": 2}, "DECIMAL(12,2)", "-0.01"),
        (Decimal("12.3"), {"scale": 2}, "DECIMAL(12,2)", "12.30"),
        ("emoji 🩺\x00", {}, "TEXT", "emoji 🩺\x00"),
        (7, {}, "INT", "7"),
    ],
)
def test_encodings_round_trip_to_mysql_text(value, kw, column_type, text):
    assert to_mysql_text(encode_value(value, **kw), column_type) == text


def test_date_and_datetime_are_debezium_numbers():
    assert encode_value(dt.date(1970, 1, 2)) == 1
    assert encode_value(dt.datetime(1970, 1, 1, 0, 0, 1), fsp=6) == 1_000_000
    assert encode_value(dt.datetime(1970, 1, 1, 0, 0, 1), fsp=3) == 1000


def test_plan_commands_fans_out_inserts_and_updates_only():
    pos = SourcePosition("binlog.000001", 500, 0)
    after = {"id": 4, "customer_id": 1, "code": "X"}
    routes = [(1, 3, "override"), (1, 5, "override")]
    for op in ("c", "u"):
        ev = ChangeEvent(op=op, db="p", table="cpt_code", before=None, after=after, position=pos, source_ts_ms=0,
                         ts_ms=0)
        cmds = plan_commands(ev, routes)
        assert [c.target_customer for c in cmds] == [3, 5]
        assert len({c.command_id for c in cmds}) == 2 and all(c.values == after for c in cmds)
    for op, before, aft in (("d", after, None), ("r", None, after)):
        ev = ChangeEvent(op=op, db="p", table="cpt_code", before=before, after=aft, position=pos, source_ts_ms=0,
                         ts_ms=0)
        assert plan_commands(ev, routes) == []
    assert row_digest({"a": 1, "b": "x"}) == row_digest({"b": "x", "a": 1})


def test_dead_letter_reasons_never_quote_values():
    from snapsync.connectors.failures import safe_reason

    try:
        int("Jane Doe 123-45-6789")
    except ValueError as exc:
        assert "Jane" not in safe_reason(exc) and safe_reason(exc).startswith("ValueError")
    assert safe_reason(DataError("unknown op 'x'")) == "unknown op 'x'"
