"""Snapshot schedule times, in America/New_York (docs/contracts.md, contract 6).

* Full snapshot: as of 01:00 local on the scheduled day.
* Incremental cutoff: 00:00 local (changes committed up to midnight).
* Ready by: 09:00 local.

On the fall-back day (2026-11-01) 01:00 happens twice; the schedule uses the first
(01:00 EDT = 05:00 UTC), so the delivery is never an hour late. On the spring-forward
day (2026-03-08) 01:00 EST exists once (the gap is 02:00-03:00). Midnight is never
ambiguous in New York.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
FULL_AT = dt.time(1, 0)
CUTOFF_AT = dt.time(0, 0)
READY_BY = dt.time(9, 0)


def local_to_utc(day: dt.date, at: dt.time) -> dt.datetime:
    """The UTC instant of ``day at`` in New York (first occurrence when repeated)."""
    return dt.datetime.combine(day, at, tzinfo=NY).replace(fold=0).astimezone(dt.timezone.utc)


def full_slot(day: dt.date) -> dt.datetime:
    return local_to_utc(day, FULL_AT)


def incremental_cutoff(day: dt.date) -> dt.datetime:
    return local_to_utc(day, CUTOFF_AT)


def ready_by(day: dt.date) -> dt.datetime:
    return local_to_utc(day, READY_BY)


def local_day(instant_utc: dt.datetime) -> dt.date:
    return instant_utc.astimezone(NY).date()


def parse_instant(text: str) -> dt.datetime:
    """ISO date-time; without an offset it is New York local time."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date-time (e.g. 2026-03-08T01:05 or 2026-03-08T06:05Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=NY)
    return t.astimezone(dt.timezone.utc)
