"""Conversations from every channel, their messages, read positions and canned responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class Conversation(UUIDPrimaryKey, Base):
    """One thread with a contact or visitor, on one channel (chat, email, instagram, form)."""

    __tablename__ = "conversations"
    __table_args__ = (
        sa.Index("ix_conversations_workspace_activity", "workspace_id", "last_message_at", "id"),
        sa.Index("ix_conversations_workspace_status", "workspace_id", "status"),
        sa.Index("ix_conversations_workspace_assignee", "workspace_id", "assignee_id"),
        # The wake-up job looks for snoozed conversations that are due, across workspaces.
        sa.Index("ix_conversations_status_snoozed_until", "status", "snoozed_until"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(20), default="open")
    # Set while status is "snoozed": the conversation reopens at this time.
    snoozed_until: Mapped[datetime | None] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL"), index=True
    )
    # The website visitor of a chat conversation.
    visitor_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("chat_visitors.id", ondelete="SET NULL"), index=True
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    subject: Mapped[str | None] = mapped_column(sa.String(300))
    # Sequence number of the newest message; messages are numbered 1, 2, 3... per conversation.
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ConversationMessage(UUIDPrimaryKey, Base):
    """A message, an internal note or a system message, numbered by ``seq`` in its conversation.

    ``kind`` is "message" (seen by everyone in the conversation), "note" (staff only) or
    "system" (assigned, resolved...; ``data`` holds the details). ``author_type`` is "member",
    "visitor", "contact" or "system".
    """

    __tablename__ = "conversation_messages"
    __table_args__ = (
        sa.UniqueConstraint("conversation_id", "seq"),
        # A resent message with the same client id from the same author is stored once.
        sa.Index(
            "uq_conversation_messages_client_id",
            "conversation_id",
            "author_type",
            "author_key",
            "client_message_id",
            unique=True,
            sqlite_where=sa.text("client_message_id IS NOT NULL"),
            postgresql_where=sa.text("client_message_id IS NOT NULL"),
        ),
        sa.Index("ix_conversation_messages_workspace_created", "workspace_id", "created_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(10))
    author_type: Mapped[str] = mapped_column(sa.String(10))
    # The member's user id or the visitor's id as text; "" for system and contact messages.
    author_key: Mapped[str] = mapped_column(sa.String(36), default="")
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # Markdown source as written, and its sanitized HTML rendering.
    body: Mapped[str] = mapped_column(sa.Text, default="")
    body_html: Mapped[str] = mapped_column(sa.Text, default="")
    # [{"object_id", "filename", "content_type", "size", "preview": bool}]
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_message_id: Mapped[str | None] = mapped_column(sa.String(100))
    edited_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class MessageRevision(UUIDPrimaryKey, Base):
    """An earlier body of an edited or deleted message, kept for staff."""

    __tablename__ = "conversation_message_revisions"
    __table_args__ = (sa.Index("ix_message_revisions_message", "message_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    message_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("conversation_messages.id", ondelete="CASCADE")
    )
    # "edited" or "deleted"; ``body`` and ``attachments`` are the content before the change.
    action: Mapped[str] = mapped_column(sa.String(10))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()


class ConversationParticipant(Base):
    """Someone in a conversation and how far they have read.

    ``participant_type`` is "member" (``participant_key`` is the user id) or "visitor" (the
    visitor id). Read and delivered positions are message ``seq`` values and never go back.
    """

    __tablename__ = "conversation_participants"
    __table_args__ = (
        sa.Index("ix_conversation_participants_key", "participant_type", "participant_key"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    participant_type: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    participant_key: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    last_read_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_delivered_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # Highest seq already sent to a visitor by email because they had left the page.
    last_emailed_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    joined_at: Mapped[datetime] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()


class CannedResponse(UUIDPrimaryKey, Base):
    """A reusable reply; its body may use variables such as ``{{ contact.name }}``."""

    __tablename__ = "canned_responses"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "shortcut"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    shortcut: Mapped[str] = mapped_column(sa.String(50))
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ChatSettings(Base):
    """A workspace's website chat: its public widget key, look and allowed sites."""

    __tablename__ = "chat_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    # The value of the widget's data-workspace attribute; public by design.
    public_key: Mapped[str] = mapped_column(sa.String(40), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    # {"title", "greeting", "color", "position": "right"|"left"}
    theme: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Origins (scheme://host[:port]) allowed to embed the widget; empty allows every origin.
    allowed_origins: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ChatVisitor(UUIDPrimaryKey, Base):
    """A website visitor identified by a signed visitor token stored in their browser."""

    __tablename__ = "chat_visitors"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL")
    )
    name: Mapped[str | None] = mapped_column(sa.String(200))
    # Where replies go by email when the visitor has left the page.
    email: Mapped[str | None] = mapped_column(sa.String(320))
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
