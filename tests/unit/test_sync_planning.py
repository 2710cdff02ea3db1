"""Data Sync's pure pieces: the command model, apply planning, the deltas' staging rows."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from snapsync.schemas.catalog import dataset
from snapsync.schemas.events import ChangeEvent, SourcePosition
from snapsync.schemas.messages import Heartbeat, SyncCommand
from snapsync.streams.deltas import delta_row
from snapsync.streams.sync_apply import plan_apply

CPT = dataset("cpt_code")


def _cmd(**kw):
    base = dict(command_id="binlog.000001:4:0>1:3", group_id=1, mode="override", table="cpt_code",
                source_customer=1, target_customer=3, values={"id": 4, "customer_id": 1, "code": "X"})
    base.update(kw)
    return SyncCommand(**base)


def test_sync_command_round_trips_and_refuses_bad_fields():
    cmd = _cmd()
    assert SyncCommand.from_json(cmd.to_json()) == cmd
    for bad in ({"mode": "merge"}, {"table": "nope"}, {"table": "patient"}, {"target_customer": 0}):
        with pytest.raises(ValidationError):
            _cmd(**bad)
    with pytest.raises(ValueError):
        SyncCommand.from_json(b'{"command_id": "x"}')


def test_plan_apply_create_only_never_modifies():
    new = {c: "v" for c in CPT.sync_columns}
    assert plan_apply(CPT, "create-only", new, None).outcome == "created"
    assert plan_apply(CPT, "create-only", new, None).columns == CPT.sync_columns
    assert plan_apply(CPT, "create-only", new, {**new, "description": "other"}).outcome == "exists"


def test_plan_apply_override_writes_only_changed_copied_columns():
    new = {c: "v" for c in CPT.sync_columns}
    existing = {**new, "description": "old", "situational_modifiers": "KEEP", "id": "99"}
    plan = plan_apply(CPT, "override", {**new, "situational_modifiers": "SRC"}, existing)
    assert plan.outcome == "overridden" and plan.columns == ("description",)
    assert plan_apply(CPT, "override", new, dict(new)).outcome == "unchanged"
    assert "situational_modifiers" not in CPT.sync_columns and "id" not in CPT.sync_columns


def _event(op, table="patient", ts_ms=0, **image):
    img = {"id": 5, "customer_id": 2, **image}
    return ChangeEvent(op=op, db="p", table=table, before=img if op == "d" else None,
                       after=None if op == "d" else img, position=SourcePosition("binlog.000003", 700, 2),
                       source_ts_ms=ts_ms, ts_ms=0)


def test_delta_row_stages_changes_of_incremental_data_sets_only():
    # 2026-03-08 12:00 New York (EDT) belongs to the window closed at 2026-03-09 00:00 New York
    noon = int(dt.datetime(2026, 3, 8, 16, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    row = delta_row(_event("u", ts_ms=noon, city="Albany"))
    customer, table, pk, window, op, image, order, ts = row
    assert (customer, table, pk, op, ts) == (2, "patient", '{"id":5}', "U", noon)
    assert window == dt.datetime(2026, 3, 9, 4, 0)  # New York midnight in UTC (EDT)
    assert order == SourcePosition("binlog.000003", 700, 2).order() and '"Albany"' in image
    deleted = delta_row(_event("d", ts_ms=noon))
    assert deleted[4] == "D" and deleted[5] is None
    assert delta_row(_event("r")) is None  # snapshot reads are state, not changes
    assert delta_row(_event("u", table="cpt_code")) is None  # not an incremental data set
    with pytest.raises(KeyError):
        delta_row(ChangeEvent(op="c", db="p", table="patient", before=None, after={"id": 1},
                              position=SourcePosition("binlog.000001", 4), source_ts_ms=0, ts_ms=0))


def test_binlog_order_follows_file_then_position_then_row():
    a, b, c = SourcePosition("binlog.000009", 999_999, 7), SourcePosition("binlog.000010", 4), \
        SourcePosition("binlog.000010", 4, 1)
    assert a.order() < b.order() < c.order()


def test_heartbeat_reads_debezium_and_embedded_forms():
    assert Heartbeat.model_validate_json(b'{"ts_ms": 5}').position() is None
    hb = Heartbeat.at(5, SourcePosition("binlog.000002", 300), 1_000, {"t": {"0": 3}})
    back = Heartbeat.model_validate_json(hb.to_json())
    assert back.position().order() == SourcePosition("binlog.000002", 300).order() and back.offsets == {"t": {"0": 3}}
