"""The nightly delivery round: every enabled account's snapshot at its New York time.

A round looks at each account with snapshots enabled. When the day's slot has passed
(full: 01:00, incremental: the 00:00 cutoff, see ``schemas/schedule.py``) the slot is
*dispatched* (``control/claims.py``: of several schedulers, one wins) and then either

* **published** as one job on ``<prefix>.export.jobs`` (``snapshot scheduler --jobs``), for
  the ``snapsync export-worker`` processes (``sinks/export_worker.py``) to share; or
* **run here** (``snapshot scheduler``, small installations): the same :func:`run_job` the
  export workers run.

:func:`run_job` claims the slot in the database, exports, and records the delivery
(the state store's ``snapsync_delivery``), the claim's end and the "ready" notification in one transaction;
a failed export is recorded as failed (``snapshot_failed``) and tried again at a later round.
A slot not delivered by its ready-by time (09:00 New York) gets one ``snapshot_late``
notification, whichever scheduler sees it first.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

from snapsync.connectors import sftp
from snapsync.connectors.failures import Backoff, is_transient
from snapsync.connectors.kafka import ensure_topics
from snapsync.connectors.state import connect_state
from snapsync.control import claims, deliveries, destinations, moves, recipients, snapshot_settings, usage
from snapsync.control.notifications import notify
from snapsync.schemas.config import Settings
from snapsync.schemas.control import SnapshotSettings
from snapsync.schemas.errors import ConfigError, RetriableError, SnapsyncError
from snapsync.schemas.events import dumps
from snapsync.schemas.messages import ExportJob
from snapsync.schemas.schedule import full_slot, incremental_cutoff, local_day, ready_by
from snapsync.schemas.topics import export_jobs_topic, notifications_topic
from snapsync.sinks import metrics
from snapsync.sinks.delivery import check_account_root
from snapsync.sinks.export import ExportRequest, export_snapshot
from snapsync.sinks.incremental import wait_for_watermark

log = logging.getLogger("snapsync.scheduler")

#: Partitions of the jobs topic: the most export workers that can share one round.
JOB_PARTITIONS = 12
#: A published job still queued after this long is published again (the broker may have lost it).
REPUBLISH_AFTER = 900.0
#: A failed slot is tried again after this long.
RETRY_AFTER = 300.0


def delivery_root(settings: Settings, account_id: int) -> Path:
    return Path(settings.home).resolve() / "deliveries" / f"account-{account_id}"


def deliver(settings: Settings, cfg: SnapshotSettings, day: dt.date, *, producer=None,
            claim: claims.Claim | None = None) -> dict:
    """Export one account's package for ``day`` and record, audit and announce it. With a
    ``claim``, the delivery is recorded only while the claim is still this owner's.

    Raises:
        claims.LostClaim: the claim was taken over meanwhile (nothing recorded).
    """
    root = check_account_root(delivery_root(settings, cfg.account_id))
    # The selection as of now: a customer that moved to another account since it was saved is
    # dropped (both accounts told, audited) and never delivered to the old account.
    current, _moved = moves.recheck_snapshots(settings, cfg.account_id)
    if current is None or not current.customers:
        raise ConfigError(f"account {cfg.account_id} has no customer left to deliver: each selected one moved to "
                          "another account (its snapshots are disabled; select customers to enable them again)")
    cfg = cfg.model_copy(update={"customers": current.customers})
    cutoff = incremental_cutoff(day).replace(tzinfo=None) if cfg.kind == "incremental" else None
    # Waited for once, here: not recorded as a failure, the next round tries again (RetriableError).
    watermark = wait_for_watermark(settings, cutoff, timeout=5.0) if cutoff is not None else None
    with connect_state(settings) as conn:
        delivery_id = deliveries.start(conn, cfg.account_id, day, cfg.kind, commit=claim is None)
        if claim is not None:  # one transaction: a worker dying after it leaves a record to abandon
            claims.attach_delivery(conn, claim, delivery_id)
        try:
            result = export_snapshot(settings, ExportRequest(
                customers=list(cfg.customers), format=cfg.format, packaging=cfg.packaging,
                container=cfg.container, keep=cfg.keep, kind=cfg.kind, cutoff=cutoff, watermark=watermark,
                account_id=cfg.account_id, meter="none"), root)  # counted below, with the delivery record
        except Exception as exc:
            deliveries.fail(conn, delivery_id, cfg.account_id, day, exc)
            raise
        # Shipped before the delivery is recorded: a worker killed during the upload leaves the
        # slot to be delivered (and shipped) again; a failed upload keeps the local delivery.
        shipped = ship(settings, cfg, result.path)
        size = sum(f["bytes"] for p in result.packages for f in p["files"])
        finished = dt.datetime.now(dt.timezone.utc)
        late = finished > ready_by(day)
        detail = {
            "slot_date": day.isoformat(), "kind": cfg.kind, "format": cfg.format, "packaging": cfg.packaging,
            "path": str(root / "current"), "delivered_path": str(result.path), "bytes": size, "rows": result.rows,
            "late": late, "source_position": result.summary()["source_position"],
            "packages": [{"package": p["package"], "files": p["files"]} for p in result.packages], **shipped,
        }
        cur = conn.cursor()
        try:
            if claim is not None:
                claims.finish(cur, claim)
            deliveries.finish(cur, delivery_id, cfg.account_id, finished, str(result.path), size, result.rows,
                              detail)
            # Usage for the invoice: in the transaction that records the delivery, keyed by it, so a
            # delivery redone after its worker died (a new delivery id, one recorded) counts once.
            used = usage.delivery_event("nightly", f"delivery:{delivery_id}", cfg.account_id, usage.month_of(day),
                                        result.packages, result.rows, size,
                                        {"slot_date": day.isoformat(), "kind": cfg.kind, "format": cfg.format})
            counted = usage.record(cur, used)
            message = _announce(cur, cfg, day, len(result.packages), size, detail)
            conn.commit()
            if counted:
                usage.observe([used])
        except claims.LostClaim:
            conn.rollback()
            cur.execute("UPDATE snapsync_delivery SET status='abandoned', finished_at=UTC_TIMESTAMP(6) "
                        "WHERE delivery_id=%s AND status='running'", (delivery_id,))
            conn.commit()
            raise
    if producer is not None:
        producer.produce(notifications_topic(settings.topic_prefix), key=dumps({"account_id": cfg.account_id}),
                         value=dumps({**detail, "event": "snapshot_ready", "account_id": cfg.account_id,
                                      "message": message}))
        producer.flush(30)
    log.info("account %d: delivered %s (%d bytes)", cfg.account_id, day, size)
    return detail


def _announce(cur, cfg: SnapshotSettings, day: dt.date, packages: int, size: int, detail: dict) -> str:
    """The account's messages about a delivery, in the caller's transaction: ready, and
    whether its upload failed. Returns the "ready" message."""
    message = (f"Your {cfg.kind} data snapshot for {day.isoformat()} is ready: {packages} "
               f"package(s), {size:,} bytes. Download it from Downloads in the Services web app (the server "
               "keeps it under the account's delivery folder, `current`). It replaces the previous "
               "snapshot; download it before the next one is generated.")
    notify(cur, account_id=cfg.account_id, kind="snapshot_ready", message=message, detail=detail)
    if "upload_failed" in detail:
        failed = detail["upload_failed"]
        notify(cur, account_id=cfg.account_id, kind="upload_failed", detail=failed,
               message=f"Your {cfg.kind} data snapshot for {day.isoformat()} could not be uploaded to "
                       f"{failed['url']} ({failed['reason']}). It is kept on the server: download it from "
                       "Downloads in the Services web app; the next snapshot is uploaded as usual.")
    return message


#: SFTP uploads: attempts in all, and the first wait between them (doubling, capped at a minute).
SFTP_ATTEMPTS = 4
SFTP_FIRST_WAIT = 2.0


def ship(settings: Settings, cfg: SnapshotSettings, folder: Path) -> dict:
    """The delivery at ``folder`` uploaded to the account's SFTP drop, when it has one: what
    to add to the delivery's detail (``uploaded`` or ``upload_failed``, with the reason)."""
    dest = destinations.get(settings, cfg.account_id)
    if dest is None:
        return {}
    try:
        host_key, identity = dest.keys()
        remote = sftp.ship(dest.url, host_key, identity, folder, cfg.keep, attempts=SFTP_ATTEMPTS,
                           backoff=Backoff(first=SFTP_FIRST_WAIT, cap=60.0))
    except (SnapsyncError, OSError) as exc:  # reasons of ours, never row values
        reason = str(exc) if isinstance(exc, SnapsyncError) else type(exc).__name__
        log.error("account %d: the upload of %s to %s failed: %s", cfg.account_id, folder.name, dest.url, reason)
        return {"upload_failed": {"url": str(dest.url), "reason": reason}}
    log.info("account %d: uploaded %s to %s", cfg.account_id, folder.name, dest.url)
    return {"uploaded": {"url": str(dest.url), "path": remote}}


