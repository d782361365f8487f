"""Notifications API: the caller's own notifications and email preferences in this workspace."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from frontdesk.auth.dependencies import AgentDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery
from frontdesk.notifications import service
from frontdesk.notifications.schemas import (
    ChannelPreferences,
    NotificationOut,
    NotificationPage,
    ReadAllResult,
)

router = APIRouter(prefix="/notifications", tags=["notifications"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such notification for you in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}

_PREFERENCES_EXAMPLE = {"enquiry.created": {"email": True}, "enquiry.assigned": {"email": False}}


@router.get("", response_model=NotificationPage, responses=_ERRORS)
async def list_notifications(
    uow: UowDep,
    actor: AgentDep,
    unread: Annotated[bool, Query(description="Only notifications not read yet.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> NotificationPage:
    """List your notifications in this workspace, newest first, with the unread count."""
    return await service.list_notifications(
        uow,
        workspace_id=actor.workspace_id,
        user_id=actor.user_id,
        unread=unread,
        cursor=cursor,
        limit=limit,
    )


@router.post("/read-all", response_model=ReadAllResult)
async def read_all(uow: UowDep, actor: AgentDep) -> ReadAllResult:
    """Mark all your notifications in this workspace read."""
    updated = await service.mark_all_read(
        uow, workspace_id=actor.workspace_id, user_id=actor.user_id
    )
    return ReadAllResult(updated=updated, unread_count=0)


@router.get("/preferences", response_model=dict[str, ChannelPreferences])
async def get_preferences(uow: UowDep, actor: AgentDep) -> dict[str, dict[str, bool]]:
    """Return which notification types also arrive by email, for you in this workspace."""
    return await service.get_preferences(
        uow, workspace_id=actor.workspace_id, user_id=actor.user_id
    )


@router.put("/preferences", response_model=dict[str, ChannelPreferences], responses=_ERRORS)
async def update_preferences(
    uow: UowDep,
    actor: AgentDep,
    body: Annotated[
        Any,
        Body(
            description="Notification types with their channels; types left out keep their "
            "current setting.",
            examples=[_PREFERENCES_EXAMPLE],
        ),
    ],
) -> dict[str, dict[str, bool]]:
    """Change which notification types also arrive by email; returns all preferences."""
    return await service.update_preferences(
        uow, workspace_id=actor.workspace_id, user_id=actor.user_id, body=body
    )


@router.post("/{notification_id}/read", response_model=NotificationOut, responses=_ERRORS)
async def read_notification(
    uow: UowDep, actor: AgentDep, notification_id: uuid.UUID
) -> NotificationOut:
    """Mark one of your notifications read; reading it again changes nothing."""
    notification = await service.mark_read(
        uow,
        workspace_id=actor.workspace_id,
        user_id=actor.user_id,
        notification_id=notification_id,
    )
    return NotificationOut.model_validate(notification)
