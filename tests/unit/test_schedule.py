import datetime as dt

import pytest

from snapsync.schemas.schedule import full_slot, incremental_cutoff, local_day, parse_instant, ready_by

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "day, full_utc, cutoff_utc, ready_utc",
    [
        # spring forward 2026-03-08 02:00 EST -> 03:00 EDT
        (dt.date(2026, 3, 7), dt.datetime(2026, 3, 7, 6, tzinfo=UTC), dt.datetime(2026, 3, 7, 5, tzinfo=UTC),
         dt.datetime(2026, 3, 7, 14, tzinfo=UTC)),
        (dt.date(2026, 3, 8), dt.datetime(2026, 3, 8, 6, tzinfo=UTC), dt.datetime(2026, 3, 8, 5, tzinfo=UTC),
         dt.datetime(2026, 3, 8, 13, tzinfo=UTC)),
        (dt.date(2026, 3, 9), dt.datetime(2026, 3, 9, 5, tzinfo=UTC), dt.datetime(2026, 3, 9, 4, tzinfo=UTC),
         dt.datetime(2026, 3, 9, 13, tzinfo=UTC)),
        # fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:00 happens twice, the first is used
        (dt.date(2026, 11, 1), dt.datetime(2026, 11, 1, 5, tzinfo=UTC), dt.datetime(2026, 11, 1, 4, tzinfo=UTC),
         dt.datetime(2026, 11, 1, 14, tzinfo=UTC)),
        (dt.date(2026, 11, 2), dt.datetime(2026, 11, 2, 6, tzinfo=UTC), dt.datetime(2026, 11, 2, 5, tzinfo=UTC),
         dt.datetime(2026, 11, 2, 14, tzinfo=UTC)),
    ],
)
def test_schedule_times_across_dst(day, full_utc, cutoff_utc, ready_utc):
    assert full_slot(day) == full_utc
    assert incremental_cutoff(day) == cutoff_utc
    assert ready_by(day) == ready_utc


def test_windows_are_23_and_25_hours_on_dst_days():
    assert incremental_cutoff(dt.date(2026, 3, 9)) - incremental_cutoff(dt.date(2026, 3, 8)) == dt.timedelta(hours=23)
    assert incremental_cutoff(dt.date(2026, 11, 2)) - incremental_cutoff(dt.date(2026, 11, 1)) == dt.timedelta(hours=25)


def test_parse_instant_and_local_day():
    assert parse_instant("2026-03-08T01:30") == dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert parse_instant("2026-03-08T06:30Z") == dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert local_day(dt.datetime(2026, 11, 1, 3, 59, tzinfo=UTC)) == dt.date(2026, 10, 31)
    with pytest.raises(ValueError, match="not an ISO"):
        parse_instant("yesterday")


def test_delta_windows_close_at_new_york_midnight_across_dst():
    from snapsync.streams.deltas import window_cutoff

    def ms(text):
        return int(parse_instant(text).timestamp() * 1000)

    # a change at 23:59:59 on 2026-03-07 belongs to the window closed by 2026-03-08 00:00 EST
    assert window_cutoff(ms("2026-03-07T23:59:59")) == dt.datetime(2026, 3, 8, 5, 0)
    assert window_cutoff(ms("2026-03-08T00:00:00")) == dt.datetime(2026, 3, 8, 5, 0)  # at the cutoff: in
    assert window_cutoff(ms("2026-03-08T00:00:01")) == dt.datetime(2026, 3, 9, 4, 0)  # the 23-hour day
    assert window_cutoff(ms("2026-11-01T01:30:00")) == dt.datetime(2026, 11, 2, 5, 0)  # the 25-hour day
    assert window_cutoff(ms("2026-10-31T23:00:00")) == dt.datetime(2026, 11, 1, 4, 0)
