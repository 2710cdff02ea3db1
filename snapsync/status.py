"""``snapsync status``: the pipeline at a glance, read from the database and the broker (it
needs none of the processes to answer, so it can say which ones are not running).

* processes: every capture, worker, scheduler, export worker and web app seen in the last day
  (the state store's ``snapsync_process``), running or not seen (killed, hung, machine gone) or stopped;
* capture: per connector, the stored restart point and its age, the last heartbeat written,
  and the watermark read back from the heartbeat topic (how far behind the source it is);
* worker lag and export-job lag: per topic and partition, the group's committed offset
  against the true end offset (``connectors/lag.py``);
* the last delivery of every account with snapshots enabled, today's slots that failed or
  missed their ready-by time;
* dead letters of the last 24 hours, by source topic and reason;
* the broker the pipeline last used (cluster id, generation, since when: a generation above 1
  means a broker was replaced or emptied and recovered from, ``control/broker.py``).

``problems`` lists what needs an operator; the command exits 1 when there is any.
"""

from __future__ import annotations

import datetime as dt
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from snapsync.connectors.kafka import cluster_id
from snapsync.connectors.lag import group_lag, true_end_offsets
from snapsync.connectors.mysql import connect
from snapsync.connectors.offsets import HEARTBEAT_TABLE, debezium_position
from snapsync.connectors.state import connect_state, signal_table
from snapsync.control import claims, snapshot_settings
from snapsync.control.processes import processes
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import ConfigError, FatalError, RetriableError
from snapsync.schemas.messages import Heartbeat
from snapsync.schemas.schedule import local_day, ready_by
from snapsync.schemas.topics import (
    dead_letter_topic,
    deltas_group,
    deltas_topics,
    export_group,
    export_jobs_topic,
    heartbeat_topic,
    worker_group,
    worker_topics,
)

ROLES = ("capture", "worker", "scheduler", "export-worker", "web")
#: Capture is reported stale when its restart point has not been stored for this long.
CAPTURE_STALE_S = 30.0


def _capture_rows(conn, settings: Settings) -> list[dict]:
    """Each embedded capture's restart point (state store) and its last heartbeat row (signal
    schema, on the source: read with the practice login; left out when it may not)."""
    cur = conn.cursor()
    cur.execute("SELECT connector, binlog_file, binlog_pos, snapshot_completed, "
                "TIMESTAMPDIFF(MICROSECOND, updated_at, UTC_TIMESTAMP(6)) FROM snapsync_capture_offset")
    rows = cur.fetchall()
    conn.commit()
    beats: dict[str, int] = {}
    if rows:
        try:
            with connect(settings.db) as source:
                c = source.cursor()
                c.execute(f"SELECT connector, ts_us FROM {signal_table(settings.signal_schema, HEARTBEAT_TABLE)}")
                beats = {r[0]: int(r[1]) for r in c.fetchall()}
        except Exception:  # noqa: BLE001 - not readable by this login: the restart point says enough
            beats = {}
    now_us = time.time() * 1e6
    return [{"connector": r[0], "restart_point": f"{r[1]}:{r[2]}", "snapshot_completed": bool(r[3]),
             "restart_point_age_s": round((r[4] or 0) / 1e6, 1),
             "heartbeat_written_s_ago": None if r[0] not in beats else round(max(0.0, now_us - beats[r[0]]) / 1e6, 1)}
            for r in rows]


def _deliveries(conn, accounts: list[int]) -> dict[int, dict]:
    if not accounts:
        return {}
    cur = conn.cursor()
    marks = ",".join(["%s"] * len(accounts))
    cur.execute("SELECT d.account_id, d.slot_date, d.kind, d.status, d.finished_at, d.bytes, d.rows_total "
                "FROM snapsync_delivery d JOIN (SELECT account_id, MAX(delivery_id) AS last FROM snapsync_delivery "
                f"WHERE account_id IN ({marks}) AND status='delivered' GROUP BY account_id) x "
                "ON x.last = d.delivery_id", accounts)
    out = {r[0]: {"slot_date": r[1].isoformat(), "kind": r[2], "status": r[3],
                  "finished_at": r[4].isoformat() + "Z" if r[4] else None, "bytes": r[5], "rows": r[6]}
           for r in cur.fetchall()}
    conn.commit()
    return out


