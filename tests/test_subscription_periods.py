"""Billing period arithmetic: fixed cases and properties checked with Hypothesis."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from frontdesk.payments.periods import (
    MAX_INTERVAL_COUNT,
    add_months,
    boundary,
    period_containing,
    period_index,
)


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, 30, tzinfo=UTC)


anchors = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
plans = st.sampled_from(["week", "month", "year"]).flatmap(
    lambda interval: st.tuples(
        st.just(interval), st.integers(min_value=1, max_value=MAX_INTERVAL_COUNT[interval])
    )
)


def test_month_end_clamped_then_restored() -> None:
    anchor = at(2026, 1, 31)
    assert boundary(anchor, "month", 1, 1) == at(2026, 2, 28)
    assert boundary(anchor, "month", 1, 2) == at(2026, 3, 31)
    assert boundary(anchor, "month", 1, 3) == at(2026, 4, 30)


def test_leap_february() -> None:
    assert boundary(at(2028, 1, 31), "month", 1, 1) == at(2028, 2, 29)
    assert boundary(at(2028, 2, 29), "year", 1, 1) == at(2029, 2, 28)
    assert boundary(at(2028, 2, 29), "year", 1, 4) == at(2032, 2, 29)


def test_weeks_and_counts() -> None:
    anchor = at(2026, 12, 28)
    assert boundary(anchor, "week", 2, 1) == at(2027, 1, 11)
    assert boundary(anchor, "month", 3, 1) == at(2027, 3, 28)
    assert boundary(at(2026, 11, 30), "month", 3, 1) == at(2027, 2, 28)


def test_unknown_interval_rejected() -> None:
    try:
        boundary(at(2026, 1, 1), "day", 1, 1)
    except ValueError as error:
        assert "day" in str(error)
    else:
        raise AssertionError("boundary accepted the interval 'day'")


@given(anchors, st.integers(min_value=-600, max_value=600))
def test_add_months_keeps_day_or_clamps(moment: datetime, months: int) -> None:
    moved = add_months(moment, months)
    last_day = calendar.monthrange(moved.year, moved.month)[1]
    assert moved.day == min(moment.day, last_day)
    assert (moved.year * 12 + moved.month) - (moment.year * 12 + moment.month) == months
    assert moved.time() == moment.time()


@given(anchors, plans, st.integers(min_value=0, max_value=120))
def test_boundaries_strictly_increase(anchor: datetime, plan: tuple[str, int], index: int) -> None:
    interval, count = plan
    start = boundary(anchor, interval, count, index)
    end = boundary(anchor, interval, count, index + 1)
    assert start < end
    days = (end - start).days
    shortest = {"week": 7, "month": 28, "year": 365}[interval] * count
    longest = {"week": 7, "month": 31, "year": 366}[interval] * count
    assert shortest <= days <= longest


@given(anchors, plans, st.integers(min_value=0, max_value=120))
def test_boundaries_anchored_to_start_day(
    anchor: datetime, plan: tuple[str, int], index: int
) -> None:
    interval, count = plan
    if interval == "week":
        return
    moment = boundary(anchor, interval, count, index)
    last_day = calendar.monthrange(moment.year, moment.month)[1]
    assert moment.day == min(anchor.day, last_day)


@given(anchors, plans, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_period_contains_moment(anchor: datetime, plan: tuple[str, int], offset: timedelta) -> None:
    interval, count = plan
    moment = anchor + offset
    start, end = period_containing(anchor, interval, count, moment)
    assert start <= moment < end
    index = period_index(anchor, interval, count, moment)
    assert boundary(anchor, interval, count, index) == start
    assert index >= 0


@given(anchors, plans, st.integers(min_value=0, max_value=200))
def test_boundary_starts_its_own_period(
    anchor: datetime, plan: tuple[str, int], index: int
) -> None:
    interval, count = plan
    moment = boundary(anchor, interval, count, index)
    assert period_index(anchor, interval, count, moment) == index
    just_before = moment - timedelta(microseconds=1)
    assert period_index(anchor, interval, count, just_before) == index - 1
