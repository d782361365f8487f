"""Opaque cursors for keyset pagination over (created_at, id)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from fastapi import Query
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

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


CURSOR_MESSAGE = "The cursor is invalid; pass the next_cursor of a previous page."


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
        raise ValidationFailed("cursor", CURSOR_MESSAGE, "invalid_cursor") from exc


def _check_cursor(value: str | None) -> str | None:
    if value is not None:
        try:
            decode_cursor(value)
        except ValidationFailed:
            raise PydanticCustomError("invalid_cursor", CURSOR_MESSAGE) from None
    return value


# The ``cursor`` query parameter of the lists paged by (created_at, id). It is checked with
# the other parameters, so one response names every invalid parameter.
CursorQuery = Annotated[str | None, Query(max_length=500), AfterValidator(_check_cursor)]


class KeysetModel(Protocol):
    created_at: Any
    id: Any


async def fetch_newest_first(
    session: AsyncSession,
    statement: sa.Select[Any],
    model: type[KeysetModel],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """Fetch one page of ``statement`` newest first by (created_at, id) after ``cursor``.

    Returns the rows and the cursor of the next page (None on the last page). One extra row
    is read to know whether a next page exists.
    """
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        statement = statement.where(
            sa.or_(
                model.created_at < created_at,
                sa.and_(model.created_at == created_at, model.id < row_id),
            )
        )
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(statement)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
