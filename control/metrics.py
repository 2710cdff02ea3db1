"""Metrics of the control plane; docs/operations.md lists them.

Labels are fixed words (what was counted and which measure): never an account's id or data
(thousands of series); ``snapsync usage`` and the Usage page give the per-account figures.
"""

from __future__ import annotations

from prometheus_client import Counter

#: What usage metering recorded in this process (``control/usage.py``), counted once per
#: usage event newly recorded (a replayed delivery or a moved audit record adds nothing).
USAGE = Counter(
    "snapsync_usage_total",
    "Usage recorded for invoices, by kind (nightly, manual, sample: free, sync, data_copy) and measure "
    "(deliveries, rows, bytes, data_sets, sync_items).", ["kind", "measure"])
