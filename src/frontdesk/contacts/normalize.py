"""Normalization of the values that identify a contact: email addresses, phones, search text."""

from __future__ import annotations

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email


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
