"""Enquiries, their tags and their timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class Enquiry(UUIDPrimaryKey, Base):
    __tablename__ = "enquiries"
    __table_args__ = (
        sa.Index("ix_enquiries_workspace_created", "workspace_id", "created_at", "id"),
        sa.Index("ix_enquiries_workspace_status", "workspace_id", "status"),
        sa.Index("ix_enquiries_workspace_assignee", "workspace_id", "assignee_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    form_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("forms.id", ondelete="SET NULL")
    )
    form_version: Mapped[int | None] = mapped_column()
    source: Mapped[str] = mapped_column(sa.String(30))
    status: Mapped[str] = mapped_column(sa.String(30), default="new")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    subject: Mapped[str | None] = mapped_column(sa.String(300))
    # Submitted answers keyed by field key, as validated.
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Consent given: {field_key: {"given": bool, "text": str, "at": iso, "form_version": int}}.
    consent: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Where it came from: page URL, referrer, user agent, form language.
    source_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Subject and answers folded for case-insensitive search (see contacts.normalize); the
    # list's text filter also searches the contact's own search_text.
    search_text: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class EnquiryTag(Base):
    __tablename__ = "enquiry_tags"

    enquiry_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)


class EnquiryActivity(UUIDPrimaryKey, Base):
    """One entry of an enquiry's timeline: created, status changed, assigned, tagged."""

    __tablename__ = "enquiry_activities"
    __table_args__ = (sa.Index("ix_enquiry_activities_enquiry", "enquiry_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    enquiry_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("enquiries.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(50))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
