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
    # queued, sent (to SMTP or into the outbox), failed.
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")
    transport: Mapped[str | None] = mapped_column(sa.String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
