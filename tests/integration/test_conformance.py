"""The embedded capture emits what Debezium emits (issue 12, part 4).

Both captures run on the same test database at once, each with its own topic prefix: the
embedded capture (``connectors/binlog_capture.py``) and the real Debezium 3.0.7
``MySqlConnector`` on the real Kafka Connect worker (the ``connect`` fixture), deployed with
the project's rendered config. Both snapshot the same rows (every column type of the catalog,
plus the extra types of ``tests/fixtures/debezium/debezium-3.6-prep-types.sql`` on
``appt_type``), then stream the same changes (the recorded live-change script, a multi-row
multi-table transaction, NULL vs '' vs the literal ``\\N``, ALTER TABLE while streaming). The
events are compared field by field: topic, partition, key, op, before, after and every
``source`` field, normalising only the differences documented in ``docs/capture.md``.

Debezium 3.0.7's ``MySqlConnector`` on MariaDB has known limits (FIELD-NOTES); they are
asserted here, not hidden: ``transaction`` is always null and no transaction topic appears,
``source.gtid`` is null (it does not read MariaDB GTIDs). The connector is never restarted in
this test (after a restart it loses the first row after its stored position).

Assertion messages name topics, keys and field paths, never row values.
"""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from snapsync.connectors.debezium import render
from snapsync.connectors.mysql import connect as db_connect
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.events import ChangeEvent
from snapsync.schemas import VERSION
from snapsync.schemas.topics import change_topic, heartbeat_topic, transaction_topic
from snapsync.seed import seed
from streams.decode import decode_change
from tests.conftest import new_database, settings_for
from tests.integration.capture_helpers import CaptureThread, wait_caught_up

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"
TABLES = [d.table for d in DATASETS]
BIGINT_MAX = 2**63 - 1
NULL_AS_NULL = ("value.converter.replace.null.with.default", "false")


