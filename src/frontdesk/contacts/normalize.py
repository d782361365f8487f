"""Normalization of contact values (email addresses, phones, search text) and checks of text
input shared by the forms, contacts and enquiries APIs."""

from __future__ import annotations

import unicodedata
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

from frontdesk.core.errors import ValidationFailed
from frontdesk.core.text import is_blank


class InvalidValue(ValueError):
    """A value that cannot be normalized; ``code`` is the stable error code for the API."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_email(value: str) -> str:
    """Validate an email address's syntax and return it lower-cased.

    Deliverability (DNS) is not checked, so validation never leaves the process.
    """
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue("invalid_email", str(exc)) from exc
    return result.normalized.lower()


def normalize_phone(value: str, default_country: str) -> str:
    """Parse a phone number and return it in E.164.

    A number written without a country code is read as a number of ``default_country``
    (ISO 3166-1 alpha-2).
    """
    try:
        number = phonenumbers.parse(value.strip(), default_country.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue("invalid_phone", "The phone number cannot be read.") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue("invalid_phone", "The phone number is not a valid number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def fold_text(value: str) -> str:
    """Return ``value`` in the form stored for case-insensitive search.

    Folding happens in Python because SQLite's lower() only changes ASCII letters; the
    stored text and the query are folded the same way, so LIKE compares them exactly.
    """
    return unicodedata.normalize("NFKC", value).casefold()


def _reject_controls(value: str, allowed: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise ValueError("Remove the control characters (such as NUL) from this text.")
    if value and not value.isspace() and is_blank(value):
        # Only invisible characters such as the zero-width space: the text looks empty.
        raise ValueError("The text has no visible character; enter some or leave it out.")
    return value


def _single_line(value: str) -> str:
    return _reject_controls(value, "")


def _multiline(value: str) -> str:
    return _reject_controls(value, "\n\r\t")


# Text fields of request bodies. Control characters are rejected because they have no use in
# these texts and PostgreSQL cannot store NUL in a text or JSONB value.
SINGLE_LINE_CHECK = AfterValidator(_single_line)
MULTILINE_CHECK = AfterValidator(_multiline)
SingleLineText = Annotated[str, SINGLE_LINE_CHECK]
MultilineText = Annotated[str, MULTILINE_CHECK]


def check_query_text(value: str | None, field: str) -> str | None:
    """Return a query parameter if it has no control characters; raise ValidationFailed."""
    if value is None:
        return None
    try:
        return _single_line(value)
    except ValueError as exc:
        raise ValidationFailed(field, str(exc), "invalid_characters") from exc
