"""Field types for request values that pydantic's lax mode would read too freely."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StrictFloat, StrictInt
from pydantic_core import PydanticCustomError

# An ISO 8601 date or date and time starts with the full date. Lax mode would also read
# digits alone ("1700000000", "-5") as a Unix time.
_ISO_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

DATE_MESSAGE = "Send a valid date as ISO 8601 text, such as 2026-05-20."
DATETIME_MESSAGE = "Send a valid time as ISO 8601 text, such as 2026-05-20T09:30:00Z."


def _iso_text(kind: str, message: str) -> Callable[[Any], Any]:
    """Build a check that passes only text starting with a full ISO 8601 date. Its errors
    have the codes ``{kind}_type`` and ``{kind}_parsing``."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError(f"{kind}_type", message)
        if not _ISO_DATE_START.match(value):
            raise PydanticCustomError(f"{kind}_parsing", message)
        return value

    return check


# For JSON bodies and query strings alike.
DateText = Annotated[date, BeforeValidator(_iso_text("date", DATE_MESSAGE))]
DateTimeText = Annotated[datetime, BeforeValidator(_iso_text("datetime", DATETIME_MESSAGE))]

# The earliest date of a business record (an invoice, a payment, a subscription's start).
# Year 1 is a valid ISO date but on an invoice it is a typing mistake.
EARLIEST_RECORD_DATE = date(1900, 1, 1)


def _record_date(value: date) -> date:
    if value < EARLIEST_RECORD_DATE:
        raise PydanticCustomError(
            "out_of_range", f"Use a date from {EARLIEST_RECORD_DATE.isoformat()} on."
        )
    return value


RecordDate = Annotated[DateText, AfterValidator(_record_date)]


def _json_number(value: Any) -> Any:
    # Checked before the union, whose members would each report the value (".int", ".float").
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "number_type", "Send a number, such as 5 or 2.5, not text or true and false."
        )
    return value


# A JSON number, whole or not, kept as the client sent it.
JsonNumber = Annotated[StrictInt | StrictFloat, BeforeValidator(_json_number)]