def _latest_heartbeat(bootstrap: str, prefix: str) -> Heartbeat | None:
    topic = heartbeat_topic(prefix)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "snapsync-status", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 50, "log_level": 3})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return None
        tps = [TopicPartition(topic, p) for p in md.partitions]
        ends = true_end_offsets(c, tps)
        start = [TopicPartition(t, p, max(lo, end - 3)) for (t, p), (lo, end, _r) in ends.items() if end > lo]
        best = None
        if start:
            c.assign(start)
            pending, deadline = {tp.partition for tp in start}, time.monotonic() + 5
            while pending and time.monotonic() < deadline:
                for m in c.consume(100, 0.2):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            pending.discard(m.partition())
                        continue
                    try:
                        hb = Heartbeat.model_validate_json(m.value() or b"")
                    except ValueError:
                        continue
                    if best is None or (hb.watermark_us or 0) > (best.watermark_us or 0):
                        best = hb
        return best
    finally:
        c.close()


def dead_letters(bootstrap: str, prefix: str, since: dt.datetime, limit: int = 100_000) -> dict:
    """Dead letters written since ``since``: the count, by source topic and by reason."""
    topic = dead_letter_topic(prefix)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "snapsync-status", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 50, "log_level": 3})
    total, by_topic, by_reason = 0, {}, {}
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None:
            since_ms = int(since.timestamp() * 1000)
            starts = c.offsets_for_times([TopicPartition(topic, p, since_ms) for p in md.partitions], timeout=10)
            ends = true_end_offsets(c, [TopicPartition(topic, p) for p in md.partitions])
            assign = []
            for tp in starts:
                lo, end, _r = ends[(topic, tp.partition)]
                first = tp.offset if tp.offset >= 0 else end  # -1: nothing at or after the time
                if first < end:
                    assign.append(TopicPartition(topic, tp.partition, max(first, lo)))
            if assign:
                c.assign(assign)
                pending, deadline = {tp.partition for tp in assign}, time.monotonic() + 20
                while pending and time.monotonic() < deadline and total < limit:
                    for m in c.consume(1000, 0.2):
                        if m.error() is not None:
                            if m.error().code() == KafkaError._PARTITION_EOF:
                                pending.discard(m.partition())
                            continue
                        if m.timestamp()[1] < since_ms:
                            continue
                        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])}
                        total += 1
                        src = headers.get("topic", "?")
                        by_topic[src] = by_topic.get(src, 0) + 1
                        reason = headers.get("reason", "?")[:200]
                        by_reason[reason] = by_reason.get(reason, 0) + 1
    finally:
        c.close()
    return {"since": since.isoformat().replace("+00:00", "Z"), "count": total, "by_topic": by_topic,
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])[:20])}


def _debezium(settings: Settings, problems: list[str]) -> dict:
    """The Debezium connector on Kafka Connect: its and its tasks' states, and the source
    offset Connect committed (what the incremental watermark reads)."""
    from snapsync.connectors.debezium import ConnectClient

    out: dict = {"connector": settings.connector, "connect_url": settings.connect_url}
    if not settings.connect_url:
        problems.append("capture: debezium without a Kafka Connect URL (set SNAPSYNC_CONNECT_URL)")
        return out
    try:
        client = ConnectClient(settings.connect_url)
        st = client.status(settings.connector)
        out["state"] = st["connector"]["state"]
        out["tasks"] = [t["state"] for t in st.get("tasks", [])]
        at, why = debezium_position(client, settings.connector)
        out["committed_position"] = f"{at.file}:{at.pos}" if at is not None else None
        if at is None:
            out["position_note"] = why
    except (FatalError, RetriableError, ConfigError) as exc:
        out["error"] = str(exc).splitlines()[0]
        problems.append(f"capture: Debezium connector {settings.connector}: {out['error']}")
        return out
    if out["state"] != "RUNNING" or any(t != "RUNNING" for t in out["tasks"]) or not out["tasks"]:
        problems.append(f"capture: Debezium connector {settings.connector} is {out['state']} "
                        f"(tasks: {', '.join(out['tasks']) or 'none'})")
    return out


