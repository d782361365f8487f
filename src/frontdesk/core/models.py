"""Tables owned by the shared kernel: domain events, jobs and rate-limit counters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey


class Event(Base):
    """A domain event recorded in the transaction of the change that caused it.

    ``id`` is the insertion order. ``position`` grows in commit order: a unit of work inserts
    its events with their positions just before it commits, and the sequencer numbers any
    other committed row, one batch at a time. Clients resume by position.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    position: Mapped[int | None] = mapped_column(sa.BigInteger, unique=True, index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    # When set, only this user receives the event (for example notification.created).
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # "staff": the workspace's members (narrowed by user_id). "visitor": only the website
    # visitor of ``conversation_id``, with data shaped for customers.
    audience: Mapped[str] = mapped_column(sa.String(10), default="staff")
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(index=True)


class Job(UUIDPrimaryKey, Base):
    __tablename__ = "jobs"
    __table_args__ = (sa.Index("ix_jobs_claim", "status", "run_at"),)

    name: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column()
    run_at: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()
    locked_by: Mapped[str | None] = mapped_column(sa.String(100))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set for scheduled occurrences and other jobs that must exist at most once.
    unique_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    window_start: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[int] = mapped_column(sa.BigInteger, index=True)
