"""Response bodies of the outbox and dead-letter job endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, EmailStr, Field, SecretStr


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
    status: str = Field(description="queued, sent, failed or suppressed.")
    suppressed_reason: str | None = Field(
        description="Why a suppressed message was not sent: hard_bounce, complaint, "
        "unsubscribe or manual."
    )
    provider: str | None = Field(description="The workspace provider that accepted it, if any.")
    provider_message_id: str | None
    delivery_status: str | None = Field(
        description="Latest delivery state from provider events: delivered, deferred, "
        "bounced, complained, rejected or failed."
    )
    transport: str | None = Field(
        description="smtp, outbox or the provider kind once sent; null before."
    )
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


ProviderKind = Literal["smtp", "postmark", "sendgrid", "ses", "mailgun", "resend"]


class ProviderSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ProviderKind
    config: dict[str, Any] = Field(
        description="The provider's settings (docs/email-providers.md). With the same kind as "
        "before, left-out fields and fields sent as '********' keep their stored values."
    )
    from_address: str = Field(
        max_length=400, description="From header, like 'Studio Nine <hello@studio.example>'."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        max_length=4000,
        description="What verifies the provider's webhooks: SendGrid's public key, Mailgun's "
        "signing key, Resend's whsec_ secret, Postmark's 'user:password', or the SNS topic ARN "
        "for SES. Left out: unchanged; empty: removed.",
    )
    track_opens: bool = False
    track_clicks: bool = False


class ProviderSettingsOut(BaseModel):
    kind: str = Field(
        description="The provider, or 'instance' when the workspace sends through the "
        "instance's SMTP settings or outbox."
    )
    config: dict[str, Any] = Field(description="Secrets are shown as '********'.")
    from_address: str
    track_opens: bool
    track_clicks: bool
    has_webhook_secret: bool
    events_webhook_url: str | None = Field(
        description="Give this address to the provider for events; null for 'instance'."
    )
    inbound_webhook_url: str | None = Field(
        description="Give this address to the provider for inbound mail; null for 'instance'."
    )
    updated_at: datetime | None


class ProviderTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: EmailStr


class ProviderTestOut(BaseModel):
    status: Literal["sent"]
    provider_message_id: str | None


SuppressionReason = Literal["hard_bounce", "complaint", "unsubscribe", "manual"]


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    address: str = Field(description="Lower-cased.")
    reason: str = Field(description="hard_bounce, complaint, unsubscribe or manual.")
    source: str = Field(description="A provider name, inbound, unsubscribe_link or api.")
    detail: str | None
    email_id: uuid.UUID | None = Field(description="The message that caused it, when known.")
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: EmailStr
    detail: str | None = Field(default=None, max_length=2000)
