"""Contacts: the people who enquire."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class Contact(UUIDPrimaryKey, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        sa.Index(
            "uq_contacts_workspace_email",
            "workspace_id",
            "email",
            unique=True,
            sqlite_where=sa.text("email IS NOT NULL"),
            postgresql_where=sa.text("email IS NOT NULL"),
        ),
        sa.Index("ix_contacts_workspace_phone", "workspace_id", "phone"),
        sa.Index("ix_contacts_workspace_created", "workspace_id", "created_at", "id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    name: Mapped[str | None] = mapped_column(sa.String(200))
    # Lower-cased email address.
    email: Mapped[str | None] = mapped_column(sa.String(320))
    # E.164, normalized with the workspace's default country.
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # Name, email and phone folded for case-insensitive search (see contacts.normalize).
    search_text: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
