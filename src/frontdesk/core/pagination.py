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
from frontdesk.core.text import load_json

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(list_name: str, created_at: datetime, row_id: uuid.UUID) -> str:
    """Encode the position after a page's last row, tagged with the list it belongs to."""
    raw = json.dumps([list_name, created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSOR_MESSAGE = "The cursor is invalid; pass the next_cursor of a previous page."
OTHER_LIST_MESSAGE = (
    "The cursor belongs to another list; pass the next_cursor of a previous page of this list."
)


def cursor_parts(cursor: str) -> tuple[str, str, str]:
    """Return the three strings of a cursor: the list that issued it and its position.

    Raises ValueError for a cursor that no list issued.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = load_json(raw)
    except ValueError as exc:
        raise ValueError(CURSOR_MESSAGE) from exc
    if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)):
        raise ValueError(CURSOR_MESSAGE)
    for part in parts:
        # JSON escapes can carry NUL or a lone surrogate, which no issued cursor contains and
        # which the databases cannot take as a parameter.
        try:
            part.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(CURSOR_MESSAGE) from exc
        if "\x00" in part:
            raise ValueError(CURSOR_MESSAGE)
    return parts[0], parts[1], parts[2]


def _parse_cursor(cursor: str) -> tuple[str, datetime, uuid.UUID]:
    """Return a cursor's list name and position; raise ValueError for a malformed one."""
    list_name, created_at, row_id = cursor_parts(cursor)
    try:
        moment = datetime.fromisoformat(created_at)
        # Issued cursors always carry an offset, and the UTC columns reject naive times.
        if moment.tzinfo is None:
            raise ValueError("the cursor's time has no UTC offset")
        return str(list_name), moment, uuid.UUID(str(row_id))
    except (ValueError, TypeError) as exc:
        raise ValueError(CURSOR_MESSAGE) from exc


def decode_cursor(cursor: str, list_name: str) -> tuple[datetime, uuid.UUID]:
    """Return the position of a cursor that ``list_name`` issued; raise ValidationFailed for
    a malformed cursor or one of another list."""
    try:
        if cursor_parts(cursor)[0] != list_name:
            raise ValidationFailed("cursor", OTHER_LIST_MESSAGE, "invalid_cursor")
        _issued_by, moment, row_id = _parse_cursor(cursor)
    except ValueError as exc:
        raise ValidationFailed("cursor", CURSOR_MESSAGE, "invalid_cursor") from exc
    return moment, row_id


def _check_cursor(value: str | None) -> str | None:
    # Only the form is checked here; the list checks that the cursor is its own and reads
    # the position.
    if value is not None:
        try:
            cursor_parts(value)
        except ValueError:
            raise PydanticCustomError("invalid_cursor", CURSOR_MESSAGE) from None
    return value


# The ``cursor`` query parameter of the lists paged by (created_at, id). Its form is checked
# with the other parameters, so one response names every invalid parameter. Whether it
# belongs to the list is checked when the list is read.
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
    list_name: str | None = None,
) -> tuple[list[Any], str | None]:
    """Fetch one page of ``statement`` newest first by (created_at, id) after ``cursor``.

    Returns the rows and the cursor of the next page (None on the last page). One extra row
    is read to know whether a next page exists. Cursors name the list that issued them,
    ``list_name`` or else the model's table, and another list's cursor is rejected.
    """
    list_name = list_name or str(getattr(model, "__tablename__", model.__name__))
    if cursor:
        created_at, row_id = decode_cursor(cursor, list_name)
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
        next_cursor = encode_cursor(list_name, rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
