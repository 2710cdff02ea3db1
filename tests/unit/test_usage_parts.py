"""Usage metering's pure parts: New York months, what an audit record counts, the CSV of the
invoice run, the chart's bars."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from snapsync.control import usage
from snapsync.schemas.errors import ConfigError
from snapsync.web.routers.usage import chart


def test_months_are_new_york_months():
    # 2026-04-01 03:30 UTC is still March 31 in New York
    assert usage.month_of(dt.datetime(2026, 4, 1, 3, 30)) == dt.date(2026, 3, 1)
    assert usage.month_of(dt.datetime(2026, 4, 1, 4, 30)) == dt.date(2026, 4, 1)
    assert usage.month_of(dt.date(2026, 3, 31)) == dt.date(2026, 3, 1)
    assert usage.previous_months(dt.date(2026, 2, 1), 3) == [dt.date(2025, 12, 1), dt.date(2026, 1, 1),
                                                             dt.date(2026, 2, 1)]
    assert len(usage.previous_months(dt.date(2026, 2, 1), 13)) == 13


@pytest.mark.parametrize("text", ["2026-3", "2026-13", "2026-00", "03-2026", "1999-01", "2026-03-01", "", "２０２６-03"])
def test_a_month_that_is_not_one_is_refused_without_quoting_it(text):
    with pytest.raises(ConfigError) as e:
        usage.parse_month(text)
    assert "YYYY-MM" in str(e.value) and (not text or text not in str(e.value))


def test_what_an_audit_record_counts():
    assert usage.applied_items("sync_apply", "override", {}) == ("sync", 1)
    assert usage.applied_items("sync_apply", "create", {}) == ("sync", 1)
    assert usage.applied_items("sync_apply", "initial-override", {"created": 3, "overridden": 2}) == ("sync", 5)
    assert usage.applied_items("sync_apply", "initial-create-only", {"created": 0, "overridden": 0}) is None
    assert usage.applied_items("data_copy_apply", "initial-create-only", {"created": 4}) == ("data_copy", 4)
    assert usage.applied_items("sync_apply", "undo", {"rows": 3}) is None  # an undo is not usage
    assert usage.applied_items("download", "download", {}) is None


def test_the_invoice_csv_and_the_free_sample():
    by_kind = {k: {m: 0 for m in usage.MEASURES} for k in usage.KINDS}
    by_kind["nightly"].update(deliveries=2, rows=10, bytes=100, data_sets=64)
    by_kind["sample"].update(deliveries=1, rows=5, bytes=50, data_sets=32)
    by_kind["sync"].update(sync_items=7)
    s = usage._summary(1, dt.date(2026, 3, 1), by_kind)
    assert s["billable"] == {"deliveries": 2, "rows": 10, "bytes": 100, "data_sets": 64, "sync_items": 7}
    assert s["free"] == {"samples": 1, "rows": 5, "bytes": 50}
    rows = list(csv.DictReader(io.StringIO(usage.to_csv([s]))))
    assert [r["kind"] for r in rows] == [*usage.KINDS, "total"]
    assert rows[-1] == {"account_id": "1", "month": "2026-03", "kind": "total", "billable": "1", "deliveries": "2",
                        "rows": "10", "bytes": "100", "data_sets": "64", "sync_items": "7"}


def test_the_chart_has_a_bar_per_month_scaled_to_the_largest():
    months = [{"month": f"2026-{m:02d}", "billable": {"deliveries": m}} for m in range(1, 14 - 1)]
    months.append({"month": "2027-01", "billable": {"deliveries": 0}})
    bars = chart(months, "deliveries")
    assert len(bars) == 13 and bars[-1]["current"] and not bars[0]["current"]
    assert max(b["h"] for b in bars) == bars[11]["h"] > bars[0]["h"] > 0 == bars[-1]["h"]
    assert all(b["y"] + b["h"] == bars[0]["y"] + bars[0]["h"] for b in bars)  # one baseline
