"""Opaque cursors for keyset pagination over (created_at, id)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from frontdesk.core.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        # Issued cursors always carry an offset, and the UTC columns reject naive times.
        if moment.tzinfo is None:
            raise ValueError("the cursor's time has no UTC offset")
        return moment, uuid.UUID(str(row_id))
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(
            "cursor",
            "The cursor is invalid; pass the next_cursor of a previous page.",
            "invalid_cursor",
        ) from exc
