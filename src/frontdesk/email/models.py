"""Outgoing email messages: the durable record that the send job works from.

On the embedded default without SMTP, a sent message stays here as the local outbox.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class EmailMessage(UUIDPrimaryKey, Base):
    __tablename__ = "email_messages"
    __table_args__ = (
        sa.Index("ix_email_messages_workspace_created", "workspace_id", "created_at"),
        sa.Index("ix_email_messages_recipient", "workspace_id", "kind", "to_address", "created_at"),
    )

    # None for account emails (verification, reset) that belong to no workspace.
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(sa.String(50))
    # The Message-ID header, fixed at creation so every attempt sends the same one.
    message_id: Mapped[str] = mapped_column(sa.String(300), unique=True)
    from_address: Mapped[str] = mapped_column(sa.String(400))
    to_address: Mapped[str] = mapped_column(sa.String(320))
    reply_to: Mapped[str | None] = mapped_column(sa.String(400))
    subject: Mapped[str] = mapped_column(sa.String(500))
    text_body: Mapped[str] = mapped_column(sa.Text)
    html_body: Mapped[str] = mapped_column(sa.Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # queued, sent (to a provider, SMTP or into the outbox), failed, or suppressed (the
    # recipient is on the suppression list, so it was never sent).
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")
    transport: Mapped[str | None] = mapped_column(sa.String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    # The provider that accepted the message and the id it gave, which its webhooks name.
    provider: Mapped[str | None] = mapped_column(sa.String(20))
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(300), index=True)
    # The latest delivery state reported by events: delivered, deferred, bounced,
    # complained, rejected or failed. It only moves forward (see email.events).
    delivery_status: Mapped[str | None] = mapped_column(sa.String(20))
    # Why the message was not sent: the suppression reason of its recipient, for example.
    suppressed_reason: Mapped[str | None] = mapped_column(sa.String(20))
    track_opens: Mapped[bool] = mapped_column(default=False)
    track_clicks: Mapped[bool] = mapped_column(default=False)
    # Bulk messages carry List-Unsubscribe; transactional ones do not.
    category: Mapped[str] = mapped_column(sa.String(20), default="transactional")
    template_key: Mapped[str | None] = mapped_column(sa.String(100))
    # Storage objects sent with the message: {object_id, filename, content_type, content_id}.
    # A content_id makes the file an inline image that the HTML shows as cid:<content_id>.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(default=list)


class EmailProviderSetting(Base):
    """The email service a workspace sends through, with its credentials encrypted.

    ``config_encrypted`` is the provider's JSON configuration (API keys and passwords
    included), encrypted with the envelope cipher and bound to the workspace id. A workspace
    without a row sends through the instance's SMTP settings or the local outbox.
    """

    __tablename__ = "email_provider_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(20))
    config_encrypted: Mapped[str] = mapped_column(sa.Text)
    # The From header of the workspace's mail; its domain ends every Message-ID.
    from_address: Mapped[str] = mapped_column(sa.String(400))
    # Random part of the webhook addresses, so a delivery names its workspace unguessably.
    webhook_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The provider's webhook verification secret (signing key, public key, password), encrypted.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    track_opens: Mapped[bool] = mapped_column(default=False)
    track_clicks: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class EmailSuppression(UUIDPrimaryKey, Base):
    """An address that the workspace no longer mails, and why."""

    __tablename__ = "email_suppressions"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "address"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # Lower-cased.
    address: Mapped[str] = mapped_column(sa.String(320))
    # hard_bounce, complaint, unsubscribe or manual.
    reason: Mapped[str] = mapped_column(sa.String(20))
    # Where it came from: a provider name, "inbound", "unsubscribe_link" or "api".
    source: Mapped[str] = mapped_column(sa.String(30))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("email_messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()


class EmailEvent(UUIDPrimaryKey, Base):
    """One thing that happened to a sent message, reported by a provider or by tracking.

    ``(workspace_id, provider, provider_event_id)`` is unique, so a webhook delivered twice
    is stored once. A job applies each event to its message and to the suppression list and
    then sets ``processed_at``.
    """

    __tablename__ = "email_events"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "provider", "provider_event_id"),
        sa.Index("ix_email_events_email", "email_id", "occurred_at"),
        sa.Index("ix_email_events_workspace_type", "workspace_id", "type", "occurred_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("email_messages.id", ondelete="CASCADE")
    )
    # A provider name, or "frontdesk" for the open pixel and click redirects.
    provider: Mapped[str] = mapped_column(sa.String(20))
    provider_event_id: Mapped[str] = mapped_column(sa.String(200))
    # queued, sent, delivered, deferred, bounced, complained, opened, clicked, unsubscribed,
    # rejected or failed.
    type: Mapped[str] = mapped_column(sa.String(20))
    occurred_at: Mapped[datetime] = mapped_column()
    recipient: Mapped[str | None] = mapped_column(sa.String(320))
    bounce_kind: Mapped[str | None] = mapped_column(sa.String(10))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    url: Mapped[str | None] = mapped_column(sa.Text)
    user_agent: Mapped[str | None] = mapped_column(sa.String(500))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    # Set for opens and clicks made by software (privacy proxies, link scanners), with why.
    machine_reason: Mapped[str | None] = mapped_column(sa.String(100))
    received_at: Mapped[datetime] = mapped_column()
    processed_at: Mapped[datetime | None] = mapped_column()


class EmailTemplate(UUIDPrimaryKey, Base):
    """A workspace's email template: its variable schema and, per locale, its versions."""

    __tablename__ = "email_templates"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # Unique in the workspace; the key of a built-in email replaces that email's text.
    key: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    # VariableSpec dictionaries.
    variables: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # The locale used when a message requests one the template does not have.
    default_locale: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class EmailTemplateVersion(UUIDPrimaryKey, Base):
    """One saved version of a template in one locale; the highest version is current."""

    __tablename__ = "email_template_versions"
    __table_args__ = (sa.UniqueConstraint("template_id", "locale", "version"),)

    template_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("email_templates.id", ondelete="CASCADE"), index=True
    )
    locale: Mapped[str] = mapped_column(sa.String(20))
    version: Mapped[int] = mapped_column()
    subject: Mapped[str] = mapped_column(sa.Text)
    body_format: Mapped[str] = mapped_column(sa.String(10))
    body: Mapped[str] = mapped_column(sa.Text)
    text: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()


