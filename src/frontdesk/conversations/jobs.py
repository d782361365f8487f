"""Scheduled conversation jobs: reopening snoozed conversations and pruning the search table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.conversations import search, service
from frontdesk.conversations.models import Conversation
from frontdesk.core.db import dialect_name
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork

log = structlog.get_logger()

WAKE_JOB = "conversations.snoozed.wake"
PRUNE_SEARCH_JOB = "conversations.search.prune"
# Conversations reopened per run; the next run, a minute later, takes the rest.
WAKE_BATCH = 500


async def wake_snoozed(uow: UnitOfWork, *, limit: int = WAKE_BATCH) -> int:
    """Reopen snoozed conversations whose snooze time has come; returns how many.

    Each gets a status_changed system message whose ``by`` is null and a
    ``conversation.updated`` event, as a staff change does.
    """
    statement = (
        sa.select(Conversation)
        .where(Conversation.status == "snoozed", Conversation.snoozed_until <= uow.now())
        .order_by(Conversation.snoozed_until, Conversation.id)
        .limit(limit)
    )
    if dialect_name(uow.session) == "postgresql":
        # A conversation a staff request is changing now waits for the next run.
        statement = statement.with_for_update(skip_locked=True)
    conversations = list(await uow.session.scalars(statement))
    for conversation in conversations:
        conversation.status = "open"
        conversation.snoozed_until = None
        conversation.updated_at = uow.now()
        await service.post_system_message(
            uow,
            conversation,
            {
                "event": "status_changed",
                "from": "snoozed",
                "to": "open",
                "snoozed_until": None,
                "by": None,
            },
        )
        service.record_conversation_updated(uow, conversation)
    if conversations:
        log.info("conversations.snoozed_woken", count=len(conversations))
    return len(conversations)


@periodic(WAKE_JOB, every_seconds=60)
async def wake_snoozed_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await wake_snoozed(uow)


@periodic(PRUNE_SEARCH_JOB, every_seconds=3600)
async def prune_search_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Remove search rows of messages deleted with their conversation or workspace."""
    removed = await search.prune_index(uow)
    if removed:
        log.info("conversations.search_pruned", count=removed)
