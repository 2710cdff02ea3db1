"""Metrics and health of ``snapsync capture`` (read from its ``CaptureStats`` at scrape time,
so the capture loop itself does no metric work).

* ``snapsync_capture_lag_seconds``: now minus the commit time of the newest binlog event read.
  Capture writes a heartbeat row every ``--heartbeat-interval`` (1 s) and reads it back, so on
  a caught-up capture this stays near the interval even when the source is quiet; a capture
  that stalls or reads a backlog shows it growing. With heartbeats off (0) a quiet source
  looks like lag.
* ``snapsync_capture_events_total`` and ``snapsync_capture_events_per_second`` (over the last
  10 s): row changes produced while streaming.
* ``snapsync_capture_binlog_file_number`` / ``snapsync_capture_binlog_position``: the position
  of the last row event read (the restart point until one is read); ``..._restart_*``: the
  restart point last stored.

Labelled by the connector name (several captures may run against one server).
"""

from __future__ import annotations

import collections
import time
import weakref

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from snapsync.connectors.metrics import Health, PeriodicMonitor

STATES = ("starting", "snapshot", "streaming", "paused", "stopped", "failed")


def _file_number(name: str | None) -> int:
    try:
        return int(str(name).rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


class CaptureMonitor(PeriodicMonitor):
    """Watches one running ``Capture``: samples its event count every second for the rate,
    and gives the health checks of its metrics port."""

    WINDOW = 10.0

    def __init__(self, capture, *, stall_after: float = 30.0) -> None:
        super().__init__(_COLLECTOR, "capture-rate", 1.0)
        self.capture = capture
        self.stall_after = stall_after
        self.samples: collections.deque = collections.deque(maxlen=int(self.WINDOW) + 1)

    def tick(self) -> None:
        self.samples.append((time.monotonic(), self.capture.stats.streamed_rows))

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def lag(self) -> float | None:
        ts = self.capture.stats.source_ts
        return None if ts is None else max(0.0, time.time() - ts)

    def health(self) -> Health:
        return Health(live={"capture": self._live}, ready={"streaming": self._ready})

    def _live(self) -> tuple[bool, str]:
        st = self.capture.stats
        if st.state == "failed":
            return False, "capture stopped on an error (see its log)"
        if st.state != "streaming":
            return True, f"capture is {st.state}"
        age = time.monotonic() - st.loop_at
        return age < self.stall_after, f"the streaming loop turned {age:.1f}s ago"

    def _ready(self) -> tuple[bool, str]:
        st = self.capture.stats
        if st.state != "streaming":
            return False, f"capture is {st.state}, not streaming"
        lag = self.lag()
        return True, f"streaming; {'no event read yet' if lag is None else f'lag {lag:.1f}s'}"


class _CaptureCollector:
    def __init__(self) -> None:
        self.monitors: weakref.WeakSet = weakref.WeakSet()

    def collect(self):
        lag = GaugeMetricFamily("snapsync_capture_lag_seconds",
                                "Now minus the source commit time of the newest binlog event read.",
                                labels=["connector"])
        rate = GaugeMetricFamily("snapsync_capture_events_per_second",
                                 "Row changes produced per second over the last 10 s.", labels=["connector"])
        events = CounterMetricFamily("snapsync_capture_events", "Row changes produced while streaming.",
                                     labels=["connector"])
        snap = CounterMetricFamily("snapsync_capture_snapshot_rows", "Rows produced by the initial snapshot.",
                                   labels=["connector"])
        beats = CounterMetricFamily("snapsync_capture_heartbeats",
                                    "Heartbeats read back and published (watermarks).", labels=["connector"])
        fileno = GaugeMetricFamily("snapsync_capture_binlog_file_number",
                                   "Number of the binlog file of the last row event read.", labels=["connector"])
        pos = GaugeMetricFamily("snapsync_capture_binlog_position",
                                "Byte position of the last row event read in its binlog file.", labels=["connector"])
        rfile = GaugeMetricFamily("snapsync_capture_restart_file_number",
                                  "Binlog file number of the restart point last stored.", labels=["connector"])
        rpos = GaugeMetricFamily("snapsync_capture_restart_position",
                                 "Byte position of the restart point last stored.", labels=["connector"])
        state = GaugeMetricFamily("snapsync_capture_state", "1 for the state capture is in.",
                                  labels=["connector", "state"])
        for m in list(self.monitors):
            name, st = m.capture.connector, m.capture.stats
            if (value := m.lag()) is not None:
                lag.add_metric([name], value)
            rate.add_metric([name], m.rate())
            events.add_metric([name], st.streamed_rows)
            snap.add_metric([name], st.snapshot_rows)
            beats.add_metric([name], st.heartbeats)
            at = st.last_position or st.restart_point  # before the first row change: where it resumed
            if at is not None:
                fileno.add_metric([name], _file_number(at.file))
                pos.add_metric([name], at.pos)
            if st.restart_point is not None:
                rfile.add_metric([name], _file_number(st.restart_point.file))
                rpos.add_metric([name], st.restart_point.pos)
            for s in STATES:
                state.add_metric([name, s], 1.0 if st.state == s else 0.0)
        yield from (lag, rate, events, snap, beats, fileno, pos, rfile, rpos, state)

    def describe(self):
        return []


_COLLECTOR = _CaptureCollector()
REGISTRY.register(_COLLECTOR)
