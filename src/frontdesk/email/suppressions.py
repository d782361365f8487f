"""The suppression list: addresses a workspace no longer mails, checked before every send.

Hard bounces, complaints and unsubscribes add an address automatically; an admin can add one
by hand and lift any entry. Addresses are compared lower-cased.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import NotFound
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.models import EmailSuppression
from frontdesk.email.schemas import SuppressionOut, SuppressionPage

log = structlog.get_logger()

REASONS = ("hard_bounce", "complaint", "unsubscribe", "manual")


def normalize_address(address: str) -> str:
    return address.strip().lower()


async def find_suppression(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, address: str
) -> EmailSuppression | None:
    result: EmailSuppression | None = await uow.session.scalar(
        sa.select(EmailSuppression).where(
            EmailSuppression.workspace_id == workspace_id,
            EmailSuppression.address == normalize_address(address),
        )
    )
    return result


async def suppress(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    address: str,
    reason: str,
    source: str,
    detail: str | None = None,
    email_id: uuid.UUID | None = None,
) -> EmailSuppression:
    """Add the address to the list, or return its entry when it is already there."""
    existing = await find_suppression(uow, workspace_id=workspace_id, address=address)
    if existing is not None:
        return existing
    entry = EmailSuppression(
        id=uuid7(),
        workspace_id=workspace_id,
        address=normalize_address(address),
        reason=reason,
        source=source,
        detail=(detail or None) and detail[:2000],
        email_id=email_id,
        created_at=uow.now(),
    )
    # A savepoint, so that an entry added at the same time elsewhere does not end the caller's
    # transaction.
    try:
        async with uow.session.begin_nested():
            uow.session.add(entry)
    except sa.exc.IntegrityError:
        raced = await find_suppression(uow, workspace_id=workspace_id, address=address)
        assert raced is not None
        return raced
    uow.record_event(
        "email.suppression.added",
        {"id": str(entry.id), "reason": reason, "source": source},
        workspace_id=workspace_id,
    )
    log.info(
        "email.suppression_added",
        workspace_id=str(workspace_id),
        suppression_id=str(entry.id),
        reason=reason,
        source=source,
    )
    return entry


async def list_suppressions(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    address: str | None,
    reason: str | None,
    cursor: str | None,
    limit: int,
) -> SuppressionPage:
    query = sa.select(EmailSuppression).where(EmailSuppression.workspace_id == workspace_id)
    if address:
        query = query.where(EmailSuppression.address == normalize_address(address))
    if reason:
        query = query.where(EmailSuppression.reason == reason)
    rows, next_cursor = await fetch_newest_first(
        uow.session, query, EmailSuppression, cursor=cursor, limit=limit
    )
    return SuppressionPage(
        items=[SuppressionOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


async def lift(uow: UnitOfWork, *, workspace_id: uuid.UUID, suppression_id: uuid.UUID) -> None:
    """Remove an entry, so the address receives mail again."""
    entry = await uow.session.scalar(
        sa.select(EmailSuppression).where(
            EmailSuppression.id == suppression_id, EmailSuppression.workspace_id == workspace_id
        )
    )
    if entry is None:
        raise NotFound("No such suppression in this workspace.")
    await uow.session.delete(entry)
    uow.record_event(
        "email.suppression.lifted", {"id": str(suppression_id)}, workspace_id=workspace_id
    )
    log.info(
        "email.suppression_lifted",
        workspace_id=str(workspace_id),
        suppression_id=str(suppression_id),
    )
