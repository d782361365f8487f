"""Invoice totals from lines, discounts and tax rates, in integer minor units.

The rules, applied in this order:

1. line gross = round_half_up(quantity x unit_price)
2. line discount: percent -> round_half_up(gross x percent / 100); amount -> min(amount, gross);
   line net = gross - line discount
3. subtotal = sum of line nets
4. invoice discount: percent -> round_half_up(subtotal x percent / 100);
   amount -> min(amount, subtotal); allocated to the lines in proportion to their net by the
   largest-remainder method, so the allocations add up to the discount exactly (ties go to the
   earlier line)
5. per tax rate r: base_r = sum of (net - allocated discount) over the lines with rate r;
   tax_r = round_half_up(base_r x r / 100), so tax is rounded once per rate
6. tax_total = sum of tax_r; total = subtotal - invoice discount + tax_total
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from frontdesk.payments.money import round_half_up

DISCOUNT_TYPES = ("percent", "amount")


@dataclass(frozen=True)
class LineInput:
    quantity: Decimal
    unit_price: int
    tax_rate: Decimal
    discount_type: str | None = None
    # A percent as a Decimal, or an amount in minor units.
    discount_value: Decimal | int | None = None


@dataclass(frozen=True)
class LineTotals:
    gross: int
    discount: int
    net: int
    # This line's share of the invoice-level discount.
    allocated_discount: int


@dataclass(frozen=True)
class TaxLine:
    rate: Decimal
    base: int
    tax: int


@dataclass(frozen=True)
class Totals:
    lines: list[LineTotals]
    subtotal: int
    discount_total: int
    tax_breakdown: list[TaxLine]
    tax_total: int
    total: int


def _discount(base: int, discount_type: str | None, value: Decimal | int | None) -> int:
    """Return the discount on ``base``: a rounded percent of it, or an amount capped at it."""
    if discount_type is None or value is None:
        return 0
    if discount_type == "percent":
        return round_half_up(Decimal(base) * Decimal(value) / 100)
    if discount_type == "amount":
        return min(int(value), base)
    raise ValueError(f"unknown discount type {discount_type!r}")


def allocate(amount: int, weights: list[int]) -> list[int]:
    """Split ``amount`` over ``weights`` proportionally; the parts add up to ``amount`` exactly.

    Largest-remainder method: each part starts at floor(amount x weight / total weight), and
    the units left over go one each to the parts with the largest remainders, earlier parts
    first on ties. With 0 <= amount <= sum(weights), no part exceeds its weight.
    """
    total_weight = sum(weights)
    if amount == 0 or total_weight == 0:
        return [0] * len(weights)
    parts = []
    remainders = []
    for weight in weights:
        quotient, remainder = divmod(amount * weight, total_weight)
        parts.append(quotient)
        remainders.append(remainder)
    left_over = amount - sum(parts)
    order = sorted(range(len(weights)), key=lambda index: (-remainders[index], index))
    for index in order[:left_over]:
        parts[index] += 1
    return parts


def compute(
    lines: list[LineInput],
    discount_type: str | None = None,
    discount_value: Decimal | int | None = None,
) -> Totals:
    """Compute the totals of an invoice; inputs are assumed validated (no negative values)."""
    # 60 significant digits keep every product exact for validated inputs (quantities below
    # 10^7 with 6 places, amounts below 10^16, rates with 4 places).
    with localcontext() as context:
        context.prec = 60
        return _compute(lines, discount_type, discount_value)


def _compute(
    lines: list[LineInput],
    discount_type: str | None,
    discount_value: Decimal | int | None,
) -> Totals:
    grosses = [round_half_up(line.quantity * line.unit_price) for line in lines]
    line_discounts = [
        _discount(gross, line.discount_type, line.discount_value)
        for gross, line in zip(grosses, lines, strict=True)
    ]
    nets = [gross - discount for gross, discount in zip(grosses, line_discounts, strict=True)]
    subtotal = sum(nets)

    discount_total = _discount(subtotal, discount_type, discount_value)
    allocated = allocate(discount_total, nets)

    bases: dict[Decimal, int] = {}
    for line, net, share in zip(lines, nets, allocated, strict=True):
        # Decimal("20") and Decimal("20.0") are equal and hash alike, so they share a rate.
        bases[line.tax_rate] = bases.get(line.tax_rate, 0) + net - share
    breakdown = [
        TaxLine(rate=rate, base=base, tax=round_half_up(Decimal(base) * rate / 100))
        for rate, base in sorted(bases.items())
    ]
    tax_total = sum(tax.tax for tax in breakdown)

    return Totals(
        lines=[
            LineTotals(gross=gross, discount=discount, net=net, allocated_discount=share)
            for gross, discount, net, share in zip(
                grosses, line_discounts, nets, allocated, strict=True
            )
        ],
        subtotal=subtotal,
        discount_total=discount_total,
        tax_breakdown=breakdown,
        tax_total=tax_total,
        total=subtotal - discount_total + tax_total,
    )