class InboundEmail(UUIDPrimaryKey, Base):
    """A message received for a workspace, what it became, and where its bytes are.

    ``action`` records the decision: ``created_enquiry`` (a new sender or topic),
    ``threaded`` (a reply from the enquiry's contact), ``staff_reply`` (a member wrote from
    their own mail client), ``automatic`` (auto-replies and mailing lists, which never start
    an enquiry), ``report`` (a bounce or complaint) or ``duplicate``.
    """

    __tablename__ = "inbound_emails"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "message_id"),
        sa.Index("ix_inbound_emails_workspace_received", "workspace_id", "created_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # api (raw upload), imap, or the provider whose inbound webhook delivered it.
    source: Mapped[str] = mapped_column(sa.String(20))
    # The Message-ID with its angle brackets; None when the message has none.
    message_id: Mapped[str | None] = mapped_column(sa.String(1000))
    from_address: Mapped[str | None] = mapped_column(sa.String(320))
    from_name: Mapped[str | None] = mapped_column(sa.String(300))
    subject: Mapped[str] = mapped_column(sa.Text)
    # What the sender wrote now; quoted history and signature are kept apart.
    text: Mapped[str] = mapped_column(sa.Text)
    quoted: Mapped[str] = mapped_column(sa.Text, default="")
    signature: Mapped[str] = mapped_column(sa.Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column()
    action: Mapped[str] = mapped_column(sa.String(20))
    automatic_reason: Mapped[str | None] = mapped_column(sa.Text)
    report_kind: Mapped[str | None] = mapped_column(sa.String(20))
    defects: Mapped[list[str]] = mapped_column(default=list)
    # {object_id, filename, content_type, size, content_id, inline} per attachment.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    raw_object_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("storage_objects.id", ondelete="SET NULL")
    )
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()


class EmailMailbox(Base):
    """A workspace's own mailbox that Frontdesk polls over IMAP, with its position.

    ``settings_encrypted`` contains the IMAP settings (password included), encrypted like the
    provider settings. ``uidvalidity`` and ``last_uid`` record how far polling got.
    """

    __tablename__ = "email_mailboxes"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    settings_encrypted: Mapped[str] = mapped_column(sa.Text)
    uidvalidity: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_uid: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_polled_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
