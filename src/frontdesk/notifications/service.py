"""Per-user notifications and the email preferences that decide which also arrive by email.

Each notification is stored for one member and published as a ``notification.created``
event addressed to that user only (the event's ``user_id``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic_core import to_jsonable_python

from frontdesk.auth.models import User
from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.service import send_enquiry_assigned_email, send_new_enquiry_email
from frontdesk.notifications.models import Notification
from frontdesk.notifications.schemas import NotificationOut, NotificationPage
from frontdesk.workspaces.models import Membership, Workspace

log = structlog.get_logger()

ENQUIRY_CREATED = "enquiry.created"
ENQUIRY_ASSIGNED = "enquiry.assigned"

# Whether each notification type also arrives by email when a member has not chosen.
# New enquiries are opt-in because a busy workspace would flood every member's mailbox.
DEFAULT_PREFERENCES: dict[str, dict[str, bool]] = {
    ENQUIRY_CREATED: {"email": False},
    ENQUIRY_ASSIGNED: {"email": True},
}
CHANNELS = ("email",)

# The enquiry fields copied into a notification; the answers stay on the enquiry.
_ENQUIRY_SUMMARY_FIELDS = (
    "id",
    "status",
    "source",
    "subject",
    "contact",
    "assignee",
    "tags",
    "form_id",
    "created_at",
)


def notification_api_dict(notification: Notification) -> dict[str, Any]:
    return NotificationOut.model_validate(notification).model_dump(mode="json")


def enquiry_summary(enquiry: dict[str, Any]) -> dict[str, Any]:
    summary = {key: enquiry[key] for key in _ENQUIRY_SUMMARY_FIELDS if key in enquiry}
    jsonable: dict[str, Any] = to_jsonable_python(summary)
    return jsonable


def effective_preferences(stored: dict[str, Any] | None) -> dict[str, dict[str, bool]]:
    """Return every notification type's channels: the stored choice, else the default."""
    result: dict[str, dict[str, bool]] = {}
    for kind, defaults in DEFAULT_PREFERENCES.items():
        chosen = (stored or {}).get(kind)
        channels = dict(defaults)
        if isinstance(chosen, dict):
            channels.update({k: v for k, v in chosen.items() if k in defaults and type(v) is bool})
        result[kind] = channels
    return result


def _add(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    kind: str,
    data: dict[str, Any],
) -> Notification:
    notification = Notification(
        id=uuid7(),
        workspace_id=workspace_id,
        user_id=user_id,
        type=kind,
        data=data,
        read_at=None,
        created_at=uow.now(),
    )
    uow.session.add(notification)
    uow.record_event(
        "notification.created",
        notification_api_dict(notification),
        workspace_id=workspace_id,
        user_id=user_id,
    )
    return notification


