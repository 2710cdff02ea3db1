"""Data Sync end to end: real MariaDB, broker, each capture (embedded, and Debezium through Kafka
Connect) and the `snapsync worker` process. Customers 1, 3, 5 belong to account 1; 2, 4 to account 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapsync.connectors.mysql import connect
from snapsync.control import sync_groups
from snapsync.connectors.state import connect_source, connect_state
from snapsync.control.audit import flush_outbox
from snapsync.control.data_sync import initial_copy
from snapsync.schemas.catalog import dataset, sync_datasets
from snapsync.schemas.errors import ConfigError
from tests.integration.pipeline import CAPTURES, capture_args, q, running_pipeline, start_worker, wait_until
from tests.conftest import db_env, qs, sig

BIN = str(Path(sys.executable).with_name("snapsync"))


def item(s, table: str, customer: int, nk: dict):
    ds = dataset(table)
    where = " AND ".join(f"`{c}` = %s" for c in nk)
    rows = q(s, f"SELECT {', '.join(f'`{c}`' for c in ds.column_names)} FROM `{table}` WHERE customer_id = %s AND {where}",
             (customer, *nk.values()))
    return dict(zip(ds.column_names, rows[0])) if rows else None


def copied(row: dict | None, table: str) -> dict | None:
    return None if row is None else {c: row[c] for c in dataset(table).sync_columns}


NEW_ITEMS = {  # one new item per sync data set, natural keys no seed uses
    "cpt_code": ("INSERT INTO cpt_code (customer_id, code, description, default_charge, default_units, "
                 "situational_modifiers, revenue_code, active, created_at, updated_at) VALUES "
                 "(%s, 'Z9901', 'New proc\tcode', 10.50, 1.000, 'GT', '0450', 1, NOW(6), NOW(6))", {"code": "Z9901"}),
    "icd_code": ("INSERT INTO icd_code (customer_id, code, description, icd_version, active, created_at, updated_at) "
                 "VALUES (%s, 'Z99.99', 'New dx', 10, 1, NOW(6), NOW(6))", {"code": "Z99.99"}),
    "icd_procedure_code": ("INSERT INTO icd_procedure_code (customer_id, code, description, active, created_at, "
                           "updated_at) VALUES (%s, 'ZZZZZZZ', 'New pcs', 1, NOW(6), NOW(6))", {"code": "ZZZZZZZ"}),
    "revenue_code": ("INSERT INTO revenue_code (customer_id, code, description, default_charge, active, created_at, "
                     "updated_at) VALUES (%s, '9999', 'New rev', NULL, 1, NOW(6), NOW(6))", {"code": "9999"}),
    "remittance_code": ("INSERT INTO remittance_code (customer_id, code, code_type, description, active, created_at, "
                        "updated_at) VALUES (%s, 'Z1', 'CARC', 'New carc', 1, NOW(6), NOW(6))",
                        {"code_type": "CARC", "code": "Z1"}),
    "adjustment_code": ("INSERT INTO adjustment_code (customer_id, code, description, adjustment_type, active, "
                        "created_at, updated_at) VALUES (%s, 'ADJZ', 'New adj', 'writeoff', 1, NOW(6), NOW(6))",
                        {"code": "ADJZ"}),
    "fee_schedule": ("INSERT INTO fee_schedule (customer_id, schedule_name, procedure_code, modifier, amount, "
                     "allowed_amount, effective_date, created_at, updated_at) VALUES (%s, 'Z plan', '99213', '', "
                     "99.99, NULL, '2026-01-01', NOW(6), NOW(6))",
                     {"schedule_name": "Z plan", "procedure_code": "99213", "modifier": ""}),
    "facility": ("INSERT INTO facility (customer_id, facility_code, name, npi, pos_code, address1, active, created_at, "
                 "updated_at) VALUES (%s, 'FACZ', 'New clinic', '1234567890', '11', '1 Main St', 1, NOW(6), NOW(6))",
                 {"facility_code": "FACZ"}),
    "referring_provider": ("INSERT INTO referring_provider (customer_id, npi, first_name, last_name, created_at, "
                           "updated_at) VALUES (%s, '1999999999', 'Ana', 'Núñez', NOW(6), NOW(6))",
                           {"npi": "1999999999"}),
    "payor": ("INSERT INTO payor (customer_id, payer_code, name, payer_type, claim_format, billing_options, active, "
              "created_at, updated_at) VALUES (%s, '69999', 'New payer', 'commercial', '837P', 'opt-A', 1, NOW(6), "
              "NOW(6))", {"payer_code": "69999"}),
}


@pytest.fixture(scope="module", params=CAPTURES)
def env(request, base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("sync"), f"datasync_{request.param}", customers=5,
                          seed_value=9, accounts=2, before_start=lambda s: sync_groups.set_service(s, 1, True),
                          **capture_args(request)) as running:
        yield running


def _applied(s) -> int:
    return q(s, f"SELECT COUNT(*) FROM {sig(s, 'snapsync_sync_applied')}")[0][0]


def test_bad_groups_are_refused(env):
    s, _log, _w = env
    cases = [
        ((1, (99,), ("codes",)), "unknown customer"),
        ((1, (1, 3), ("codes",)), "cannot sync to itself"),
        ((1, (2,), ("codes",)), "different accounts"),
    ]
    for (src, targets, cats), msg in cases:
        with pytest.raises(ConfigError, match=msg):
            sync_groups.add_group(s, src, targets, cats)
    with pytest.raises(ConfigError, match="unknown data category"):
        sync_groups.parse_categories("codes,claims")
    g = sync_groups.add_group(s, 3, (5,), ("payers",))
    with pytest.raises(ConfigError, match="already receives payers from customer 3"):
        sync_groups.add_group(s, 1, (5,), ("payers", "codes"))
    sync_groups.edit_group(s, g.group_id, mode="override")
    sync_groups.delete_group(s, g.group_id)
    # every change of a group is in the audit history, with before and after
    rows = qs(s, "SELECT action, JSON_VALUE(before_json, '$.mode'), JSON_VALUE(after_json, '$.mode') "
                "FROM snapsync_audit WHERE entity = 'sync_group' AND entity_id = %s ORDER BY audit_id",
             (str(g.group_id),))
    assert rows == (("create", None, "create-only"), ("update", "create-only", "override"),
                    ("delete", "override", None))


def test_create_only_and_override_on_every_category_and_nothing_else_moves(env):
    s, log, _w = env
    every = ("codes", "facilities", "referring_providers", "payers")
    g1 = sync_groups.add_group(s, 1, (3,), every, "create-only")
    g2 = sync_groups.add_group(s, 1, (5,), every, "override")
    try:
        # customer 2 (another account) as it is before
        outside = {d.table: q(s, f"SELECT * FROM `{d.table}` WHERE customer_id = 2 ORDER BY id") for d in sync_datasets()}
        existing = {}
        for ds in sync_datasets():  # an item every customer has (same natural key sequence)
            nk_cols = ds.natural_key
            row = q(s, f"SELECT {', '.join(nk_cols)} FROM `{ds.table}` s WHERE customer_id = 1 AND EXISTS "
                       f"(SELECT 1 FROM `{ds.table}` x WHERE x.customer_id = 3 AND "
                       + " AND ".join(f"x.`{c}` = s.`{c}`" for c in nk_cols) + ") ORDER BY id LIMIT 1")
            existing[ds.table] = dict(zip(nk_cols, row[0]))
        before3 = {t: item(s, t, 3, nk) for t, nk in existing.items()}
        for table, (sql, _nk) in NEW_ITEMS.items():
            q(s, sql, (1,))
        for table, nk in existing.items():
            col = "name" if table in ("facility", "payor") else "last_name" if table == "referring_provider" \
                else "amount" if table == "fee_schedule" else "description"
            value = "77.77" if col == "amount" else "edited in the source ✓"
            q(s, f"UPDATE `{table}` SET `{col}` = %s WHERE customer_id = 1 AND "
                 + " AND ".join(f"`{c}` = %s" for c in nk), (value, *nk.values()))
        for table, (_sql, nk) in NEW_ITEMS.items():
            wait_until(lambda: item(s, table, 3, nk) is not None and item(s, table, 5, nk) is not None,
                       what=f"{table} created in the targets")
            src = item(s, table, 1, nk)
            for target in (3, 5):
                got = item(s, table, target, nk)
                assert copied(got, table) == copied(src, table), (table, target)
                for col in dataset(table).never_copied:
                    assert got[col] is None  # never copied, not even on create
        for table, nk in existing.items():
            src = item(s, table, 1, nk)
            wait_until(lambda: copied(item(s, table, 5, nk), table) == copied(src, table),
                       what=f"{table} overridden in customer 5")
            t5 = item(s, table, 5, nk)
            assert t5["id"] != src["id"] and t5["customer_id"] == 5
            for col in dataset(table).never_copied:  # the target keeps its own
                assert col not in dataset(table).sync_columns
            assert item(s, table, 3, nk) == before3[table], table  # create-only never modifies
        for t, rows in outside.items():
            assert q(s, f"SELECT * FROM `{t}` WHERE customer_id = 2 ORDER BY id") == rows, t
    finally:
        sync_groups.delete_group(s, g1.group_id)
        sync_groups.delete_group(s, g2.group_id)


EXCLUDED = {
    "provider": "UPDATE provider SET last_name = 'Excluded' WHERE customer_id = 1",
    "claim_professional": "UPDATE claim_professional SET status = 'EXCL' WHERE customer_id = 1",
    "charge": "UPDATE charge SET amount = 1.23 WHERE customer_id = 1",
    "payment": "UPDATE payment SET reference = 'excl' WHERE customer_id = 1",
    "credit": "UPDATE credit SET amount = 2.34 WHERE customer_id = 1",
    "appt": "UPDATE appt SET status = 'excl' WHERE customer_id = 1",
    "patient_note": "UPDATE patient_note SET body = 'excl' WHERE customer_id = 1",
    "patient": "UPDATE patient SET balance = 3.45 WHERE customer_id = 1",
}


def test_excluded_data_never_moves(env):
    s, _log, _w = env
    g = sync_groups.add_group(s, 1, (3,), ("codes", "facilities", "referring_providers", "payers"), "override")
    try:
        before = {t: q(s, f"SELECT * FROM `{t}` WHERE customer_id = 3 ORDER BY id") for t in EXCLUDED}
        for sql in EXCLUDED.values():
            q(s, sql)
        # a synced edit after them is the barrier: once it arrived, the others had their chance
        q(s, "UPDATE icd_code SET description = 'barrier' WHERE customer_id = 1 ORDER BY id LIMIT 1")
        code = q(s, "SELECT code FROM icd_code WHERE customer_id = 1 AND description = 'barrier'")[0][0]
        wait_until(lambda: (item(s, "icd_code", 3, {"code": code}) or {}).get("description") == "barrier",
                   what="the barrier edit")
        for t in EXCLUDED:
            assert q(s, f"SELECT * FROM `{t}` WHERE customer_id = 3 ORDER BY id") == before[t], t
    finally:
        sync_groups.delete_group(s, g.group_id)


def test_two_way_sync_converges_without_echo_and_undo_restores(env):
    s, _log, _w = env
    a_to_b = sync_groups.add_group(s, 1, (3,), ("facilities",), "override")
    b_to_a = sync_groups.add_group(s, 3, (1,), ("facilities",), "override")
    try:
        code = q(s, "SELECT facility_code FROM facility WHERE customer_id = 1 ORDER BY id LIMIT 1")[0][0]
        target_before = item(s, "facility", 3, {"facility_code": code})
        applied_before = _applied(s)
        q(s, "UPDATE facility SET name = 'Two-way edit' WHERE customer_id = 1 AND facility_code = %s", (code,))
        wait_until(lambda: item(s, "facility", 3, {"facility_code": code})["name"] == "Two-way edit",
                   what="the edit in B")
        time.sleep(3.0)  # time for any echo to come round
        assert _applied(s) == applied_before + 1  # one command, applied once; B's echo did not fan out
        assert q(s, f"SELECT COUNT(*) FROM {sig(s, 'snapsync_sync_echo')} WHERE table_name = 'facility'")[0][0] == 0
        # undo the override in B: exactly the row it was
        audit_id = qs(s, "SELECT audit_id FROM snapsync_audit WHERE entity = 'sync_apply' AND action = 'override' "
                        "ORDER BY audit_id DESC LIMIT 1")[0][0]
        r = subprocess.run([BIN, "sync", "undo", str(audit_id)], capture_output=True, text=True,
                           env={**os.environ, **db_env(s),
                                "SNAPSYNC_KAFKA_BOOTSTRAP": s.kafka_bootstrap})
        assert r.returncode == 0, r.stderr
        assert item(s, "facility", 3, {"facility_code": code}) == target_before
        time.sleep(2.0)  # the restore is not an edit to fan out back to A
        assert item(s, "facility", 1, {"facility_code": code})["name"] == "Two-way edit"
    finally:
        sync_groups.delete_group(s, a_to_b.group_id)
        sync_groups.delete_group(s, b_to_a.group_id)


def test_kill_9_of_the_worker_mid_fan_out(env):
    s, log, workers = env
    g = sync_groups.add_group(s, 1, (3, 5), ("codes",), "override")
    try:
        codes = [r[0] for r in q(s, "SELECT code FROM icd_code WHERE customer_id = 1 ORDER BY id")]
        applied_before = _applied(s)
        with connect(s.db, autocommit=True) as conn:
            cur = conn.cursor()
            for i in range(120):
                cur.execute("UPDATE icd_code SET description = %s WHERE customer_id = 1 AND code = %s",
                            (f"round {i}", codes[i % len(codes)]))
        wait_until(lambda: _applied(s) > applied_before + 20, what="some commands applied")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        workers[0] = start_worker(s, log)
        for code in codes:
            src = item(s, "icd_code", 1, {"code": code})
            for target in (3, 5):
                wait_until(lambda: copied(item(s, "icd_code", target, {"code": code}), "icd_code")
                           == copied(src, "icd_code"), timeout=60, what=f"icd {code} in {target}")
        # nothing applied twice: each command id has at most one audit record
        dup = qs(s, "SELECT entity_id, COUNT(*) FROM snapsync_audit WHERE entity = 'sync_apply' "
                   "GROUP BY entity_id HAVING COUNT(*) > 1 AND entity_id NOT LIKE 'initial:%%'")
        assert dup == ()
    finally:
        sync_groups.delete_group(s, g.group_id)


def test_initial_copy_is_set_based_and_undoable(env):
    s, _log, _w = env
    with connect_source(s) as conn, connect_state(s) as state:
        before = q(s, "SELECT * FROM revenue_code WHERE customer_id = 5 ORDER BY id")
        counts = initial_copy(conn, 0, 1, 5, [dataset("revenue_code")], "override")
        flush_outbox(conn, state)
        assert counts["revenue_code"]["overridden"] + counts["revenue_code"]["created"] > 0
        src = q(s, "SELECT code, description, default_charge FROM revenue_code WHERE customer_id = 1 ORDER BY code")
        assert q(s, "SELECT code, description, default_charge FROM revenue_code WHERE customer_id = 5 AND code IN "
                    "(SELECT code FROM revenue_code WHERE customer_id = 1) ORDER BY code") == src
        audit_id = qs(s, "SELECT MAX(audit_id) FROM snapsync_audit WHERE action = 'initial-override'")[0][0]
        from snapsync.control.sync_undo import undo

        undo(conn, state, audit_id)
    assert q(s, "SELECT * FROM revenue_code WHERE customer_id = 5 ORDER BY id") == before


def test_poison_events_go_to_the_dead_letter_topic_and_sync_goes_on(env):
    from confluent_kafka import Consumer, TopicPartition

    from snapsync.connectors.kafka import producer
    from snapsync.schemas.topics import change_topic, dead_letter_topic
    from tests.kafka_helpers import read_topic

    s, _log, _w = env
    g = sync_groups.add_group(s, 1, (3,), ("referring_providers",), "override")
    try:
        topic = change_topic(s.topic_prefix, s.db.database, "referring_provider")
        p = producer(s.kafka_bootstrap)
        p.produce(topic, key=b'{"id":1}', value=b"\x00garbage that is not JSON")
        p.produce(topic, key=b'{"id":2}', value=(Path(__file__).parent.parent / "fixtures" / "bad_events"
                                                 / "unknown_op.json").read_bytes())
        p.flush(10)
        npi = q(s, "SELECT npi FROM referring_provider WHERE customer_id = 1 ORDER BY id LIMIT 1")[0][0]
        q(s, "UPDATE referring_provider SET last_name = 'After poison' WHERE customer_id = 1 AND npi = %s", (npi,))
        wait_until(lambda: (item(s, "referring_provider", 3, {"npi": npi}) or {}).get("last_name") == "After poison",
                   what="a good event after the poison ones")
        c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"dlq-{time.monotonic_ns()}",
                      "auto.offset.reset": "earliest"})
        dlq = dead_letter_topic(s.topic_prefix)
        md = c.list_topics(dlq, timeout=10).topics[dlq]
        c.assign([TopicPartition(dlq, part, 0) for part in md.partitions])
        reasons = []
        deadline = time.monotonic() + 20
        while len(reasons) < 2 and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if not m.error():
                    reasons.append(dict(m.headers() or [])[ "reason"].decode())
        c.close()
        assert any(r.startswith("value is not JSON") for r in reasons), reasons
        assert any(r.startswith("unknown op 'x'") for r in reasons), reasons
        # and the account was told its edit would be synchronized
        notes = qs(s, "SELECT message FROM snapsync_notification WHERE kind = 'sync_pending' ORDER BY 1 DESC")
        assert any("Referring" in n[0] and "will be synchronized to 1 customer(s)" in n[0] for n in notes)
        assert read_topic(s.kafka_bootstrap, f"{s.topic_prefix}.notifications")
    finally:
        sync_groups.delete_group(s, g.group_id)
