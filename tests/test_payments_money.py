"""Property tests of money parsing, rounding and invoice totals across currency exponents."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.core.errors import ValidationFailed
from frontdesk.payments import money, totals
from frontdesk.payments.totals import LineInput

EXPONENTS = {"JPY": 0, "EUR": 2, "BHD": 3, "CLF": 4}


def decimals(places: int, low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False
    )


@st.composite
def lines(draw: st.DrawFn, currency: str) -> LineInput:
    scale = 10 ** EXPONENTS[currency]
    discount_type = draw(st.sampled_from([None, "percent", "amount"]))
    discount_value: Decimal | int | None = None
    if discount_type == "percent":
        discount_value = draw(decimals(4, "0", "100"))
    elif discount_type == "amount":
        discount_value = draw(st.integers(0, 5_000 * scale))
    return LineInput(
        quantity=draw(decimals(6, "0.000001", "10000")),
        unit_price=draw(st.integers(0, 100_000 * scale)),
        tax_rate=draw(
            st.sampled_from([Decimal("0"), Decimal("5.5"), Decimal("20"), Decimal("7.125")])
        ),
        discount_type=discount_type,
        discount_value=discount_value,
    )


@st.composite
def invoices(
    draw: st.DrawFn,
) -> tuple[str, list[LineInput], str | None, Decimal | int | None]:
    currency = draw(st.sampled_from(sorted(EXPONENTS)))
    items = draw(st.lists(lines(currency), min_size=1, max_size=12))
    discount_type = draw(st.sampled_from([None, "percent", "amount"]))
    value: Decimal | int | None = None
    if discount_type == "percent":
        value = draw(decimals(4, "0", "100"))
    elif discount_type == "amount":
        value = draw(st.integers(0, 10**9))
    return currency, items, discount_type, value


@settings(max_examples=400, deadline=None)
@given(invoices())
def test_totals_invariants(
    invoice: tuple[str, list[LineInput], str | None, Decimal | int | None],
) -> None:
    _currency, items, discount_type, discount_value = invoice
    result = totals.compute(items, discount_type, discount_value)

    assert result.subtotal == sum(line.net for line in result.lines)
    assert result.total == result.subtotal - result.discount_total + result.tax_total
    assert sum(line.allocated_discount for line in result.lines) == result.discount_total
    assert result.tax_total == sum(tax.tax for tax in result.tax_breakdown)
    assert 0 <= result.discount_total <= result.subtotal
    assert result.total >= 0
    for line, item in zip(result.lines, items, strict=True):
        assert line.gross == money.round_half_up(item.quantity * item.unit_price)
        assert line.gross >= 0
        assert 0 <= line.discount <= line.gross
        assert line.net == line.gross - line.discount
        assert 0 <= line.allocated_discount <= line.net
    rates = [tax.rate for tax in result.tax_breakdown]
    assert rates == sorted(set(rates))
    for tax in result.tax_breakdown:
        expected_base = sum(
            line.net - line.allocated_discount
            for line, item in zip(result.lines, items, strict=True)
            if item.tax_rate == tax.rate
        )
        assert tax.base == expected_base
        assert tax.tax == money.round_half_up(Decimal(tax.base) * tax.rate / 100)


@settings(max_examples=200, deadline=None)
@given(invoices(), st.integers(2, 50))
def test_totals_scale_without_discounts(
    invoice: tuple[str, list[LineInput], str | None, Decimal | int | None], factor: int
) -> None:
    """Scaling every unit price by an integer scales the subtotal exactly (no discount)."""
    _currency, items, _type, _value = invoice
    integral = [
        LineInput(
            quantity=Decimal(max(1, int(item.quantity))),
            unit_price=item.unit_price,
            tax_rate=item.tax_rate,
        )
        for item in items
    ]
    scaled = [
        LineInput(
            quantity=item.quantity, unit_price=item.unit_price * factor, tax_rate=item.tax_rate
        )
        for item in integral
    ]
    base = totals.compute(integral)
    bigger = totals.compute(scaled)

    assert bigger.subtotal == base.subtotal * factor
    for small, large in zip(base.tax_breakdown, bigger.tax_breakdown, strict=True):
        assert large.base == small.base * factor
        # Tax is rounded once per rate, so scaling moves it by less than the factor.
        assert abs(large.tax - small.tax * factor) <= factor


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_allocate_exact_and_bounded(amount: int, weights: list[int]) -> None:
    amount = min(amount, sum(weights))
    parts = totals.allocate(amount, weights)

    assert sum(parts) == amount
    for part, weight in zip(parts, weights, strict=True):
        assert 0 <= part <= weight
        if sum(weights):
            # Each part is within one unit of its exact proportional share.
            assert abs(part * sum(weights) - amount * weight) < sum(weights)


def test_allocate_ties_go_to_earlier_line() -> None:
    assert totals.allocate(1, [1, 1, 1]) == [1, 0, 0]
    assert totals.allocate(2, [1, 1, 1]) == [1, 1, 0]
    # Shares 1.5, 1.5 and 2: the two equal remainders tie and the first line wins.
    assert totals.allocate(5, [3, 3, 4]) == [2, 1, 2]


def test_allocate_worked_example() -> None:
    # 10 over 1:1:1 -> 3.33 each, the earliest line gets the left-over unit.
    assert totals.allocate(10, [100, 100, 100]) == [4, 3, 3]


def test_round_half_up_away_from_zero() -> None:
    assert money.round_half_up(Decimal("2.5")) == 3
    assert money.round_half_up(Decimal("2.4999")) == 2
    assert money.round_half_up(Decimal("-2.5")) == -3
    assert money.round_half_up(Decimal("0.5")) == 1


def test_worked_invoice_in_eur() -> None:
    items = [
        LineInput(Decimal("3"), 1999, Decimal("20")),  # 59.97
        LineInput(
            Decimal("0.5"), 1001, Decimal("20"), "percent", Decimal("10")
        ),  # 5.005 -> 5.01, -0.50
        LineInput(Decimal("1"), 1000, Decimal("5.5"), "amount", 2000),  # discount capped at 10.00
    ]
    result = totals.compute(items, "amount", 1000)

    assert [line.gross for line in result.lines] == [5997, 501, 1000]
    assert [line.discount for line in result.lines] == [0, 50, 1000]
    assert [line.net for line in result.lines] == [5997, 451, 0]
    assert result.subtotal == 6448
    assert result.discount_total == 1000
    assert [line.allocated_discount for line in result.lines] == [930, 70, 0]
    assert [(str(t.rate), t.base, t.tax) for t in result.tax_breakdown] == [
        ("5.5", 0, 0),
        ("20", 5448, 1090),
    ]
    assert result.total == 6448 - 1000 + 1090


@pytest.mark.parametrize(
    ("currency", "quantity", "unit_price", "gross"),
    [
        ("JPY", "1.5", 333, 500),  # 499.5 rounds up to 500 yen
        ("EUR", "0.333333", 100, 33),
        ("BHD", "2.5", 1, 3),  # 2.5 fils -> 3
        ("CLF", "0.00005", 10000, 1),  # 0.5 of the smallest unit -> 1
    ],
)
def test_line_gross_per_exponent(currency: str, quantity: str, unit_price: int, gross: int) -> None:
    assert money.CURRENCIES[currency] == EXPONENTS[currency]
    result = totals.compute([LineInput(Decimal(quantity), unit_price, Decimal("0"))])
    assert result.lines[0].gross == gross


def test_currency_list_exponents() -> None:
    assert money.CURRENCIES["JPY"] == 0
    assert money.CURRENCIES["KWD"] == 3
    assert money.CURRENCIES["UYW"] == 4
    assert len(money.CURRENCIES) > 150
    assert all(len(code) == 3 and code.isupper() for code in money.CURRENCIES)


def test_check_currency_names_field() -> None:
    assert money.check_currency("eur") == "EUR"
    with pytest.raises(ValidationFailed) as caught:
        money.check_currency("EURO", "lines.0.currency")
    assert caught.value.errors[0].field == "lines.0.currency"
    with pytest.raises(ValidationFailed):
        money.check_currency("XAU")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1.1234567", "too_many_decimal_places"),
        # 29 significant digits: a rounding normalize() would hide the 29th.
        ("1.00000000000000000000000000001", "too_many_decimal_places"),
        ("abc", "invalid_decimal"),
        ("NaN", "invalid_decimal"),
        ("Infinity", "invalid_decimal"),
        ("-1", "too_small"),
        ("1000001", "too_large"),
        (1.5, "invalid_decimal"),
        (True, "invalid_decimal"),
    ],
)
def test_parse_decimal_rejects(text: object, code: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        money.parse_decimal(
            text, "lines.3.quantity", places=6, minimum=Decimal(0), maximum=Decimal(1_000_000)
        )
    assert caught.value.errors[0].field == "lines.3.quantity"
    assert caught.value.errors[0].code == code


def test_parse_decimal_normalizes() -> None:
    assert money.decimal_text(money.parse_decimal("1.50", "q", places=6)) == "1.5"
    assert money.decimal_text(money.parse_decimal("100", "q", places=6)) == "100"
    assert money.decimal_text(money.parse_decimal("1.000", "q", places=2)) == "1"
    assert money.decimal_text(money.parse_decimal(7, "q", places=0)) == "7"
    assert money.decimal_text(money.parse_decimal("0.000", "q", places=0)) == "0"
    assert money.decimal_text(money.parse_decimal("1E+2", "q", places=0)) == "100"
