"""Email analytics: a message's timeline, and rates per period or per template.

Rates count messages, not events: a message opened five times counts once. Opens and clicks
that ``frontdesk.email.machines`` flagged as made by software are left out of the human
rates. Rates are fractions of the messages sent in the period, except click-through, which
is human clicks over human opens.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from frontdesk.core.errors import NotFound, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.models import EmailEvent, EmailMessage

GroupBy = Literal["day", "week", "month", "template"]
MAX_RANGE = timedelta(days=366)


@dataclass
class Row:
    group: str
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    opened: int = 0
    clicked: int = 0
    delivery_rate: float = 0.0
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    open_rate: float = 0.0
    click_rate: float = 0.0
    click_through_rate: float = 0.0
    unsubscribe_rate: float = 0.0


def _exists(event_type: str, *, human: bool = False) -> sa.Exists:
    condition = sa.and_(EmailEvent.email_id == EmailMessage.id, EmailEvent.type == event_type)
    if human:
        condition = sa.and_(condition, EmailEvent.machine_reason.is_(None))
    return sa.exists().where(condition)


def _group_of(sent_at: datetime, template_key: str | None, group_by: GroupBy) -> str:
    if group_by == "template":
        return template_key or "(built-in)"
    if group_by == "day":
        return sent_at.date().isoformat()
    if group_by == "week":
        year, week, _day = sent_at.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{sent_at.year}-{sent_at.month:02d}"


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def aggregate(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    template_key: str | None,
) -> list[Row]:
    """Count the workspace's messages sent in [start, end) and their outcomes, by group."""
    if end <= start:
        raise ValidationFailed(
            "to", "The end of the period must be after its start.", "invalid_range"
        )
    if end - start > MAX_RANGE:
        raise ValidationFailed(
            "to", "Ask for at most 366 days at a time; split longer periods.", "range_too_long"
        )
    query = sa.select(
        EmailMessage.sent_at,
        EmailMessage.template_key,
        _exists("delivered").label("delivered"),
        _exists("bounced").label("bounced"),
        _exists("complained").label("complained"),
        _exists("unsubscribed").label("unsubscribed"),
        _exists("opened", human=True).label("opened"),
        _exists("clicked", human=True).label("clicked"),
    ).where(
        EmailMessage.workspace_id == workspace_id,
        EmailMessage.status == "sent",
        EmailMessage.sent_at >= start,
        EmailMessage.sent_at < end,
    )
    if template_key:
        query = query.where(EmailMessage.template_key == template_key)
    rows: dict[str, Row] = {}
    for (
        sent_at,
        key,
        delivered,
        bounced,
        complained,
        unsubscribed,
        opened,
        clicked,
    ) in await uow.session.execute(query):
        assert sent_at is not None  # the query selects sent messages only
        group = _group_of(sent_at, key, group_by)
        row = rows.setdefault(group, Row(group=group))
        row.sent += 1
        row.delivered += int(bool(delivered))
        row.bounced += int(bool(bounced))
        row.complained += int(bool(complained))
        row.unsubscribed += int(bool(unsubscribed))
        row.opened += int(bool(opened))
        row.clicked += int(bool(clicked))
    for row in rows.values():
        row.delivery_rate = _ratio(row.delivered, row.sent)
        row.bounce_rate = _ratio(row.bounced, row.sent)
        row.complaint_rate = _ratio(row.complained, row.sent)
        row.open_rate = _ratio(row.opened, row.sent)
        row.click_rate = _ratio(row.clicked, row.sent)
        row.click_through_rate = _ratio(row.clicked, row.opened)
        row.unsubscribe_rate = _ratio(row.unsubscribed, row.sent)
    return [rows[group] for group in sorted(rows)]


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    names = [field.name for field in fields(Row)]
    writer.writerow(names)
    for row in rows:
        writer.writerow([getattr(row, name) for name in names])
    return buffer.getvalue()


async def message_events(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, email_id: uuid.UUID
) -> list[EmailEvent]:
    """Return the events of one of the workspace's messages, oldest first."""
    found = await uow.session.scalar(
        sa.select(EmailMessage.id).where(
            EmailMessage.id == email_id, EmailMessage.workspace_id == workspace_id
        )
    )
    if found is None:
        raise NotFound("No such email in this workspace.")
    rows = await uow.session.scalars(
        sa.select(EmailEvent)
        .where(EmailEvent.email_id == email_id)
        .order_by(EmailEvent.occurred_at, EmailEvent.id)
    )
    return list(rows)
