"""The nightly delivery round: every enabled account's snapshot at its New York time.

A round looks at each account with snapshots enabled; when the day's slot has passed
(full: 01:00, see ``schemas/schedule.py``) and no delivery for that day is recorded, it
exports, records the delivery (``snapsync_delivery``), audits it, and notifies the
account (``snapsync_notification`` and the ``<prefix>.notifications`` topic) that the
package is ready: where, its size and checksums. A failed export is recorded as failed
and retried by the next round.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path

from schemas.config import Settings
from schemas.control import SnapshotSettings, utcnow
from schemas.events import dumps
from schemas.errors import RetriableError
from schemas.schedule import full_slot, incremental_cutoff, local_day, ready_by
from sinks.incremental import wait_for_watermark
from sinks import settings_store
from sinks.export import ExportRequest, export_snapshot
from snapsync.control import ensure_control_tables, notify, record_audit
from snapsync.db import connect

log = logging.getLogger("snapsync.scheduler")


def delivery_root(settings: Settings, account_id: int) -> Path:
    return Path(settings.home).resolve() / "deliveries" / f"account-{account_id}"


def notifications_topic(prefix: str) -> str:
    return f"{prefix}.notifications"


def _delivered(conn, account_id: int, day: dt.date, kind: str) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM snapsync_delivery WHERE account_id=%s AND slot_date=%s AND kind=%s AND "
                "status='delivered' LIMIT 1", (account_id, day, kind))
    found = cur.fetchone() is not None
    conn.commit()
    return found


def deliver(settings: Settings, cfg: SnapshotSettings, day: dt.date, *, producer=None) -> dict:
    """Export one account's package for ``day`` and record, audit and announce it."""
    root = delivery_root(settings, cfg.account_id)
    cutoff = incremental_cutoff(day).replace(tzinfo=None) if cfg.kind == "incremental" else None
    if cutoff is not None:
        # Not recorded as a failure: the next round tries again. Raises RetriableError.
        wait_for_watermark(settings, cutoff, timeout=5.0)
    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO snapsync_delivery (account_id, slot_date, kind, status, started_at) "
                    "VALUES (%s, %s, %s, 'running', %s)", (cfg.account_id, day, cfg.kind, utcnow()))
        delivery_id = cur.lastrowid
        conn.commit()
        try:
            result = export_snapshot(settings, ExportRequest(
                customers=list(cfg.customers), format=cfg.format, packaging=cfg.packaging,
                container=cfg.container, keep=cfg.keep, kind=cfg.kind, cutoff=cutoff, watermark_timeout=5.0), root)
        except Exception as exc:
            cur.execute("UPDATE snapsync_delivery SET status='failed', finished_at=%s, detail=%s WHERE delivery_id=%s",
                        (utcnow(), json.dumps({"error": type(exc).__name__, "message": str(exc)[:500]}), delivery_id))
            record_audit(cur, account_id=cfg.account_id, entity="delivery", entity_id=str(delivery_id),
                         action="failed", detail={"slot_date": day.isoformat(), "error": type(exc).__name__})
            conn.commit()
            raise
        size = sum(f["bytes"] for p in result.packages for f in p["files"])
        finished = dt.datetime.now(dt.timezone.utc)
        late = finished > ready_by(day)
        detail = {
            "slot_date": day.isoformat(), "kind": cfg.kind, "format": cfg.format, "packaging": cfg.packaging,
            "path": str(root / "current"), "delivered_path": str(result.path), "bytes": size, "rows": result.rows,
            "late": late, "source_position": result.summary()["source_position"],
            "packages": [{"package": p["package"], "files": p["files"]} for p in result.packages],
        }
        cur.execute("UPDATE snapsync_delivery SET status='delivered', finished_at=%s, path=%s, bytes=%s, "
                    "rows_total=%s, detail=%s WHERE delivery_id=%s",
                    (finished.replace(tzinfo=None), str(result.path), size, result.rows, json.dumps(detail),
                     delivery_id))
        record_audit(cur, account_id=cfg.account_id, entity="delivery", entity_id=str(delivery_id),
                     action="delivered", detail=detail)
        message = (f"Your {cfg.kind} data snapshot for {day.isoformat()} is ready: {len(result.packages)} "
                   f"package(s), {size:,} bytes, in {root / 'current'}. It replaces the previous snapshot; "
                   "download it before the next one is generated.")
        notify(cur, account_id=cfg.account_id, kind="snapshot_ready", message=message, detail=detail)
        conn.commit()
    if producer is not None:
        producer.produce(notifications_topic(settings.topic_prefix), key=dumps({"account_id": cfg.account_id}),
                         value=dumps({**detail, "event": "snapshot_ready", "account_id": cfg.account_id,
                                      "message": message}))
        producer.flush(30)
    log.info("account %d: delivered %s (%d bytes)", cfg.account_id, day, size)
    return detail


def slot(cfg: SnapshotSettings, day: dt.date) -> dt.datetime:
    """When the day's delivery is due: full as of 01:00, incremental at the 00:00 cutoff."""
    return incremental_cutoff(day) if cfg.kind == "incremental" else full_slot(day)


def run_round(settings: Settings, now: dt.datetime, *, producer=None) -> list[dict]:
    """One scheduling round as of ``now`` (UTC): deliver what is due and not yet delivered."""
    done = []
    day = local_day(now)
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        accounts = settings_store.all_enabled(conn)
        due = [cfg for cfg in accounts if now >= slot(cfg, day) and not _delivered(conn, cfg.account_id, day, cfg.kind)]
    for cfg in due:
        try:
            done.append({"account_id": cfg.account_id, **deliver(settings, cfg, day, producer=producer)})
        except RetriableError as exc:
            log.info("account %d: %s", cfg.account_id, exc)
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others
            log.error("account %d: delivery for %s failed: %s", cfg.account_id, day, exc)
    return done


def run_forever(settings: Settings, stop: threading.Event, interval: float = 30.0, producer=None) -> None:
    while not stop.is_set():
        run_round(settings, dt.datetime.now(dt.timezone.utc), producer=producer)
        stop.wait(interval)
