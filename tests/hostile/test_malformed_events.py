"""Hostile input to a running worker (real MariaDB, broker, capture and `snapsync worker`):
every malformed event or command goes to the dead-letter topic with a reason that quotes no
value, the partition moves on, the worker never exits, and it does not crash again on
restart (the messages are replayed). Each case was reproduced on the main of 2026-11-24,
where it made the worker exit 70 on every start."""

from __future__ import annotations

import json

import pytest

from snapsync.connectors.kafka import producer
from snapsync.control import sync_groups
from snapsync.schemas.topics import change_topic, commands_topic, dead_letter_topic
from tests.integration.pipeline import q, running_pipeline, start_worker, stop, wait_until
from tests.kafka_helpers import read_topic

MARK = "PHILEAK Jane Roe 078-05-1120"  # must never appear in a log line or a reason


@pytest.fixture(scope="module")
def env(base_settings, tmp_path_factory):
    with running_pipeline(base_settings, tmp_path_factory.mktemp("hostile"), "hostile", customers=3,
                          seed_value=21, accounts=1,
                          before_start=lambda s: sync_groups.set_service(s, 1, True)) as running:
        s = running[0]
        sync_groups.add_group(s, 1, (3,), ("codes",), "override")
        yield running


def dead_letter_headers(s) -> list[list[tuple[str, bytes]]]:
    from confluent_kafka import Consumer, TopicPartition

    topic = dead_letter_topic(s.topic_prefix)
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "dlq-headers", "fetch.wait.max.ms": 50})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out, idle = [], 0
        while idle < 4:
            batch = c.consume(500, 0.5)
            idle = 0 if batch else idle + 1
            out += [m.headers() or [] for m in batch if not m.error()]
        return out
    finally:
        c.close()


def real_envelope(s, table: str, customer: int) -> tuple[bytes, dict]:
    """A real event of ``table`` for ``customer`` as capture produced it (key, value)."""
    q(s, f"UPDATE `{table}` SET updated_at = NOW(6) WHERE customer_id = %s ORDER BY id LIMIT 1", (customer,))
    topic = change_topic(s.topic_prefix, s.db.database, table)

    def last():
        for key, value, _p, _o in reversed(read_topic(s.kafka_bootstrap, topic)):
            if value and value.get("op") == "u" and value["after"]["customer_id"] == customer:
                return key, value
        return None

    wait_until(lambda: last() is not None, what=f"a real {table} event")
    return last()


def _json(value: dict, **raw) -> bytes:
    """The envelope as JSON, with ``raw`` JSON text replacing some source fields verbatim."""
    text = json.dumps(value, ensure_ascii=False)
    for field, literal in raw.items():
        text = text.replace(f'"{field}": {json.dumps(value["source"][field])}', f'"{field}": {literal}', 1)
    return text.encode()


