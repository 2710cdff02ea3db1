"""Times as the product shows them: America/New_York (contract 6)."""

from __future__ import annotations

import datetime as dt

from snapsync.schemas.schedule import NY  # the one zone of the product


def local(utc_iso: str) -> str:
    """``2026-03-08T06:30:00.123`` (UTC, naive) -> ``2026-03-08 01:30 EST``."""
    t = dt.datetime.fromisoformat(utc_iso)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(NY).strftime("%Y-%m-%d %H:%M %Z")


def day_start_utc(day: dt.date) -> dt.datetime:
    """The instant a New York day starts, as naive UTC (how the control tables store time)."""
    return dt.datetime.combine(day, dt.time(0), NY).astimezone(dt.timezone.utc).replace(tzinfo=None)
