"""Response bodies of the outbox and dead-letter job endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, EmailStr, Field, SecretStr, StrictBool


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
    track_opens: StrictBool = False
    track_clicks: StrictBool = False


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


LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
TEMPLATE_KEY_PATTERN = r"^[a-z][a-z0-9_.-]{0,99}$"
MAX_TEMPLATE_SOURCE = 200_000


class TemplateContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=2000)
    body_format: Literal["html", "markdown"] = "html"
    body: str = Field(min_length=1, max_length=MAX_TEMPLATE_SOURCE)
    text: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_SOURCE,
        description="Plain text body; generated from the HTML when absent.",
    )


class TemplateCreate(TemplateContent):
    key: str = Field(
        pattern=TEMPLATE_KEY_PATTERN,
        description="Unique in the workspace, like 'welcome' or 'enquiry_acknowledgement'.",
    )
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    variables: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    locale: str = Field(default="en", pattern=LOCALE_PATTERN)


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    variables: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    default_locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)


class TemplateVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    locale: str
    version: int
    subject: str
    body_format: str
    body: str
    text: str | None
    created_by: uuid.UUID | None
    created_at: datetime


class TemplateOut(BaseModel):
    id: uuid.UUID
    key: str
    name: str
    description: str | None
    variables: list[dict[str, Any]]
    default_locale: str
    locales: dict[str, TemplateVersionOut] = Field(description="The current version per locale.")
    created_at: datetime
    updated_at: datetime


class TemplateList(BaseModel):
    items: list[TemplateOut]


class TemplateVersionList(BaseModel):
    items: list[TemplateVersionOut]


class TemplatePreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)
    data: dict[str, Any] | None = Field(
        default=None, description="Values of the variables; the samples are used when absent."
    )


class TemplatePreviewOut(BaseModel):
    locale: str = Field(description="The locale rendered, after fallback.")
    version: int
    subject: str
    html: str
    text: str


class AttachmentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_id: uuid.UUID = Field(description="A storage object of the workspace.")
    content_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Set to show the file inline: the HTML refers to it as cid:<content_id>.",
    )


class TemplateSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)

    to: EmailStr
    data: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)
    enquiry_id: uuid.UUID | None = None
    category: Literal["transactional", "bulk"] = "transactional"


class TemplateSendOut(BaseModel):
    email_id: uuid.UUID
    status: str


class InboundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str = Field(description="api, imap, or the provider of the inbound webhook.")
    message_id: str | None
    from_address: str | None
    from_name: str | None
    subject: str
    text: str = Field(description="What the sender wrote now, without quotes and signature.")
    quoted: str
    signature: str
    sent_at: datetime | None
    action: str = Field(
        description="created_enquiry, threaded, staff_reply, automatic, report or duplicate."
    )
    automatic_reason: str | None
    report_kind: str | None = Field(description="hard, soft, delayed or complaint.")
    defects: list[str]
    attachments: list[dict[str, Any]]
    raw_object_id: uuid.UUID | None
    enquiry_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    created_at: datetime


class InboundPage(BaseModel):
    items: list[InboundOut]
    next_cursor: str | None


class AnalyticsRow(BaseModel):
    group: str = Field(description="The day, ISO week, month or template key.")
    sent: int
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int
    opened: int = Field(description="Messages opened by a person at least once.")
    clicked: int = Field(description="Messages with a link clicked by a person.")
    delivery_rate: float
    bounce_rate: float
    complaint_rate: float
    open_rate: float
    click_rate: float
    click_through_rate: float = Field(description="Human clicks over human opens.")
    unsubscribe_rate: float


class AnalyticsOut(BaseModel):
    start: datetime
    end: datetime
    group_by: str
    rows: list[AnalyticsRow]


class EmailEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    type: str
    occurred_at: datetime
    recipient: str | None
    bounce_kind: str | None
    reason: str | None
    url: str | None
    user_agent: str | None
    machine_reason: str | None = Field(
        description="Why an open or click counts as made by software; null for people."
    )


class EmailEventList(BaseModel):
    items: list[EmailEventOut]


class MailboxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = Field(
        description="host, port, security (tls, starttls, none), username, password, mailbox, "
        "verify_certificate, timeout_seconds. A password left out or sent as '********' keeps "
        "the stored one."
    )
    import_existing: StrictBool = Field(
        default=False,
        description="Turn the mail already in the mailbox into enquiries too; by default only "
        "mail that arrives from now on does.",
    )


class MailboxOut(BaseModel):
    settings: dict[str, Any] = Field(description="The password is shown as '********'.")
    uidvalidity: int | None
    last_uid: int
    last_polled_at: datetime | None
    last_error: str | None
    updated_at: datetime


class MailboxTestOut(BaseModel):
    status: Literal["ok"]
    messages: int = Field(description="Messages in the mailbox now.")