class LeaseKeeper:
    """Renews a claim's lease every third of the lease from a daemon thread while the export
    runs; ``alive()`` says whether the last renewal went through recently."""

    def __init__(self, settings: Settings, claim: claims.Claim, lease: float) -> None:
        self.settings, self.claim, self.lease = settings, claim, lease
        self.lost = False
        self.renewed_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(self.lease / 3):
            try:
                conn = conn or connect_state(self.settings)
                if not claims.renew(conn, self.claim, self.lease):
                    self.lost = True
                    log.warning("account %d: the claim for %s was taken over", self.claim.account_id,
                                self.claim.slot_date)
                    break
                self.renewed_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the next renewal tries again; the lease may run out
                log.warning("lease renewal failed (%s)", type(exc).__name__)
                conn = None
        if conn is not None:
            conn.close()


def run_job(settings: Settings, cfg: SnapshotSettings, day: dt.date, owner: str, *, producer=None,
            lease: float = claims.LEASE, keeper: list | None = None) -> dict | claims.Refusal:
    """Claim the account's slot for ``day`` and deliver it; the delivery's detail, or why the
    slot was not claimed. ``keeper`` (a list) receives the running :class:`LeaseKeeper`.

    Raises:
        Exception: a passing failure (``is_transient``: the slot is queued again), or the export
            failed (recorded as failed; tried again at a later round).
    """
    with connect_state(settings) as conn:
        got = claims.claim(conn, cfg.account_id, day, cfg.kind, owner, lease)
    if isinstance(got, claims.Refusal):
        return got
    if got.taken_over:
        log.warning("account %d: took over the claim for %s from %s (its lease ran out)", cfg.account_id, day,
                    got.taken_over)
    started = time.monotonic()
    outcome = "failed"
    try:
        with LeaseKeeper(settings, got, lease) as k:
            if keeper is not None:
                keeper.append(k)
            detail = deliver(settings, cfg, day, producer=producer, claim=got)
        outcome = "delivered"
    except claims.LostClaim:
        outcome = "lost"
        log.warning("account %d: the delivery for %s was not recorded: another owner took the claim", cfg.account_id,
                    day)
        return claims.Refusal("lost", got.owner)
    except Exception as exc:
        if is_transient(exc):  # the database or broker was away, the watermark not reached
            outcome = "retry"
            _end_claim(settings, claims.release, got)
            raise
        _end_claim(settings, claims.fail, got)
        raise
    finally:
        metrics.EXPORTS.labels(cfg.kind, outcome).inc()
        if keeper is not None:
            keeper.clear()
    metrics.EXPORT_SECONDS.labels(cfg.kind, cfg.format).observe(time.monotonic() - started)
    metrics.EXPORT_ROWS.labels(cfg.kind).observe(detail["rows"])
    metrics.EXPORT_BYTES.labels(cfg.kind).observe(detail["bytes"])
    return detail


