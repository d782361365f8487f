"""Field types for request bodies that pydantic's lax mode would read too freely."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _date_text(value: Any) -> Any:
    # Lax mode reads a number as a Unix time, so 0 would become 1970-01-01.
    if not isinstance(value, str):
        raise PydanticCustomError("date_type", "Send the date as text, such as 2026-05-20.")
    return value


def _datetime_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "datetime_type", "Send the time as ISO 8601 text, such as 2026-05-20T09:30:00Z."
        )
    return value


DateText = Annotated[date, BeforeValidator(_date_text)]
DateTimeText = Annotated[datetime, BeforeValidator(_datetime_text)]
