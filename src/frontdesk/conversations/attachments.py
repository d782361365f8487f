"""Message attachments: storage objects named on a message, with what a client needs to show them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from frontdesk.conversations.models import ConversationMessage
from frontdesk.core.errors import FieldError, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage.models import StoredObject
from frontdesk.storage.previews import PREVIEW_SOURCE_TYPES


def attachment_kind(content_type: str) -> str:
    """Group a media type for display: image, audio, video or document."""
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "document"


def attachment_dict(stored: StoredObject) -> dict[str, Any]:
    return {
        "object_id": str(stored.id),
        "filename": stored.key.rsplit("/", 1)[-1],
        "content_type": stored.content_type,
        "size": stored.size,
        "kind": attachment_kind(stored.content_type),
        "has_preview": stored.content_type in PREVIEW_SOURCE_TYPES,
    }


async def resolve_attachments(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    object_ids: Sequence[uuid.UUID],
    field: str = "attachments",
) -> list[dict[str, Any]]:
    """Describe the workspace's objects named by id, in the order given, without repeats.

    An id that names no object of the workspace is a field error naming its index.
    """
    unique = list(dict.fromkeys(object_ids))
    if not unique:
        return []
    rows = await uow.session.scalars(
        sa.select(StoredObject).where(
            StoredObject.id.in_(unique), StoredObject.workspace_id == workspace_id
        )
    )
    found = {row.id: row for row in rows}
    errors = [
        FieldError(
            field=f"{field}.{object_ids.index(object_id)}",
            message=f"No stored object {object_id} in this workspace; upload the file first.",
            code="not_found",
        )
        for object_id in unique
        if object_id not in found
    ]
    if errors:
        raise ValidationFailed.many(errors)
    return [attachment_dict(found[object_id]) for object_id in unique]


async def message_with_attachment(
    uow: UnitOfWork,
    *,
    conversation_id: uuid.UUID,
    object_id: uuid.UUID,
    visitor_only: bool,
) -> ConversationMessage | None:
    """Find a message of the conversation that carries the object, if any.

    With ``visitor_only`` only messages the visitor can see count (no notes, not deleted),
    so a visitor reaches exactly the files shown in their own conversation.
    """
    statement = sa.select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation_id
    )
    if visitor_only:
        statement = statement.where(
            ConversationMessage.kind == "message", ConversationMessage.deleted_at.is_(None)
        )
    wanted = str(object_id)
    for message in await uow.session.scalars(statement.order_by(ConversationMessage.seq)):
        if any(item.get("object_id") == wanted for item in message.attachments):
            return message
    return None