def _end_claim(settings: Settings, how, claim: claims.Claim) -> None:
    try:
        with connect_state(settings) as conn:
            how(conn, claim)
    except Exception as exc:  # noqa: BLE001 - the lease runs out instead
        log.warning("account %d: could not end the claim (%s); its lease will run out", claim.account_id,
                    type(exc).__name__)


def slot(cfg: SnapshotSettings, day: dt.date) -> dt.datetime:
    """When the day's delivery is due: full as of 01:00, incremental at the 00:00 cutoff."""
    return incremental_cutoff(day) if cfg.kind == "incremental" else full_slot(day)


def check_deadlines(settings: Settings, conn, due: list[SnapshotSettings], day: dt.date, now: dt.datetime,
                    producer=None) -> list[int]:
    """One ``snapshot_late`` notification per due slot not delivered by its ready-by time;
    returns the accounts announced now."""
    if now < ready_by(day):
        return []
    announced = []
    for cfg in due:
        if not claims.mark_late(conn, cfg.account_id, day, cfg.kind):
            conn.commit()
            continue
        message = (f"Your {cfg.kind} data snapshot for {day.isoformat()} was not ready by 09:00 New York time. "
                   "It is still being made; you will get a message when it is ready. The previous snapshot "
                   "stays available.")
        detail = {"slot_date": day.isoformat(), "kind": cfg.kind, "ready_by": ready_by(day).isoformat()}
        notify(conn.cursor(), account_id=cfg.account_id, kind="snapshot_late", message=message, detail=detail)
        conn.commit()
        metrics.DEADLINES_MISSED.inc()
        log.warning("account %d: the %s delivery for %s missed its ready-by time", cfg.account_id, cfg.kind, day)
        announced.append(cfg.account_id)
        if producer is not None:
            producer.produce(notifications_topic(settings.topic_prefix), key=dumps({"account_id": cfg.account_id}),
                             value=dumps({**detail, "event": "snapshot_late", "account_id": cfg.account_id,
                                          "message": message}))
    if announced and producer is not None:
        producer.flush(30)
    return announced