async def _members(
    uow: UnitOfWork, workspace_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> list[tuple[Membership, User, str]]:
    """Load the workspace's memberships with their users and the workspace name in one query."""
    query = (
        sa.select(Membership, User, Workspace.name)
        .join(User, User.id == Membership.user_id)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(Membership.created_at, Membership.user_id)
    )
    if user_id is not None:
        query = query.where(Membership.user_id == user_id)
    rows = (await uow.session.execute(query)).all()
    return [(membership, user, name) for membership, user, name in rows]


async def notify_enquiry_created(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry: dict[str, Any],
    exclude_user_id: uuid.UUID | None = None,
) -> None:
    """Notify every member except ``exclude_user_id``; email those who opted in."""
    data = {"enquiry": enquiry_summary(enquiry)}
    emailed = 0
    notified = 0
    for membership, user, workspace_name in await _members(uow, workspace_id):
        if user.id == exclude_user_id:
            continue
        _add(uow, workspace_id=workspace_id, user_id=user.id, kind=ENQUIRY_CREATED, data=data)
        notified += 1
        if effective_preferences(membership.notification_preferences)[ENQUIRY_CREATED]["email"]:
            await send_new_enquiry_email(
                uow,
                workspace_id=workspace_id,
                enquiry=enquiry,
                to=user.email,
                recipient_name=user.full_name,
                workspace_name=workspace_name,
            )
            emailed += 1
    log.info(
        "notifications.enquiry_created",
        workspace_id=str(workspace_id),
        enquiry_id=str(enquiry.get("id")),
        notified=notified,
        emailed=emailed,
    )


async def notify_enquiry_assigned(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry: dict[str, Any],
    assignee_id: uuid.UUID,
    actor_id: uuid.UUID | None,
) -> None:
    """Notify the assignee, unless they assigned the enquiry to themself."""
    if assignee_id == actor_id:
        return
    members = await _members(uow, workspace_id, user_id=assignee_id)
    if not members:
        # Only members are assigned; a removed member gets nothing.
        return
    membership, user, workspace_name = members[0]
    data = {
        "enquiry": enquiry_summary(enquiry),
        "actor_id": str(actor_id) if actor_id else None,
    }
    _add(uow, workspace_id=workspace_id, user_id=user.id, kind=ENQUIRY_ASSIGNED, data=data)
    if effective_preferences(membership.notification_preferences)[ENQUIRY_ASSIGNED]["email"]:
        await send_enquiry_assigned_email(
            uow,
            workspace_id=workspace_id,
            enquiry=enquiry,
            to=user.email,
            recipient_name=user.full_name,
            workspace_name=workspace_name,
        )


async def list_notifications(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> NotificationPage:
    """Return the user's notifications in this workspace, newest first."""
    mine = sa.and_(Notification.workspace_id == workspace_id, Notification.user_id == user_id)
    query = sa.select(Notification).where(mine)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    rows, next_cursor = await fetch_newest_first(
        uow.session, query, Notification, cursor=cursor, limit=limit
    )
    return NotificationPage(
        items=[NotificationOut.model_validate(row) for row in rows],
        next_cursor=next_cursor,
        unread_count=await count_unread(uow, workspace_id=workspace_id, user_id=user_id),
    )


async def count_unread(uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID) -> int:
    count = await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(
            Notification.workspace_id == workspace_id,
            Notification.user_id == user_id,
            Notification.read_at.is_(None),
        )
    )
    return int(count or 0)


async def mark_read(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    """Mark one of the user's notifications read; another user's id is not found."""
    notification = await uow.session.scalar(
        sa.select(Notification).where(
            Notification.id == notification_id,
            Notification.workspace_id == workspace_id,
            Notification.user_id == user_id,
        )
    )
    if notification is None:
        raise NotFound(f"No notification with id {notification_id} exists for you.")
    if notification.read_at is None:
        notification.read_at = uow.now()
        uow.record_event(
            "notification.read",
            notification_api_dict(notification),
            workspace_id=workspace_id,
            user_id=user_id,
        )
    return notification


async def mark_all_read(uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Mark every unread notification of the user in this workspace read; return how many."""
    now: datetime = uow.now()
    result = await uow.session.execute(
        sa.update(Notification)
        .where(
            Notification.workspace_id == workspace_id,
            Notification.user_id == user_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    updated = int(getattr(result, "rowcount", 0) or 0)
    if updated:
        uow.record_event(
            "notification.read_all",
            {"read_at": iso_utc(now), "updated": updated},
            workspace_id=workspace_id,
            user_id=user_id,
        )
    return updated


async def _membership(uow: UnitOfWork, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Membership:
    membership = await uow.session.get(Membership, (workspace_id, user_id))
    if membership is None:
        raise NotFound("You are not a member of this workspace.")
    return membership


async def get_preferences(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, dict[str, bool]]:
    membership = await _membership(uow, workspace_id, user_id)
    return effective_preferences(membership.notification_preferences)


def validate_preferences(body: Any) -> dict[str, dict[str, bool]]:
    """Check a preferences body; raise ``ValidationFailed`` naming every invalid key."""
    known = ", ".join(DEFAULT_PREFERENCES)
    if not isinstance(body, dict):
        raise ValidationFailed(
            "body", f"Send a JSON object keyed by notification type ({known}).", "type_error"
        )
    errors: list[FieldError] = []
    changes: dict[str, dict[str, bool]] = {}
    for kind, channels in body.items():
        if kind not in DEFAULT_PREFERENCES:
            errors.append(
                FieldError(
                    field=str(kind),
                    message=f"Unknown notification type '{kind}'; known types: {known}.",
                    code="unknown_type",
                )
            )
            continue
        if not isinstance(channels, dict):
            errors.append(
                FieldError(
                    field=kind,
                    message='Send an object such as {"email": true}.',
                    code="type_error",
                )
            )
            continue
        changes[kind] = {}
        for channel, value in channels.items():
            field = f"{kind}.{channel}"
            if channel not in CHANNELS:
                errors.append(
                    FieldError(
                        field=field,
                        message=f"Unknown channel '{channel}'; known channels: "
                        f"{', '.join(CHANNELS)}.",
                        code="unknown_channel",
                    )
                )
            elif type(value) is not bool:
                errors.append(
                    FieldError(field=field, message="Send true or false.", code="bool_type")
                )
            else:
                changes[kind][channel] = value
    if errors:
        raise ValidationFailed.many(errors)
    return changes


async def update_preferences(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID, body: Any
) -> dict[str, dict[str, bool]]:
    """Apply the given types' channels; types left out keep their current setting."""
    changes = validate_preferences(body)
    membership = await _membership(uow, workspace_id, user_id)
    preferences = effective_preferences(membership.notification_preferences)
    for kind, channels in changes.items():
        preferences[kind].update(channels)
    # A new dict object, because in-place changes to a JSON column are not tracked.
    membership.notification_preferences = {kind: dict(c) for kind, c in preferences.items()}
    log.info(
        "notifications.preferences_updated", workspace_id=str(workspace_id), user_id=str(user_id)
    )
    return preferences
