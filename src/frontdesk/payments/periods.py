"""Billing period arithmetic: weeks, months and years counted from an anchor.

Every boundary is computed from the anchor, never from the previous boundary, so a month
end that had to be clamped does not drift: with an anchor on January 31 the boundaries are
February 28 (29 in leap years), March 31, April 30 and so on. Times keep the anchor's time
of day and time zone.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

INTERVALS = ("week", "month", "year")
# The largest interval_count per interval; longer periods are not billing periods.
MAX_INTERVAL_COUNT = {"week": 52, "month": 52, "year": 3}


def add_months(moment: datetime, months: int) -> datetime:
    """Move ``moment`` by whole months, clamping the day to the target month's last day."""
    month_index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def boundary(anchor: datetime, interval: str, interval_count: int, index: int) -> datetime:
    """Return the start of period ``index`` counted from ``anchor`` (index 0 is the anchor)."""
    if interval == "week":
        return anchor + timedelta(weeks=interval_count * index)
    if interval == "month":
        return add_months(anchor, interval_count * index)
    if interval == "year":
        return add_months(anchor, 12 * interval_count * index)
    raise ValueError(f"unknown interval {interval!r}; use week, month or year")


def period_index(anchor: datetime, interval: str, interval_count: int, at: datetime) -> int:
    """Return the index of the period that contains ``at``; negative before the anchor."""
    # A first guess from the shortest possible period length, then exact steps.
    shortest_days = {"week": 7, "month": 28, "year": 365}[interval] * interval_count
    index = (at - anchor).days // shortest_days
    while boundary(anchor, interval, interval_count, index) > at:
        index -= 1
    while boundary(anchor, interval, interval_count, index + 1) <= at:
        index += 1
    return index


def period_containing(
    anchor: datetime, interval: str, interval_count: int, at: datetime
) -> tuple[datetime, datetime]:
    """Return the (start, end) of the period that contains ``at``; the end is exclusive."""
    index = period_index(anchor, interval, interval_count, at)
    return (
        boundary(anchor, interval, interval_count, index),
        boundary(anchor, interval, interval_count, index + 1),
    )
