"""Parsers for query parameters that several list endpoints share: statuses, assignee, times."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from frontdesk.core.errors import ValidationFailed


def parse_statuses(values: list[str], allowed: Sequence[str]) -> list[str]:
    """Read repeated or comma-separated ``status`` values; raise 422 for an unknown one."""
    statuses: list[str] = []
    for value in values:
        for part in value.split(","):
            status = part.strip()
            if not status:
                continue
            if status not in allowed:
                raise ValidationFailed(
                    "status",
                    f"Unknown status '{status}'; use one of {', '.join(allowed)}.",
                    "invalid_status",
                )
            statuses.append(status)
    return statuses


def parse_assignee(value: str | None) -> uuid.UUID | Literal["me", "none"] | None:
    """Read the ``assignee`` filter: a user id, "me", "none", or nothing."""
    if value is None or value == "":
        return None
    if value == "me":
        return "me"
    if value == "none":
        return "none"
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            "assignee", "Use a user id, 'me' or 'none'.", "invalid_assignee"
        ) from exc


def as_utc(value: datetime | None, parameter: str) -> datetime | None:
    """Read a datetime without an offset as UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        # For example 0001-01-01T00:00:00+01:00, which falls before year 1 in UTC.
        raise ValidationFailed(
            parameter,
            "The time is out of range once converted to UTC; use years 1 to 9999.",
            "out_of_range",
        ) from exc


def time_range(
    start: datetime | None, end: datetime | None, names: tuple[str, str]
) -> tuple[datetime | None, datetime | None]:
    """Read a range's two times as UTC; raise ValidationFailed naming the end when the range
    is empty (the end is not after the start)."""
    start_utc, end_utc = as_utc(start, names[0]), as_utc(end, names[1])
    if start_utc is not None and end_utc is not None and end_utc <= start_utc:
        raise ValidationFailed(
            names[1],
            f"'{names[1]}' must be after '{names[0]}'; the range is empty as sent.",
            "invalid_range",
        )
    return start_utc, end_utc
