"""Delivery and engagement events of sent messages: storing them once and applying them.

Provider webhooks and Frontdesk's own open pixel and click redirects store events here. A
stored event is applied by the ``email.events.process`` job, in its own transaction after
the webhook responded: it moves the message's delivery status forward, flags opens and clicks
made by software, and adds hard bounces, complaints and unsubscribes to the suppression list.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.db import dialect_name
from frontdesk.core.ids import uuid7
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.machines import machine_reason
from frontdesk.email.models import EmailEvent, EmailMessage
from frontdesk.email.suppressions import suppress
from frontdesk.email.webhooks import ProviderEvent

log = structlog.get_logger()

PROCESS_JOB = "email.events.process"
BATCH_SIZE = 500

# Delivery states by how far a message got. The status only moves to a higher rank, so an
# event that arrives late ("delivered" after "bounced" was applied) changes nothing.
_DELIVERY_RANK = {
    "queued": 0,
    "sent": 1,
    "deferred": 2,
    "delivered": 3,
    "bounced": 4,
    "rejected": 4,
    "failed": 4,
    "complained": 5,
}
_SUPPRESSING = {"complained": "complaint", "unsubscribed": "unsubscribe"}


def _truncate(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


async def _find_message(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: ProviderEvent
) -> EmailMessage | None:
    """Find the message an event is about: by the provider's id, else by its Message-ID."""
    conditions: list[sa.ColumnElement[bool]] = []
    if event.provider_message_id:
        ids = {event.provider_message_id}
        if event.provider == "sendgrid":
            # sg_message_id is the X-Message-Id of the send, then ".filter…".
            ids.add(event.provider_message_id.split(".", 1)[0])
        conditions.append(EmailMessage.provider_message_id.in_(ids))
    if event.message_id_header:
        conditions.append(EmailMessage.message_id == event.message_id_header)
    if not conditions:
        return None
    result: EmailMessage | None = await uow.session.scalar(
        sa.select(EmailMessage)
        .where(EmailMessage.workspace_id == workspace_id, sa.or_(*conditions))
        .limit(1)
    )
    return result


async def _insert_once(uow: UnitOfWork, event: EmailEvent) -> bool:
    """Insert the event unless one with its provider and provider id is stored; True if new."""
    exists = await uow.session.scalar(
        sa.select(EmailEvent.id).where(
            EmailEvent.workspace_id == event.workspace_id,
            EmailEvent.provider == event.provider,
            EmailEvent.provider_event_id == event.provider_event_id,
        )
    )
    if exists is not None:
        return False
    try:
        async with uow.session.begin_nested():
            uow.session.add(event)
    except sa.exc.IntegrityError:
        # The same delivery arrived twice at once; the other one stored it.
        return False
    return True


async def store_provider_events(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, events: Sequence[ProviderEvent]
) -> int:
    """Store the events that are new and queue their processing; return how many were new."""
    now = uow.now()
    stored = 0
    for event in events:
        message = await _find_message(uow, workspace_id, event)
        row = EmailEvent(
            id=uuid7(),
            workspace_id=workspace_id,
            email_id=message.id if message else None,
            provider=str(event.provider),
            provider_event_id=event.event_id[:200],
            type=str(event.type),
            occurred_at=event.occurred_at,
            recipient=_truncate(event.recipient, 320),
            bounce_kind=event.bounce_kind,
            reason=_truncate(event.reason, 4000),
            url=_truncate(event.url, 4000),
            user_agent=_truncate(event.user_agent, 500),
            ip=_truncate(event.ip, 64),
            machine_reason="provider_flag" if event.machine_hint else None,
            received_at=now,
            processed_at=None,
        )
        if await _insert_once(uow, row):
            stored += 1
    if stored:
        uow.enqueue(PROCESS_JOB, {"workspace_id": str(workspace_id)}, workspace_id=workspace_id)
    return stored


async def record_engagement(
    uow: UnitOfWork,
    *,
    message: EmailMessage,
    event_type: str,
    url: str | None,
    user_agent: str | None,
    ip: str | None,
    method: str,
) -> None:
    """Store an open or click seen by Frontdesk's own pixel or redirect."""
    assert message.workspace_id is not None
    now = uow.now()
    reference = message.sent_at
    seconds = (now - reference).total_seconds() if reference else None
    row = EmailEvent(
        id=uuid7(),
        workspace_id=message.workspace_id,
        email_id=message.id,
        provider="frontdesk",
        provider_event_id=str(uuid7()),
        type=event_type,
        occurred_at=now,
        recipient=message.to_address,
        url=_truncate(url, 4000),
        user_agent=_truncate(user_agent, 500),
        ip=_truncate(ip, 64),
        machine_reason=machine_reason(
            event_type=event_type,
            user_agent=user_agent,
            seconds_after_delivery=seconds,
            method=method,
        ),
        received_at=now,
        processed_at=now,
    )
    uow.session.add(row)
    log.info(
        "email.engagement",
        email_id=str(message.id),
        type=event_type,
        machine_reason=row.machine_reason,
    )


async def _delivered_at(uow: UnitOfWork, email_id: uuid.UUID) -> datetime | None:
    result: datetime | None = await uow.session.scalar(
        sa.select(sa.func.min(EmailEvent.occurred_at)).where(
            EmailEvent.email_id == email_id, EmailEvent.type == "delivered"
        )
    )
    return result


async def _apply(uow: UnitOfWork, event: EmailEvent) -> None:
    message = await uow.session.get(EmailMessage, event.email_id) if event.email_id else None
    if message is not None:
        rank = _DELIVERY_RANK.get(event.type)
        current = _DELIVERY_RANK.get(message.delivery_status or "queued", 0)
        if event.type in ("opened", "clicked"):
            # Someone or something fetched it, so it was delivered.
            rank = _DELIVERY_RANK["delivered"]
            new_status = "delivered"
        else:
            new_status = event.type
        if rank is not None and rank > current:
            message.delivery_status = new_status
        if event.type in ("opened", "clicked") and event.machine_reason is None:
            delivered = await _delivered_at(uow, message.id) or message.sent_at
            seconds = (event.occurred_at - delivered).total_seconds() if delivered else None
            event.machine_reason = machine_reason(
                event_type=event.type, user_agent=event.user_agent, seconds_after_delivery=seconds
            )

    address = event.recipient or (message.to_address if message else None)
    reason = _SUPPRESSING.get(event.type)
    if event.type == "bounced" and event.bounce_kind == "hard":
        reason = "hard_bounce"
    if reason and address:
        await suppress(
            uow,
            workspace_id=event.workspace_id,
            address=address,
            reason=reason,
            source=event.provider,
            detail=event.reason,
            email_id=event.email_id,
        )
    event.processed_at = uow.now()


@job_handler(PROCESS_JOB)
async def process_events(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Apply the workspace's stored events that are not processed yet, oldest first."""
    workspace_id = uuid.UUID(payload["workspace_id"])
    query = (
        sa.select(EmailEvent)
        .where(EmailEvent.workspace_id == workspace_id, EmailEvent.processed_at.is_(None))
        .order_by(EmailEvent.occurred_at, EmailEvent.id)
        .limit(BATCH_SIZE)
    )
    if dialect_name(uow.session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    events = list(await uow.session.scalars(query))
    for event in events:
        await _apply(uow, event)
    if len(events) == BATCH_SIZE:
        uow.enqueue(PROCESS_JOB, payload, workspace_id=workspace_id)
    log.info("email.events_processed", workspace_id=str(workspace_id), count=len(events))
