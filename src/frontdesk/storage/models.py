"""Buckets and the objects stored in them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, UUIDPrimaryKey

# Keys sort by code point on both databases: Postgres's "C" collation matches SQLite's
# default BINARY collation, so cursor pagination pages through the same order.
KeyType = sa.String(1024).with_variant(postgresql.VARCHAR(1024, collation="C"), "postgresql")


class Bucket(UUIDPrimaryKey, Base):
    __tablename__ = "storage_buckets"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(63))
    visibility: Mapped[str] = mapped_column(sa.String(10))
    # The bucket's own size limit in bytes; the instance limit applies when it is larger.
    max_object_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Media types or "type/*" patterns; None admits every type.
    allowed_content_types: Mapped[list[str] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class StoredObject(UUIDPrimaryKey, Base):
    """One object; its bytes are the backend blob at ``{workspace_id}/{id}``."""

    __tablename__ = "storage_objects"
    __table_args__ = (sa.UniqueConstraint("bucket_id", "key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("storage_buckets.id", ondelete="RESTRICT"), index=True
    )
    key: Mapped[str] = mapped_column(KeyType)
    content_type: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    user_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