def _round_gauges(conn, due: list[SnapshotSettings], day: dt.date, now: dt.datetime) -> None:
    states = claims.states(conn, day)
    counts = {"queued": 0, "running": 0, "delivered": 0, "failed": 0}
    for cfg in due:
        st = states.get((cfg.account_id, cfg.kind), {"state": "queued"})["state"]
        counts[st] = counts.get(st, 0) + 1
    for st, n in counts.items():
        metrics.ROUND_SLOTS.labels(st).set(n)
    metrics.ROUND_LATE.set(0 if now < ready_by(day) else len(due) - counts["delivered"])


def publish_jobs(settings: Settings, producer, jobs: list[ExportJob]) -> None:
    """Send the jobs to the jobs topic and wait for the broker's acknowledgement.

    Raises:
        RetriableError: the broker did not take them.
    """
    topic = export_jobs_topic(settings.topic_prefix)
    ensure_topics(settings.kafka_bootstrap, [topic], JOB_PARTITIONS)
    errors: list[str] = []
    for job in jobs:
        producer.produce(topic, key=job.key(), value=job.to_json(),
                         on_delivery=lambda err, _m: errors.append(str(err)) if err is not None else None)
    try:
        left = producer.flush(30)
    except SystemError:  # librdkafka's fatal error of a producer whose broker was replaced
        left = len(jobs)  # (``control/broker.py``): not sent; the process starts again on the new one
    if left or errors:
        raise RetriableError(f"the broker did not take {left or len(errors)} export job(s): is it running?")
    metrics.JOBS_PUBLISHED.inc(len(jobs))


