"""Enquiry forms and their published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class Form(UUIDPrimaryKey, Base):
    __tablename__ = "forms"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    # Random identifier in the public address; not guessable from the form id.
    public_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    fields: Mapped[list[dict[str, Any]]] = mapped_column()
    published: Mapped[bool] = mapped_column(default=True)
    # Latest published version; 0 until first published.
    version: Mapped[int] = mapped_column(default=0)
    language: Mapped[str] = mapped_column(sa.String(10), default="en")
    redirect_url: Mapped[str | None] = mapped_column(sa.String(2000))
    success_message: Mapped[str | None] = mapped_column(sa.Text)
    # Origins allowed to submit JSON from a browser (CORS); empty means none.
    allowed_origins: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class FormVersion(UUIDPrimaryKey, Base):
    __tablename__ = "form_versions"
    __table_args__ = (sa.UniqueConstraint("form_id", "version"),)

    form_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("forms.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(200))
    fields: Mapped[list[dict[str, Any]]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class FormUpload(Base):
    """A file a visitor uploaded for a form's file field, before and after the submission.

    The visitor receives a random token for it; only the token's SHA-256 is stored. The
    upload is pending until a submission names the token, which sets ``enquiry_id``.
    Pending uploads are deleted after a day.
    """

    __tablename__ = "form_uploads"

    object_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("storage_objects.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    form_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("forms.id", ondelete="CASCADE"), index=True
    )
    field_key: Mapped[str] = mapped_column(sa.String(63))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(index=True)
