"""Staff view of website chat visitors: look one up and revoke its token."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from frontdesk.auth.dependencies import AgentDep
from frontdesk.conversations.models import ChatVisitor, Conversation
from frontdesk.core.api import UowDep
from frontdesk.core.errors import NotFound, Problem
from frontdesk.core.uow import UnitOfWork

router = APIRouter(prefix="/chat/visitors", tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such visitor in this workspace."},
}


class VisitorOut(BaseModel):
    id: uuid.UUID
    name: str | None
    email: str | None
    contact_id: uuid.UUID | None
    conversation_ids: list[uuid.UUID]
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None


async def _get_visitor(
    uow: UnitOfWork, workspace_id: uuid.UUID, visitor_id: uuid.UUID
) -> ChatVisitor:
    visitor = await uow.session.get(ChatVisitor, visitor_id)
    if visitor is None or visitor.workspace_id != workspace_id:
        raise NotFound("No such visitor in this workspace.")
    return visitor


async def _view(uow: UnitOfWork, visitor: ChatVisitor) -> VisitorOut:
    conversation_ids = await uow.session.scalars(
        sa.select(Conversation.id)
        .where(Conversation.visitor_id == visitor.id)
        .order_by(Conversation.created_at)
    )
    return VisitorOut(
        id=visitor.id,
        name=visitor.name,
        email=visitor.email,
        contact_id=visitor.contact_id,
        conversation_ids=list(conversation_ids),
        created_at=visitor.created_at,
        last_seen_at=visitor.last_seen_at,
        revoked_at=visitor.revoked_at,
    )


@router.get("/{visitor_id}", response_model=VisitorOut, responses=_ERRORS)
async def get_visitor(uow: UowDep, actor: AgentDep, visitor_id: uuid.UUID) -> VisitorOut:
    """Return a visitor with the ids of their conversations."""
    return await _view(uow, await _get_visitor(uow, actor.workspace_id, visitor_id))


@router.post("/{visitor_id}/revoke", response_model=VisitorOut, responses=_ERRORS)
async def revoke_visitor(uow: UowDep, actor: AgentDep, visitor_id: uuid.UUID) -> VisitorOut:
    """Revoke the visitor's token: the visitor API returns 401 and open sockets close with 4003.

    Revoking twice keeps the first time. The visitor's conversations stay for staff.
    """
    visitor = await _get_visitor(uow, actor.workspace_id, visitor_id)
    if visitor.revoked_at is None:
        visitor.revoked_at = uow.now()
        uow.record_event(
            "internal.visitor_revoked",
            {"visitor_id": str(visitor.id)},
            workspace_id=actor.workspace_id,
        )
    return await _view(uow, visitor)