# --- reading topics ----------------------------------------------------------------------
def read_all(bootstrap: str, topics: list[str], *, quiet: float = 1.5, timeout: float = 60.0) -> dict[str, list]:
    """Every message of ``topics`` as ``(key bytes, value bytes, partition, offset)``, per topic in
    (partition, offset) order. Reads until ``quiet`` seconds pass without a message and every
    partition reached the end the broker reported (Tansu's reported end can lag: FIELD-NOTES)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"conformance-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})
    try:
        meta = c.list_topics(timeout=10).topics
        parts, ends = [], {}
        for t in topics:
            if t in meta and meta[t].error is None:
                for p in meta[t].partitions:
                    parts.append(TopicPartition(t, p, OFFSET_BEGINNING))
                    ends[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        out: dict[str, list] = {t: [] for t in topics}
        if not parts:
            return out
        c.assign(parts)
        seen: dict[tuple[str, int], int] = {}
        last_msg = time.monotonic()
        deadline = last_msg + timeout
        while time.monotonic() < deadline:
            msgs = c.consume(10000, 0.3)
            for m in msgs:
                if m.error():
                    continue
                out[m.topic()].append((m.key(), m.value(), m.partition(), m.offset()))
                seen[(m.topic(), m.partition())] = m.offset() + 1
            if msgs:
                last_msg = time.monotonic()
            elif time.monotonic() - last_msg >= quiet and all(seen.get(k, 0) >= e for k, e in ends.items()):
                break
        for t in out:
            out[t].sort(key=lambda m: (m[2], m[3]))
        return out
    finally:
        c.close()


def _json(raw: bytes | None) -> Any:
    import json

    return None if raw is None else json.loads(raw)


# --- running the statements --------------------------------------------------------------
def sql_statements(path: Path) -> list[str]:
    """The statements of a recorded script: ``--`` comment lines dropped, ``;`` at a line's end
    ends a statement."""
    out, cur = [], []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("--") or not line.strip():
            continue
        cur.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(cur).rstrip().rstrip(";"))
            cur = []
    assert not cur, "a statement without its ';'"
    return out


def run_sql(settings, statements: list[str]) -> None:
    with db_connect(settings.db, autocommit=True) as conn:
        cur = conn.cursor()
        for st in statements:
            cur.execute(st)


#: Changes made while both captures stream, after the recorded script.
EXTRA_CHANGES = [
    # NULL vs '' vs the two characters \N, on insert (the recorded script does the updates)
    "INSERT INTO referring_provider (id, customer_id, npi, first_name, last_name, notes, created_at, updated_at) "
    "VALUES (901, 1, '1234567890', 'Empty', 'Notes', '', NOW(6), NOW(6)), "
    "(902, 1, '1234567891', 'Null', 'Notes', NULL, NOW(6), NOW(6)), "
    "(903, 1, '1234567892', 'Backslash', 'N', '\\\\N', NOW(6), NOW(6))",
    # one transaction, several statements, three tables, several rows per rows event
    "BEGIN",
    "UPDATE patient SET notes = CONCAT('txn ', id), balance = 0.50 WHERE id <= 5",
    "DELETE FROM activity WHERE id IN (1, 2)",
    "INSERT INTO activity (customer_id, entity, entity_id, action, username, detail, occurred_at, created_at, "
    "updated_at) VALUES (1, 'patient', 1, 'view', 'u1', NULL, NOW(6), NOW(6), NOW(6)), "
    "(2, 'patient', 2, 'edit', 'u2', 'x\\ty', NOW(6), NOW(6), NOW(6))",
    "UPDATE cpt_code SET default_charge = 0.00, situational_modifiers = NULL WHERE id IN (1, 3)",
    "COMMIT",
    # a column dropped while streaming: later rows have the new shape
    "ALTER TABLE appt_type DROP COLUMN t_vbin",
    "UPDATE appt_type SET t_added = NULL, t_year = 2001 WHERE id = 102",
    # the last change: when both captures have it, they have everything before it
    "UPDATE practice SET phone = 'sentinel' WHERE id = 1",
]


def _wait_for(what: str, check, timeout: float = 120.0, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


# --- the recording -----------------------------------------------------------------------
class Recording:
    """What both captures wrote, read back from the broker."""

    def __init__(self, db: str, emb_prefix: str, dbz_prefix: str, emb: dict, dbz: dict, snapshot_rows: int,
                 binlog_rows_events: dict) -> None:
        self.db, self.emb_prefix, self.dbz_prefix = db, emb_prefix, dbz_prefix
        self.emb, self.dbz = emb, dbz
        self.snapshot_rows = snapshot_rows
        self.binlog_rows_events = binlog_rows_events

    def change(self, which: str, table: str) -> list:
        prefix = self.emb_prefix if which == "emb" else self.dbz_prefix
        return (self.emb if which == "emb" else self.dbz)[change_topic(prefix, self.db, table)]


def _count_rows(settings) -> int:
    with db_connect(settings.db) as conn:
        cur = conn.cursor()
        total = 0
        for t in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            total += cur.fetchone()[0]
        return total


def _rows_events(settings) -> dict[tuple[str, int], tuple[int, int]]:
    """Every rows event of the binlog: (file, start) -> (end, server id), from the server itself."""
    out = {}
    with db_connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("SHOW BINARY LOGS")
        for (file, *_rest) in cur.fetchall():
            cur.execute(f"SHOW BINLOG EVENTS IN '{file}'")
            for _log, pos, kind, server_id, end, _info in cur.fetchall():
                if kind.endswith("_rows_v1") or kind.endswith("_rows"):
                    out[(file, int(pos))] = (int(end), int(server_id))
    return out


@pytest.fixture(scope="module")
def recording(base_settings, connect):
    name = f"conf{uuid.uuid4().hex[:8]}"
    s = settings_for(base_settings, name)
    new_database(s)
    with db_connect(s.db) as conn:
        seed(conn, customers=3, scale=0.005, seed_value=7)
    run_sql(s, sql_statements(FIXTURES / "debezium-3.6-prep-types.sql"))
    snapshot_rows = _count_rows(s)
    emb_s = settings_for(base_settings, name, topic_prefix=f"emb{name}")
    dbz_s = settings_for(base_settings, name, topic_prefix=f"dbz{name}")
    emb_topics = [change_topic(emb_s.topic_prefix, name, t) for t in TABLES]
    dbz_topics = [change_topic(dbz_s.topic_prefix, name, t) for t in TABLES]
    side = [heartbeat_topic(p) for p in (emb_s.topic_prefix, dbz_s.topic_prefix)] + [
        transaction_topic(p) for p in (emb_s.topic_prefix, dbz_s.topic_prefix)]
    connector = f"dbz-{name}"
    config = render(dbz_s, name=connector, server_id=5400 + uuid.uuid4().int % 1000)["config"]
    # Kafka Connect's JsonConverter writes a column's DEFAULT in place of a NULL unless told not
    # to (replace.null.with.default, true by default in Connect 3.9): NULL in a column declared
    # DEFAULT 'x' would arrive as "x". The rendered config carries this (connectors/debezium.py
    # FIXED); test_json_converter_null_with_default shows it on the rendered config as it is.
    assert config.get(NULL_AS_NULL[0]) == NULL_AS_NULL[1]
    with CaptureThread(emb_s, f"emb-{name}"):
        r = requests.put(f"{connect.url}/connectors/{connector}/config", json=config, timeout=30)
        assert r.status_code in (200, 201), r.text[:500]
        try:
            def dbz_snapshot_done():
                got = read_all(base_settings.kafka_bootstrap, dbz_topics, quiet=0.5)
                return sum(1 for msgs in got.values() for m in msgs if m[1] and b'"op":"r"' in m[1]) >= snapshot_rows
            _wait_for("Debezium's snapshot", dbz_snapshot_done, timeout=180, every=2)
            # Both snapshots are complete: the same rows. Now the same changes for both.
            run_sql(s, sql_statements(FIXTURES / "debezium-3.6-live-changes.sql") + EXTRA_CHANGES)
            wait_caught_up(emb_s, f"emb-{name}")
            sentinel = change_topic(dbz_s.topic_prefix, name, "practice")

            def dbz_has_sentinel():
                msgs = read_all(base_settings.kafka_bootstrap, [sentinel], quiet=0.5)[sentinel]
                return any(m[1] and b'"sentinel"' in m[1] and b'"op":"u"' in m[1] for m in msgs)
            _wait_for("Debezium streaming the last change", dbz_has_sentinel, timeout=120, every=1)
            time.sleep(1.5)  # heartbeats of both, after the last change
        finally:
            status = requests.get(f"{connect.url}/connectors/{connector}/status", timeout=10)
            requests.delete(f"{connect.url}/connectors/{connector}", timeout=30)
    assert status.ok and status.json()["tasks"][0]["state"] == "RUNNING", "the Debezium task failed"
    everything = read_all(base_settings.kafka_bootstrap,
                          emb_topics + dbz_topics + side + [change_topic(p, s.signal_schema, "snapsync_heartbeat")
                                                            for p in (emb_s.topic_prefix, dbz_s.topic_prefix)])
    emb = {t: v for t, v in everything.items() if t.startswith(f"emb{name}") or t.endswith(f".emb{name}")}
    dbz = {t: v for t, v in everything.items() if t.startswith(f"dbz{name}") or t.endswith(f".dbz{name}")}
    return Recording(name, emb_s.topic_prefix, dbz_s.topic_prefix, emb, dbz, snapshot_rows, _rows_events(s))


# --- normalising ---------------------------------------------------------------------------
def _wrap_unsigned(image: dict | None) -> dict | None:
    """BIGINT UNSIGNED above 2**63-1 as Debezium's ``bigint.unsigned.handling.mode=long`` writes it:
    the same 64 bits read as a signed long (18446744073709551615 -> -1). Documented difference."""
    if image is None:
        return None
    return {k: (v - 2**64 if type(v) is int and v > BIGINT_MAX else v) for k, v in image.items()}


def normalise(value: dict, prefix: str, which: str) -> dict:
    """One envelope with only the documented differences taken out (docs/capture.md)."""
    v = copy.deepcopy(value)
    # made when the event was made, by each capture: present, consistent, not compared
    assert type(v["ts_ms"]) is int and v["ts_us"] // 1000 == v["ts_ms"] and v["ts_ns"] // 1000 == v["ts_us"]
    for k in ("ts_ms", "ts_us", "ts_ns"):
        del v[k]
    src = v["source"]
    assert src["ts_us"] == src["ts_ms"] * 1000 and src["ts_ns"] == src["ts_ms"] * 1_000_000
    assert src["name"] == prefix
    src["name"] = "<prefix>"
    # who made it: snapsync-<release> / 3.0.7.Final
    assert src["version"] == (f"snapsync-{VERSION}" if which == "emb" else "3.0.7.Final")
    del src["version"]
    if which == "emb":
        v["before"], v["after"] = _wrap_unsigned(v["before"]), _wrap_unsigned(v["after"])
    if v["op"] == "r":
        # Each capture's own snapshot: its own position and its own reading of the server clock
        # (whole seconds, as Debezium); the embedded counts ``row`` up (unique per row), Debezium 0.
        assert src["ts_ms"] % 1000 == 0
        for k in ("file", "pos", "row", "ts_ms", "ts_us", "ts_ns"):
            del src[k]
    else:
        # Debezium 3.0.7 MySqlConnector on MariaDB: no transaction metadata, no GTID (limits (b)
        # and its GTID handling, FIELD-NOTES); the embedded capture has both, as 3.6's MariaDbConnector.
        if which == "dbz":
            assert v["transaction"] is None and src["gtid"] is None
            # With replace.null.with.default=false the converter no longer writes the schema's
            # default "false" for Debezium's null source.snapshot of a streamed change. Documented.
            assert src["snapshot"] is None
            src["snapshot"] = "false"
        else:
            t = v["transaction"]
            assert t["id"] == src["gtid"] and t["total_order"] >= 1 and t["data_collection_order"] >= 1
            v["transaction"], src["gtid"] = None, None
    return v


# --- the comparisons ---------------------------------------------------------------------
def test_same_topics_partitions_and_message_counts(recording):
    for table in TABLES:
        emb, dbz = recording.change("emb", table), recording.change("dbz", table)
        assert len(emb) == len(dbz), table
        assert sorted((m[0], m[2]) for m in emb) == sorted((m[0], m[2]) for m in dbz), table


def test_snapshot_rows_field_by_field(recording):
    n = 0
    for table in TABLES:
        emb = {m[0]: (m[2], _json(m[1])) for m in recording.change("emb", table) if m[1] and b'"op":"r"' in m[1]}
        dbz = {m[0]: (m[2], _json(m[1])) for m in recording.change("dbz", table) if m[1] and b'"op":"r"' in m[1]}
        assert emb.keys() == dbz.keys(), table
        for key in emb:
            (pe, ve), (pd, vd) = emb[key], dbz[key]
            assert pe == pd, (table, key)
            ne, nd = normalise(ve, recording.emb_prefix, "emb"), normalise(vd, recording.dbz_prefix, "dbz")
            if table == TABLES[-1] and ne["source"]["snapshot"] == "last":
                # Debezium's include list goes on after the catalog (snapsync_heartbeat, the signal
                # table), so its last catalog row is only the last of its table. Documented.
                assert nd["source"]["snapshot"] == "last_in_data_collection"
                nd["source"]["snapshot"] = "last"
            assert _diff(ne, nd) == [], (table, key, _diff(ne, nd))
            n += 1
    assert n == recording.snapshot_rows


def test_snapshot_markers_and_positions(recording):
    for which, prefix in (("emb", recording.emb_prefix), ("dbz", recording.dbz_prefix)):
        markers, points = [], set()
        for table in TABLES:
            rows = [_json(m[1]) for m in recording.change(which, table) if m[1] and b'"op":"r"' in m[1]]
            rows.sort(key=lambda v: v["after"]["id"])  # the order both read them in (SELECT *: primary key)
            markers.append([r["source"]["snapshot"] for r in rows])
            points |= {(r["source"]["file"], r["source"]["pos"], r["source"]["server_id"], r["source"]["gtid"])
                       for r in rows}
        assert len(points) == 1 and next(iter(points))[2:] == (0, None), which  # one point, server_id 0, no gtid
        assert markers[0][0] == "first", which
        for i, m in enumerate(markers):
            if not m:
                continue
            assert all(x == "true" for x in m[1:-1]), (which, TABLES[i])
            if len(m) > 1 and i:
                assert m[0] == "first_in_data_collection", (which, TABLES[i])
        if which == "emb":
            assert markers[-1][-1] == "last"
        assert all(m[-1] == "last_in_data_collection" for m in markers[:-1] if m), which


def test_streamed_changes_field_by_field_in_order(recording):
    streamed = 0
    for table in TABLES:
        per_part: dict[str, dict[int, list]] = {}
        for which, prefix in (("emb", recording.emb_prefix), ("dbz", recording.dbz_prefix)):
            parts = per_part[which] = {}
            for key, raw, part, _off in recording.change(which, table):
                value = _json(raw)
                if value is not None and value["op"] == "r":
                    continue
                parts.setdefault(part, []).append((key, None if value is None else normalise(value, prefix, which)))
        assert per_part["emb"].keys() == per_part["dbz"].keys(), table
        for part, emb in per_part["emb"].items():
            dbz = per_part["dbz"][part]
            assert [k for k, _ in emb] == [k for k, _ in dbz], (table, part)
            for (key, ve), (_k, vd) in zip(emb, dbz):
                assert (ve is None) == (vd is None), (table, key, "tombstone")
                if ve is not None:
                    assert _diff(ve, vd) == [], (table, key, _diff(ve, vd))
                    streamed += 1
    assert streamed >= 30


def test_streamed_positions_are_the_rows_event_start_and_origin_server(recording):
    """``source.pos`` is where the rows event starts in the binlog (``SHOW BINLOG EVENTS``'s
    ``Pos``), ``server_id`` the server that wrote it: in both captures."""
    checked = 0
    for which in ("emb", "dbz"):
        for table in TABLES:
            for _key, raw, _p, _o in recording.change(which, table):
                v = _json(raw)
                if v is None or v["op"] == "r":
                    continue
                src = v["source"]
                found = recording.binlog_rows_events.get((src["file"], src["pos"]))
                assert found is not None, (which, table, "pos is not a rows event's start")
                assert src["server_id"] == found[1] == 1, (which, table)
                assert src["snapshot"] == ("false" if which == "emb" else None)
                checked += 1
    assert checked >= 2 * 30


def test_value_encodings_of_the_types(recording):
    """The hard values, decoded by the project's decoder from both captures' events, the same."""
    for which, prefix in (("emb", recording.emb_prefix), ("dbz", recording.dbz_prefix)):
        topic = change_topic(prefix, recording.db, "appt_type")
        rows = {}
        for key, raw, _p, _o in recording.change(which, "appt_type"):
            if raw is None:
                continue
            event, ds = decode_change(topic, key, raw)
            rows.setdefault(key, []).append(event)
        one = next(e for e in rows[b'{"id":1}'] if e.op == "r").after
        assert one["t_dt3"] == 1710037800123 and one["t_dt0"] == 1710037800000
        assert one["t_ts6"] == "2024-03-10T07:30:00.123456Z" and one["t_ts0"] == "2024-03-10T07:30:01Z"
        assert one["t_time6"] == -(838 * 3600 + 59 * 60 + 58) * 1_000_000 - 999_999
        assert one["t_blob"] == "AP8KCeKckw==" and one["t_vbin"] == "3q2+7w==" and one["t_flag"] == 1
        assert one["t_dec"] == "-0.000001" and one["t_float"] == 0.1 and one["t_year"] == 2024
        assert one["t_big"] == (18446744073709551615 if which == "emb" else -1)
        assert one["t_json"] == '{"a": [1, 2.5, "x\\ty"], "b": null}'
        notes = {}
        for key, raw, _p, _o in recording.change(which, "referring_provider"):
            v = _json(raw)
            if v and v["op"] in ("c", "u"):
                notes[v["after"]["id"]] = v["after"]["notes"]
        assert notes[1] == "" and notes[2] is None and notes[3] == "\\N"
        assert notes[901] == "" and notes[902] is None and notes[903] == "\\N"
        added = [e.after for e in rows[b'{"id":102}'] if e.after]
        assert added[0]["t_added"] == "new col" and "t_vbin" in added[0]
        assert added[-1]["t_added"] is None and "t_vbin" not in added[-1]


def test_side_topics(recording):
    """Heartbeats: the same topic name and key; Debezium's value is ``{"ts_ms"}`` only, the
    embedded capture's adds its position, watermark and end offsets. The transaction topic:
    Debezium 3.0.7 on MariaDB never writes one (limit (b)), the embedded capture does."""
    emb_hb = recording.emb[heartbeat_topic(recording.emb_prefix)]
    assert emb_hb
    for which, prefix, beats in (("emb", recording.emb_prefix, emb_hb),
                                 ("dbz", recording.dbz_prefix, recording.dbz[heartbeat_topic(recording.dbz_prefix)])):
        for key, raw, _p, _o in beats:
            assert _json(key) == {"serverName": prefix}
            value = _json(raw)
            assert type(value["ts_ms"]) is int
            if which == "dbz":
                assert set(value) == {"ts_ms"}
            else:
                assert {"source", "watermark_us", "offsets"} <= set(value)
    assert recording.dbz[transaction_topic(recording.dbz_prefix)] == []
    txn = [_json(m[1]) for m in recording.emb[transaction_topic(recording.emb_prefix)]]
    assert {"BEGIN", "END"} <= {t["status"] for t in txn}


def test_the_decoder_takes_every_event_of_both(recording):
    for which, prefix in (("emb", recording.emb_prefix), ("dbz", recording.dbz_prefix)):
        for table in TABLES:
            topic = change_topic(prefix, recording.db, table)
            for key, raw, _p, _o in recording.change(which, table):
                if raw is None:
                    continue
                event, _ds = decode_change(topic, key, raw)
                assert isinstance(event, ChangeEvent)
                assert event.to_debezium()["source"]["ts_us"] == event.source_ts_ms * 1000


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ (no values: they may be row data)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k} only in {'dbz' if k not in a else 'emb'}")
            else:
                out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if type(a) is not type(b) or a != b:
        return [f"{path} ({type(a).__name__}/{type(b).__name__})"]
    return []


def test_json_converter_null_with_default(base_settings, connect):
    """The rendered config as it is: a NULL in a column with a DEFAULT arrives as null, as the
    embedded capture writes it (without ``value.converter.replace.null.with.default=false``,
    Kafka Connect's JsonConverter writes the column's default instead)."""
    name = f"nul{uuid.uuid4().hex[:8]}"
    s = settings_for(base_settings, name, topic_prefix=f"dbz{name}")
    new_database(s)
    with db_connect(s.db) as conn:
        seed(conn, customers=1, scale=0.002, seed_value=3)
    run_sql(s, ["ALTER TABLE appt_type ADD COLUMN t_added VARCHAR(20) NULL DEFAULT 'dflt'",
                "UPDATE appt_type SET t_added = NULL WHERE id = 1"])
    connector = f"dbz-{name}"
    config = render(s, name=connector, server_id=6400 + uuid.uuid4().int % 1000)["config"]
    topic = change_topic(s.topic_prefix, name, "appt_type")
    r = requests.put(f"{connect.url}/connectors/{connector}/config", json=config, timeout=30)
    assert r.status_code in (200, 201), r.text[:500]
    try:
        def first_row():
            for key, raw, _p, _o in read_all(base_settings.kafka_bootstrap, [topic], quiet=0.5)[topic]:
                if key == b'{"id":1}' and raw:
                    return _json(raw)
            return None
        value = _wait_for("Debezium's snapshot of appt_type", first_row, timeout=120, every=1)
    finally:
        requests.delete(f"{connect.url}/connectors/{connector}", timeout=30)
    assert value["after"]["t_added"] is None
