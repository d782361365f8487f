"""Currencies, minor units, decimal inputs and rounding.

Amounts are integers in the currency's ISO 4217 minor unit: cents for EUR, yen for JPY
(exponent 0), fils for BHD (exponent 3). Quantities, percentages and tax rates are
``Decimal`` values parsed from strings, so no binary floating point enters a total.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from frontdesk.core.errors import ValidationFailed

# ISO 4217 active codes and their minor unit exponents (list one, as published by the ISO 4217
# maintenance agency in 2025). Codes whose minor unit is "N.A." (precious metals, XDR, XSU,
# XUA, test codes) are left out because an invoice cannot be expressed in them.
CURRENCIES: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2,
    "AWG": 2, "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0,
    "BMD": 2, "BND": 2, "BOB": 2, "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2,
    "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4,
    "CLP": 0, "CNY": 2, "COP": 2, "COU": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2,
    "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
    "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0,
    "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2,
    "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2,
    "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
    "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2,
    "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2,
    "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2,
    "NOK": 2, "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2,
    "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
    "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2,
    "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2,
    "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
    "UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2,
    "VED": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XCG": 2,
    "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

# The largest amount accepted anywhere, in minor units; it keeps every sum inside a signed
# 64-bit column with room for many lines.
MAX_AMOUNT = 10**15


def check_currency(code: Any, field: str = "currency") -> str:
    """Return ``code`` upper-cased if it is an ISO 4217 currency; raise a 422 naming ``field``."""
    if not isinstance(code, str) or code.upper() not in CURRENCIES:
        raise ValidationFailed(
            field,
            f"{code!r} is not an ISO 4217 currency code; use a three-letter code such as EUR.",
            "invalid_currency",
        )
    return code.upper()


def exponent(currency: str) -> int:
    """Return the number of decimal places of ``currency``'s minor unit."""
    return CURRENCIES[currency]


def parse_decimal(
    value: Any,
    field: str,
    *,
    places: int,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> Decimal:
    """Parse a decimal string (or an int) with at most ``places`` decimal places.

    Floats are rejected because they cannot carry an exact decimal value. Raises a 422
    naming ``field`` for anything that is not a finite number inside [minimum, maximum].
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed(
            field, 'Send a decimal number as a string, for example "1.5".', "invalid_decimal"
        )
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValidationFailed(
            field, f'{value!r} is not a decimal number; send for example "1.5".', "invalid_decimal"
        )
    if _decimal_places(number) > places:
        raise ValidationFailed(
            field, f"Use at most {places} decimal places.", "too_many_decimal_places"
        )
    if minimum is not None and number < minimum:
        raise ValidationFailed(field, f"Must be at least {minimum}.", "too_small")
    if maximum is not None and number > maximum:
        raise ValidationFailed(field, f"Must be at most {maximum}.", "too_large")
    # Normalize "1.50" and "1.5" to one form without switching to scientific notation.
    return number.quantize(Decimal(1)) if number == number.to_integral() else number.normalize()


def _decimal_places(number: Decimal) -> int:
    """Count the decimal places of a finite ``number``; trailing zeros do not count ("1.50" has 1).

    Works on the digits themselves, because ``normalize()`` would round past 28 digits.
    """
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + min(trailing, max(0, -exponent))))


def round_half_up(value: Decimal) -> int:
    """Round to an integer, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def decimal_text(value: Decimal) -> str:
    """Format a decimal without exponent notation ("1E+1" becomes "10")."""
    return format(value, "f")