def cases(s) -> list[tuple[str, str, bytes, bytes]]:
    """(name, topic, key, value): each one malformed in one way."""
    cpt_key, cpt = real_envelope(s, "cpt_code", 1)
    pat_key, pat = real_envelope(s, "patient", 1)
    cpt_topic = change_topic(s.topic_prefix, s.db.database, "cpt_code")
    pat_topic = change_topic(s.topic_prefix, s.db.database, "patient")

    def changed(env: dict, image: dict) -> dict:
        return {**env, "after": {**env["after"], **image}}

    no_code = changed(cpt, {})
    del no_code["after"]["code"]
    no_customer = changed(pat, {})
    del no_customer["after"]["customer_id"]
    big_id = json.dumps(changed(pat, {}))
    big_id = big_id.replace(f'"id": {pat["after"]["id"]}', '"id": ' + "9" * 300, 1)
    out = [
        ("pos 1e999", cpt_topic, cpt_key, _json(cpt, pos="1e999")),
        ("description of 1000 characters", cpt_topic, cpt_key,
         json.dumps(changed(cpt, {"description": MARK + "x" * 1000})).encode()),
        ("no natural key", cpt_topic, cpt_key, json.dumps(no_code).encode()),
        ("created_at not a number", cpt_topic, cpt_key,
         json.dumps(changed(cpt, {"created_at": MARK})).encode()),
        ("a 5 MB value", cpt_topic, cpt_key, json.dumps(changed(cpt, {"description": MARK * 180_000})).encode()),
        ("source.ts_ms 1e20", pat_topic, pat_key, _json(pat, ts_ms="1e20")),
        ("customer_id 99999999999", pat_topic, pat_key,
         json.dumps(changed(pat, {"customer_id": 99999999999})).encode()),
        ("a 300-digit id", pat_topic, b'{"id":' + b"9" * 300 + b"}", big_id.encode()),
        ("key disagrees with value", pat_topic, b'{"id":999999}', json.dumps(pat).encode()),
        ("after without customer_id", pat_topic, pat_key, json.dumps(no_customer).encode()),
        ("date_of_birth not a day", pat_topic, pat_key, json.dumps(changed(pat, {"date_of_birth": MARK})).encode()),
        ("unknown table", cpt_topic, cpt_key, json.dumps({**cpt, "source": {**cpt["source"], "table": "nope"}}).encode()),
        ("table of another topic", cpt_topic, pat_key, json.dumps(pat).encode()),
        ("deeply nested", cpt_topic, cpt_key, b"[" * 100_000 + b"]" * 100_000),
    ]
    command = {"command_id": "hostile:1", "group_id": 1, "mode": "override", "table": "nope", "source_customer": 1,
               "target_customer": 3, "values": cpt["after"]}
    ctopic = commands_topic(s.topic_prefix)
    out += [
        ('command "table": "nope"', ctopic, b"3", json.dumps(command).encode()),
        ("command key is not its target", ctopic, b"2", json.dumps({**command, "table": "cpt_code",
                                                                     "command_id": "hostile:2"}).encode()),
        # valid as a command, refused by the database when applied (too long for the column)
        ("command value too long at apply", ctopic, b"3", json.dumps({
            **command, "table": "cpt_code", "command_id": "hostile:3",
            "values": {**cpt["after"], "code": "HZ1", "description": MARK + "y" * 300}}).encode()),
        ("command without natural key", ctopic, b"3", json.dumps({
            **command, "table": "cpt_code", "command_id": "hostile:4",
            "values": {k: v for k, v in cpt["after"].items() if k != "code"}}).encode()),
    ]
    return out


def test_every_malformed_message_is_dead_lettered_and_the_worker_goes_on(env):
    s, log, workers = env
    hostile = cases(s)
    p = producer(s.kafka_bootstrap, **{"message.max.bytes": 10_000_000})
    for _name, topic, key, value in hostile:
        p.produce(topic, key=key, value=value)
    p.flush(30)
    # good edits after the hostile ones: both partitions' owners moved on
    code = q(s, "SELECT code FROM cpt_code WHERE customer_id = 1 ORDER BY id LIMIT 1 OFFSET 2")[0][0]
    q(s, "UPDATE cpt_code SET description = 'after the hostile ones' WHERE customer_id = 1 AND code = %s", (code,))
    wait_until(lambda: q(s, "SELECT description FROM cpt_code WHERE customer_id = 3 AND code = %s", (code,))
               == (("after the hostile ones",),), timeout=60, what="a good edit after the hostile messages")
    dlq = read_topic(s.kafka_bootstrap, dead_letter_topic(s.topic_prefix))
    wait_until(lambda: len(read_topic(s.kafka_bootstrap, dead_letter_topic(s.topic_prefix))) >= len(hostile),
               timeout=60, what="every hostile message dead-lettered")
    dlq = read_topic(s.kafka_bootstrap, dead_letter_topic(s.topic_prefix))
    assert workers[0].poll() is None, "the worker exited"
    assert len(dlq) == len(hostile)  # each one dead-lettered, once
    reasons = [dict(h)["reason"].decode() for h in dead_letter_headers(s)]
    assert len(reasons) == len(hostile) and all(reasons)
    assert not any(MARK in r or "Jane" in r for r in reasons)
    text = log.read_text(errors="replace")
    assert MARK not in text and "Jane Roe" not in text
    assert "Traceback" not in text
    # a restart replays nothing that crashes it
    stop(workers[0])
    workers[0] = start_worker(s, log)
    q(s, "UPDATE cpt_code SET description = 'after the restart' WHERE customer_id = 1 AND code = %s", (code,))
    wait_until(lambda: q(s, "SELECT description FROM cpt_code WHERE customer_id = 3 AND code = %s", (code,))
               == (("after the restart",),), timeout=60, what="a good edit after the restart")
    assert workers[0].poll() is None
    assert MARK not in log.read_text(errors="replace")
