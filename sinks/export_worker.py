"""``snapsync export-worker``: export jobs from ``<prefix>.export.jobs``, shared by every
export worker through one consumer group (``snapsync-export-<prefix>-<db>``).

For each job, in partition order (the key is the account, so one account's jobs come in
order to one worker):

1. Decode and check it. A malformed job, one for an account without enabled snapshots, or
   one whose slot has not come yet goes to ``<prefix>.dlq`` with the reason; the worker goes on.
2. Claim the slot (``control/claims.py``) and deliver it (``sinks/scheduler.run_job``), renewing
   the claim's lease while exporting. A slot already delivered is skipped. A slot held by
   another owner is waited for: it is either delivered meanwhile, or its owner died and the
   lease runs out, and then this worker takes it over; an owner still renewing after two
   leases is alive and keeps it (the job is skipped; if that owner dies later, the scheduler
   publishes the job again once the lease has run out).
3. Commit the job's offset only then: delivered, recorded failed, skipped or dead-lettered.
   A passing failure (database or broker away, watermark not reached) puts the slot back in
   the queue and the same job is tried again after a back-off.

A worker killed mid-export leaves its job uncommitted: the group gives the partition to
another worker (after ``session.timeout.ms``), which waits for the dead worker's lease to
run out and redoes the job. The delivery folder's lock and write-aside staging keep the
package whole (``sinks/delivery.py``); the claim keeps the delivery recorded once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from snapsync.connectors.kafka import ensure_topics, producer
from snapsync.connectors.metrics import DEAD_LETTERS, Health
from snapsync.connectors.failures import Backoff, dead_letter, is_transient
from snapsync.control import claims, snapshot_settings
from snapsync.control.processes import process_id
from snapsync.schemas.config import Settings
from snapsync.schemas.errors import DataError, RetriableError
from snapsync.schemas.messages import ExportJob
from snapsync.schemas.schedule import local_day
from snapsync.schemas.topics import dead_letter_topic, export_group, export_jobs_topic
from snapsync.sinks import metrics
from snapsync.sinks.scheduler import JOB_PARTITIONS, run_job, slot

log = logging.getLogger("snapsync.export_worker")


def group_id(settings: Settings) -> str:
    return export_group(settings.topic_prefix, settings.db.database)


class ExportWorker:
    """One export worker (see the module docstring).

    Args:
        lease: seconds a claim is held without renewal (renewed every third of it).
        session_timeout: seconds after which the group gives a silent worker's partitions away.
    """

    def __init__(self, settings: Settings, *, lease: float = claims.LEASE, session_timeout: float = 6.0,
                 ident: str | None = None) -> None:
        self.settings = settings
        self.lease = lease
        self.session_timeout = session_timeout
        self.id = ident or process_id("export-worker")
        self.stop_event = threading.Event()
        self.assigned: list[int] | None = None  # None until the group first assigned partitions
        self.loop_at = time.monotonic()
        self.db_ok = True
        self._keeper: list = []
        self._producer = producer(settings.kafka_bootstrap)

    # -- health ---------------------------------------------------------------------------
    def health(self) -> Health:
        return Health(live={"loop": self._live}, ready={"group": self._ready})

    def _live(self) -> tuple[bool, str]:
        if self._keeper:  # exporting: alive while the lease is being renewed
            k = self._keeper[0]
            age = time.monotonic() - k.renewed_at
            return age < self.lease, f"exporting account {k.claim.account_id}; lease renewed {age:.0f}s ago"
        age = time.monotonic() - self.loop_at
        return age < 60, f"job loop turned {age:.1f}s ago"

    def _ready(self) -> tuple[bool, str]:
        if self.assigned is None:
            return False, "not yet in the export workers' group"
        if not self.db_ok:
            return False, "the database cannot be reached"
        return True, f"in the group with partition(s) {self.assigned or 'none (standby)'}"

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        topic = export_jobs_topic(self.settings.topic_prefix)
        ensure_topics(self.settings.kafka_bootstrap, [topic], JOB_PARTITIONS)
        ensure_topics(self.settings.kafka_bootstrap, [dead_letter_topic(self.settings.topic_prefix)], 3)
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka_bootstrap, "group.id": group_id(self.settings),
            "client.id": self.id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": int(self.session_timeout * 1000), "heartbeat.interval.ms": 1000,
            # An export may take long; the claim's lease, not the poll interval, says the worker is alive.
            "max.poll.interval.ms": 6 * 3600 * 1000,
            "fetch.wait.max.ms": 50,  # Tansu answers a waiting fetch only when the wait ends
            "log_level": 4,
        })

        def on_assign(_c, parts):
            self.assigned = sorted(p.partition for p in parts)
            metrics.WORKER_PARTITIONS.set(len(self.assigned))
            log.info("export worker %s: partitions %s", self.id, self.assigned)

        def on_revoke(_c, _parts):
            self.assigned = []
            metrics.WORKER_PARTITIONS.set(0)

        consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        log.info("export worker %s: waiting for jobs on %s", self.id, topic)
        backoff = Backoff(first=1.0, cap=30.0)
        try:
            while not self.stop_event.is_set():
                self.loop_at = time.monotonic()
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error() is not None:
                    log.info("consumer: %s", msg.error().name())
                    continue
                result = self.handle(msg)
                if result == "retry":
                    # Read the same job again after a back-off (the slot is queued again).
                    try:
                        consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                    except KafkaException:
                        pass  # the partition moved to another worker meanwhile: it reads the job again
                    self.stop_event.wait(backoff.next())
                    continue
                backoff.reset()
                metrics.JOBS.labels(result).inc()
                try:
                    consumer.commit(message=msg, asynchronous=False)
                except KafkaException as exc:
                    # The partition moved on (a rebalance): its next owner finds the claim settled.
                    log.info("offset of a finished job not committed (%s)", exc.args[0].name() if exc.args else exc)
        finally:
            consumer.close()
            self._producer.flush(10)

    # -- one job --------------------------------------------------------------------------
    def handle(self, msg) -> str:
        """``done``, ``skipped``, ``dead_letter`` or ``retry``."""
        where = (msg.topic(), msg.partition(), msg.offset())
        try:
            job = self.decode(msg.key(), msg.value())
            cfg = snapshot_settings.get(self.settings, job.account_id)
            self.db_ok = True
        except DataError as exc:
            return self.dead_letter(where, msg.key(), msg.value(), str(exc))
        except Exception as exc:  # noqa: BLE001 - classified
            if not is_transient(exc):
                raise
            self.db_ok = False
            log.warning("job %s[%d]@%d: the database cannot be reached (%s); trying again", *where,
                        type(exc).__name__)
            return "retry"
        if cfg is None or not cfg.enabled:
            return self.dead_letter(where, msg.key(), msg.value(),
                                    f"account {job.account_id} has no enabled snapshot settings")
        now = dt.datetime.now(dt.timezone.utc)
        if now < slot(cfg, job.slot_date) or job.slot_date > local_day(now):
            return self.dead_letter(where, msg.key(), msg.value(), f"the job's slot ({job.slot_date}) has not come yet")
        if cfg.kind != job.kind:
            log.info("account %d: job for a %s delivery, but the account now takes %s: skipped (the scheduler "
                     "publishes the right one)", job.account_id, job.kind, cfg.kind)
            return "skipped"
        return self.run_claimed(cfg, job.slot_date)

    def run_claimed(self, cfg, day: dt.date) -> str:
        waited_since = None
        while True:
            try:
                result = run_job(self.settings, cfg, day, self.id, producer=self._producer, lease=self.lease,
                                 keeper=self._keeper)
            except Exception as exc:  # noqa: BLE001 - classified
                if is_transient(exc):
                    log.warning("account %d: %s; the job will be tried again", cfg.account_id,
                                exc if isinstance(exc, RetriableError) else type(exc).__name__)
                    return "retry"
                log.error("account %d: delivery for %s failed (%s); recorded, a later round tries again",
                          cfg.account_id, day, type(exc).__name__)
                return "done"
            if not isinstance(result, claims.Refusal):
                return "done"
            if result.state != "held":
                return "skipped"  # delivered already, or lost to another owner
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since > 2 * self.lease:
                log.info("account %d: %s keeps renewing its claim for %s: it is alive; job skipped", cfg.account_id,
                         result.owner, day)
                return "skipped"
            log.info("account %d: claim for %s held by %s for %.1fs more; waiting", cfg.account_id, day,
                     result.owner, result.lease_left)
            if self.stop_event.wait(min(max(result.lease_left, 0.2) + 0.1, self.lease)):
                return "retry"

    @staticmethod
    def decode(key: bytes | None, value: bytes | None) -> ExportJob:
        """Raises DataError with a value-free reason."""
        try:
            job = ExportJob.from_json(value)
        except ValueError as exc:
            fields = sorted({str(e["loc"][0]) for e in getattr(exc, "errors", lambda: [])() if e.get("loc")})
            raise DataError("malformed export job" + (f" (fields: {', '.join(fields)})" if fields else "")) from None
        if key is not None and key != job.key():
            raise DataError("the job's key is not its account")
        return job

    def dead_letter(self, where: tuple[str, int, int], key, value, reason: str) -> str:
        """Send the job to the dead-letter topic with the reason: ``dead_letter``, or ``retry``
        when the broker did not take it."""
        topic, partition, offset = where
        log.warning("dead letter from %s[%d]@%d: %s", topic, partition, offset, reason)
        letter = dead_letter(topic, partition, offset, key, value, reason)
        self._producer.produce(dead_letter_topic(self.settings.topic_prefix), key=letter.key, value=letter.value,
                               headers=letter.headers)
        if self._producer.flush(30):
            log.warning("the broker did not take the dead letter; the job will be read again")
            return "retry"
        DEAD_LETTERS.labels(topic).inc()
        return "dead_letter"
