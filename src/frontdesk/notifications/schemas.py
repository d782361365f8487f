"""Response bodies of the notifications API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class NotificationOut(BaseModel):
    """A notification as the API returns it, and as the data of ``notification.created``.

    ``type`` is ``enquiry.created`` or ``enquiry.assigned``. ``data.enquiry`` is a summary of
    the enquiry (id, status, source, subject, contact, assignee, tags, created_at);
    ``enquiry.assigned`` also has ``data.actor_id``, the member who assigned it (or null).
    """

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    data: dict[str, Any]
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = None
    unread_count: int = Field(description="Unread notifications of the caller in this workspace.")


class ChannelPreferences(BaseModel):
    email: bool


class ReadAllResult(BaseModel):
    updated: int = Field(description="How many notifications were marked read.")
    unread_count: int
