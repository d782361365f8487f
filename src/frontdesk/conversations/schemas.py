"""Request bodies of the staff conversation and canned response API."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from frontdesk.conversations.formatting import MAX_BODY_CHARS
from frontdesk.conversations.service import (
    MAX_ATTACHMENTS_PER_MESSAGE,
    MAX_CLIENT_MESSAGE_ID_CHARS,
)
from frontdesk.core.db import MAX_SQL_INTEGER
from frontdesk.core.fields import DateTimeText

Channel = Literal["chat", "email", "instagram", "form"]
Status = Literal["open", "pending", "resolved", "snoozed"]

MAX_SHORTCUT_CHARS = 50
MAX_TITLE_CHARS = 200
SHORTCUT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationCreate(_Body):
    channel: Channel
    contact_id: uuid.UUID | None = None
    enquiry_id: uuid.UUID | None = None
    subject: str | None = Field(default=None, max_length=300)


class ConversationUpdate(_Body):
    """Fields to change; a field left out stays as it is."""

    status: Status | None = None
    # Required with status "snoozed": when the conversation reopens. Without an offset: UTC.
    snoozed_until: DateTimeText | None = None
    # A member's user id, or null to unassign.
    assignee_id: uuid.UUID | None = None
    subject: str | None = Field(default=None, max_length=300)


class MessageCreate(_Body):
    body: str = Field(default="", max_length=MAX_BODY_CHARS)
    kind: Literal["message", "note"] = "message"
    # The client's own id for the message; a repeat with the same id is stored once.
    client_message_id: str | None = Field(default=None, max_length=MAX_CLIENT_MESSAGE_ID_CHARS)
    # Ids of the workspace's stored objects.
    attachments: list[uuid.UUID] = Field(default=[], max_length=MAX_ATTACHMENTS_PER_MESSAGE)


class MessageEdit(_Body):
    body: str = Field(max_length=MAX_BODY_CHARS)


class ReadIn(_Body):
    # The seq of the newest message read; a position never moves back.
    seq: int = Field(strict=True, ge=0, le=MAX_SQL_INTEGER)


class CannedResponseCreate(_Body):
    shortcut: str = Field(min_length=1, max_length=MAX_SHORTCUT_CHARS, pattern=SHORTCUT_PATTERN)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)


class CannedResponseUpdate(_Body):
    shortcut: str | None = Field(
        default=None, min_length=1, max_length=MAX_SHORTCUT_CHARS, pattern=SHORTCUT_PATTERN
    )
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS)
    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY_CHARS)


class RenderIn(_Body):
    conversation_id: uuid.UUID