def run_round(settings: Settings, now: dt.datetime, *, producer=None, publish: bool = False,
              owner: str | None = None, lease: float = claims.LEASE, republish_after: float | None = None,
              retry_after: float = RETRY_AFTER) -> list[dict]:
    """One scheduling round as of ``now`` (UTC). Publishing: the jobs sent; otherwise the
    deliveries made here."""
    from snapsync.control.processes import process_id

    owner = owner or process_id("scheduler")
    day = local_day(now)
    with connect_state(settings) as conn:
        due = [cfg for cfg in snapshot_settings.all_enabled(conn) if now >= slot(cfg, day)]
        check_deadlines(settings, conn, due, day, now, producer)
        # Run here, a queued slot is tried at every round; published, its job is given time.
        again = (REPUBLISH_AFTER if publish else 0.0) if republish_after is None else republish_after
        dispatched = [cfg for cfg in due if claims.dispatch(conn, cfg.account_id, day, cfg.kind,
                                                            republish_after=again, retry_after=retry_after)]
    recipients.warn_expiring(settings, now.astimezone(dt.timezone.utc).replace(tzinfo=None))
    try:
        if publish:
            jobs = [ExportJob(account_id=cfg.account_id, slot_date=day, kind=cfg.kind,
                              published_at=dt.datetime.now(dt.timezone.utc), publisher=owner) for cfg in dispatched]
            if jobs:
                try:
                    publish_jobs(settings, producer, jobs)
                except RetriableError:
                    with connect_state(settings) as conn:  # not sent: the next round sends them
                        for cfg in dispatched:
                            claims.undispatch(conn, cfg.account_id, day, cfg.kind)
                    raise
                log.info("published %d export job(s) for %s", len(jobs), day)
            return [{"account_id": j.account_id, "slot_date": day.isoformat(), "kind": j.kind, "published": True}
                    for j in jobs]
        done = []
        for cfg in dispatched:
            try:
                result = run_job(settings, cfg, day, owner, producer=producer, lease=lease)
                if not isinstance(result, claims.Refusal):
                    done.append({"account_id": cfg.account_id, **result})
            except RetriableError as exc:
                log.info("account %d: %s", cfg.account_id, exc)
            except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others
                log.error("account %d: delivery for %s failed: %s", cfg.account_id, day, exc)
        return done
    finally:
        with connect_state(settings) as conn:
            _round_gauges(conn, due, day, now)
        metrics.LAST_ROUND.set_to_current_time()


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def file_clock(path: Path):
    """A rehearsal clock: each round's time is the ISO instant written in ``path`` (rewritten
    by whoever drives the rehearsal, as ``snapsync soak`` does to run a night a minute)."""
    from snapsync.schemas.schedule import parse_instant

    def now() -> dt.datetime:
        try:
            return parse_instant(Path(path).read_text().strip())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the clock file {path} does not hold an ISO instant ({type(exc).__name__}): "
                              "write one, e.g. 2026-03-08T01:05Z") from None

    return now


def run_forever(settings: Settings, stop: threading.Event, interval: float = 30.0, producer=None,
                publish: bool = False, owner: str | None = None, on_round=None, clock=wall_clock) -> None:
    """Rounds every ``interval`` seconds until ``stop``; a round that cannot reach the database
    or broker is logged and the next one tries again. ``on_round(ok)`` is called after each.
    ``clock`` gives each round's time (the wall clock, or a rehearsal's :func:`file_clock`)."""
    while not stop.is_set():
        ok = True
        try:
            run_round(settings, clock(), producer=producer, publish=publish, owner=owner)
        except RetriableError as exc:
            ok = False
            log.warning("round skipped: %s", exc)
        if on_round is not None:
            on_round(ok)
        stop.wait(interval)