def pipeline_status(settings: Settings, now: dt.datetime | None = None) -> dict:
    """Everything ``snapsync status`` shows, as one JSON-ready dict (see the module docstring).

    Raises:
        RetriableError: the database cannot be reached (the broker's part is reported as an error
            inside the result instead).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    prefix, db = settings.topic_prefix, settings.db.database
    problems: list[str] = []
    with connect_state(settings) as conn:
        procs = processes(conn)
        capture = _capture_rows(conn, settings)
        enabled = snapshot_settings.all_enabled(conn)
        last = _deliveries(conn, [c.account_id for c in enabled])
        day = local_day(now)
        today = claims.states(conn, day)
        cur = conn.cursor()
        cur.execute("SELECT cluster_id, generation, changed_at FROM snapsync_broker WHERE topic_prefix = %s",
                    (prefix,))
        broker_row = cur.fetchone()
        conn.commit()
    # processes
    by_role = {r: [p for p in procs if p["role"] == r] for r in ROLES}
    for role in ("capture", "worker"):
        running = [p for p in by_role[role] if p["state"] == "running"]
        if role == "capture" and (settings.capture == "debezium" or (not capture and not by_role[role])):
            continue  # Debezium on Kafka Connect: reported below
        if not running:
            seen = by_role[role]
            problems.append(f"{role}: no running process" + (
                f" (last seen {min(p['last_seen_s'] for p in seen):.0f}s ago: {seen[-1]['state']})" if seen else
                " seen in the last day"))
    # capture
    for c in capture:
        if c["restart_point_age_s"] > CAPTURE_STALE_S:
            problems.append(f"capture {c['connector']}: restart point not stored for {c['restart_point_age_s']:.0f}s")
    debezium = _debezium(settings, problems) if settings.capture == "debezium" else None
    broker: dict = {}
    try:
        hb = _latest_heartbeat(settings.kafka_bootstrap, prefix)
        broker["watermark"] = None if hb is None or hb.watermark_us is None else {
            "at": dt.datetime.fromtimestamp(hb.watermark_us / 1e6, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "lag_s": round(max(0.0, now.timestamp() - hb.watermark_us / 1e6), 1),
            "position": None if hb.source is None else f"{hb.source.file}:{hb.source.pos}"}
        broker["worker_lag"] = [p.to_json() for group, topics in ((worker_group(prefix, db), worker_topics(prefix, db)),
                                                                  (deltas_group(prefix, db), deltas_topics(prefix, db)))
                                for p in group_lag(settings.kafka_bootstrap, group, topics)]
        broker["export_job_lag"] = [p.to_json() for p in group_lag(settings.kafka_bootstrap, export_group(prefix, db),
                                                                   [export_jobs_topic(prefix)])]
        broker["dead_letters_24h"] = dead_letters(settings.kafka_bootstrap, prefix, now - dt.timedelta(days=1))
        broker["cluster_id"] = cluster_id(settings.kafka_bootstrap)
    except (RetriableError, KafkaException) as exc:
        broker["error"] = str(exc) if isinstance(exc, RetriableError) else "the broker did not answer"
        problems.append(f"broker: {broker['error']}")
    generation = None if broker_row is None else {
        "cluster_id": broker_row[0], "generation": int(broker_row[1]), "since": broker_row[2].isoformat() + "Z",
        "replaced": int(broker_row[1]) > 1}
    if broker_row is not None and broker.get("cluster_id") not in (None, broker_row[0]):
        problems.append(f"broker: cluster {broker['cluster_id']} is not the one the pipeline last used "
                        f"({broker_row[0]}): "
                        "it was replaced or emptied; the first process to notice recovers (docs/operations.md)")
    # deliveries
    accounts, failing = [], []
    for cfg in enabled:
        slot = today.get((cfg.account_id, cfg.kind))
        state = slot["state"] if slot else "not due yet"
        late = slot is not None and state != "delivered" and now >= ready_by(day)
        accounts.append({"account_id": cfg.account_id, "kind": cfg.kind, "today": state, "late": late,
                         "attempts": slot["attempts"] if slot else 0, "last_delivery": last.get(cfg.account_id)})
        if state == "failed" or late:
            failing.append(cfg.account_id)
            problems.append(f"account {cfg.account_id}: today's {cfg.kind} delivery "
                            + ("missed its 09:00 ready-by time" if late else "failed") + f" ({state})")
    worker_total = sum(p["lag"] for p in broker.get("worker_lag", []))
    return {
        "checked_at": now.isoformat().replace("+00:00", "Z"),
        "day": day.isoformat(),
        "processes": {r: by_role[r] for r in ROLES},
        "capture": {"kind": settings.capture, "connectors": capture, "debezium": debezium,
                    "watermark": broker.get("watermark")},
        "worker": {"running": sum(p["state"] == "running" for p in by_role["worker"]), "lag_total": worker_total,
                   "lag": broker.get("worker_lag", [])},
        "export_workers": {"running": sum(p["state"] == "running" for p in by_role["export-worker"]),
                           "job_lag": broker.get("export_job_lag", [])},
        "accounts": accounts,
        "failing_accounts": failing,
        "dead_letters_24h": broker.get("dead_letters_24h"),
        "broker_error": broker.get("error"),
        "broker": generation,
        "problems": problems,
    }
