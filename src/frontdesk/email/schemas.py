"""Response bodies of the outbox and dead-letter job endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class OutboxMessage(BaseModel):
    """A queued, sent or failed email, without its bodies."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workspace_id: uuid.UUID | None = Field(description="Null for account emails.")
    kind: str = Field(
        description="verification, password_reset, invitation, enquiry_acknowledgement, "
        "new_enquiry or enquiry_assigned."
    )
    message_id: str = Field(description="The Message-ID header, the same on every attempt.")
    to: str = Field(validation_alias=AliasChoices("to_address", "to"))
    reply_to: str | None
    subject: str
    status: str = Field(description="queued, sent or failed.")
    transport: str | None = Field(description="smtp or outbox once sent; null before.")
    attempts: int
    last_error: str | None
    enquiry_id: uuid.UUID | None
    created_at: datetime
    sent_at: datetime | None


class OutboxMessageDetail(OutboxMessage):
    """A message with its bodies and the headers it is sent with."""

    from_: str = Field(
        validation_alias=AliasChoices("from_address", "from"), serialization_alias="from"
    )
    text: str = Field(validation_alias=AliasChoices("text_body", "text"))
    html: str = Field(validation_alias=AliasChoices("html_body", "html"))
    headers: dict[str, Any]


class OutboxPage(BaseModel):
    items: list[OutboxMessage]
    next_cursor: str | None = None


class JobOut(BaseModel):
    """A background job; ``dead`` jobs failed for good and can be retried."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    status: str = Field(description="pending, running, succeeded or dead.")
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    workspace_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = None
