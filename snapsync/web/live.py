"""Live notices for open pages: the notifications topic fanned out to browsers.

The worker publishes ``sync_pending`` (a sync-from customer's record changed) and the
scheduler ``snapshot_ready`` on ``<prefix>.notifications``, keyed by ``{"account_id": N}``.
One background consumer per web process reads that topic from its end (no consumer group,
nothing committed: every web process sees every notice) and hands each notice to the
server-sent-event streams of that account's open pages, which show the pop-up.

Tansu answers a waiting fetch only when ``fetch.wait.max.ms`` ends, so it is 50 ms here
(FIELD-NOTES). Tansu may report an end offset behind what is readable; notices older than
the consumer's start are dropped so that a page never pops up stale news.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid

from snapsync.schemas.config import Settings
from snapsync.schemas.topics import notifications_topic

log = logging.getLogger("snapsync.web.live")

#: What a browser is told of a notice: never server paths or row values.
PUBLIC_FIELDS = ("event", "message", "table", "targets")


class NotificationHub:
    """Reads the notifications topic in a thread; subscribers are asyncio queues per account."""

    def __init__(self, settings: Settings) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.topic = notifications_topic(settings.topic_prefix)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self._thread: threading.Thread | None = None
        self._started_ms = 0

    # -- subscribers (the event loop's side) ----------------------------------------------
    def subscribe(self, account_id: int) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        with self._lock:
            self._subscribers.setdefault(account_id, set()).add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, account_id: int, queue: asyncio.Queue) -> None:
        with self._lock:
            subs = self._subscribers.get(account_id, set())
            for item in [s for s in subs if s[1] is queue]:
                subs.discard(item)

    def publish(self, account_id: int, notice: dict | None) -> int:
        """Hand a notice (None: the hub is stopping) to the account's open pages; returns how many."""
        with self._lock:
            targets = list(self._subscribers.get(account_id, ()))
        for loop, queue in targets:
            loop.call_soon_threadsafe(_offer, queue, notice)
        return len(targets)

    # -- the consumer thread --------------------------------------------------------------
    def start(self) -> None:
        self._started_ms = int(time.time() * 1000)
        self._thread = threading.Thread(target=self._run, name="snapsync-web-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            accounts = list(self._subscribers)
        for account in accounts:
            self.publish(account, None)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"snapsync-web-{uuid.uuid4().hex[:12]}",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "allow.auto.create.topics": False,
            "log_level": 3,
        })
        try:
            while not self._stop.is_set() and not self.ready.is_set():
                try:
                    meta = consumer.list_topics(self.topic, timeout=2).topics.get(self.topic)
                except KafkaException:
                    meta = None
                if meta is None or meta.error is not None or not meta.partitions:
                    self._stop.wait(1.0)  # the worker or scheduler creates the topic
                    continue
                consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in sorted(meta.partitions)])
                self.ready.set()
                log.info("live notices: reading %s (%d partitions) from its end", self.topic, len(meta.partitions))
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None or msg.value() is None:
                    continue
                _kind, ts = msg.timestamp()
                if ts and ts < self._started_ms - 1000:
                    continue  # older than this process (Tansu's end offset can lag)
                notice = parse(msg.value())
                if notice is not None:
                    self.publish(notice.pop("account_id"), notice)
        except Exception as exc:  # noqa: BLE001 - a dead consumer only stops the pop-ups
            log.error("live notices stopped: %s", type(exc).__name__)
        finally:
            consumer.close()


def parse(value: bytes) -> dict | None:
    """The public part of a notice, with its account; None when it is not one."""
    try:
        data = json.loads(value)
        account = int(data["account_id"])
    except (ValueError, TypeError, KeyError):
        return None
    return {"account_id": account, **{k: data[k] for k in PUBLIC_FIELDS if k in data}}


def _offer(queue: asyncio.Queue, notice: dict | None) -> None:
    try:
        queue.put_nowait(notice)
    except asyncio.QueueFull:
        pass  # a page that does not read is not waited for
