"""Request and response bodies of the invoice, payment and payment settings APIs.

Quantities, rates and percentages travel as decimal strings ("1.5"), amounts as integers in
the currency's minor unit. Validation errors name the field by its path, for example
``lines.3.quantity`` or ``discount.value``.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from frontdesk.core.errors import ValidationFailed
from frontdesk.core.fields import RecordDate
from frontdesk.core.text import is_blank
from frontdesk.payments import money
from frontdesk.payments.numbering import check_pattern

INVOICE_STATUSES = ("draft", "open", "partially_paid", "paid", "overdue", "void", "uncollectible")
PAYMENT_METHODS = ("bank_transfer", "cash", "card", "other")
MAX_LINES = 500
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _decimal_validator(
    places: int, minimum: Decimal, maximum: Decimal, *, positive: bool = False
) -> Any:
    def validate(value: Any) -> Decimal:
        try:
            # A positive field reports "greater than 0" below, even for a negative number.
            number = money.parse_decimal(
                value,
                "value",
                places=places,
                minimum=None if positive else minimum,
                maximum=maximum,
            )
        except ValidationFailed as exc:
            error = exc.errors[0]
            raise PydanticCustomError(error.code, error.message) from exc
        if positive and number <= 0:
            raise PydanticCustomError("too_small", "Must be greater than 0.")
        return number

    return validate


def _as_text(value: Decimal) -> str:
    return money.decimal_text(value)


# A decimal string in the request; parsed to Decimal, sent back as a string.
Quantity = Annotated[
    Decimal,
    BeforeValidator(_decimal_validator(6, Decimal(0), Decimal(10_000_000), positive=True)),
    PlainSerializer(_as_text, return_type=str),
    Field(description='Decimal string with up to 6 places, greater than 0, e.g. "1.5".'),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_decimal_validator(4, Decimal(0), Decimal(100))),
    PlainSerializer(_as_text, return_type=str),
    Field(description='Decimal string from 0 to 100 with up to 4 places, e.g. "20".'),
]
MinorAmount = Annotated[int, Field(strict=True, ge=0, le=money.MAX_AMOUNT)]
PositiveAmount = Annotated[int, Field(strict=True, gt=0, le=money.MAX_AMOUNT)]


def _currency(value: Any) -> str:
    try:
        return money.check_currency(value)
    except ValidationFailed as exc:
        raise PydanticCustomError("invalid_currency", exc.errors[0].message) from exc


Currency = Annotated[str, AfterValidator(_currency), Field(examples=["EUR"])]


class DiscountIn(BaseModel):
    """A percent of the amount ("value": "10") or an amount in minor units ("value": 500)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["percent", "amount"]
    value: Any = Field(description="Percent: decimal string 0-100. Amount: integer minor units.")

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any, info: ValidationInfo) -> Decimal | int:
        kind = info.data.get("type")
        if kind == "percent":
            result: Decimal = _decimal_validator(4, Decimal(0), Decimal(100))(value)
            return result
        if isinstance(value, bool) or not isinstance(value, int):
            raise PydanticCustomError("invalid_amount", "Send an integer amount in minor units.")
        if value < 0 or value > money.MAX_AMOUNT:
            raise PydanticCustomError(
                "out_of_range", f"Send an amount from 0 to {money.MAX_AMOUNT}."
            )
        return value


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Field(min_length=1, max_length=2000)]
    quantity: Quantity = Decimal(1)
    unit_price: MinorAmount
    tax_rate: Percent = Decimal(0)
    discount: DiscountIn | None = None

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if is_blank(value):
            raise PydanticCustomError("blank", "Describe the line; it cannot be blank.")
        return value.strip()


class CustomerOverrides(BaseModel):
    """The customer's details to print, where they differ from or add to the contact."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=200)] = None
    company: Annotated[str | None, Field(max_length=200)] = None
    email: EmailStr | None = None
    phone: Annotated[str | None, Field(max_length=50)] = None
    address: Annotated[str | None, Field(max_length=1000)] = None
    tax_id: Annotated[str | None, Field(max_length=100)] = None


class InvoiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID
    enquiry_id: uuid.UUID | None = None
    currency: Currency | None = Field(default=None, description="Default: the settings' currency.")
    lines: Annotated[list[LineIn], Field(max_length=MAX_LINES)] = []
    discount: DiscountIn | None = None
    due_date: RecordDate | None = None
    notes: Annotated[str, Field(max_length=10_000)] = ""
    payment_terms: Annotated[str, Field(max_length=2000)] = ""
    customer_overrides: CustomerOverrides = CustomerOverrides()


class InvoiceFromEnquiry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Currency | None = None
    lines: Annotated[list[LineIn], Field(max_length=MAX_LINES)] = []
    discount: DiscountIn | None = None
    due_date: RecordDate | None = None
    notes: Annotated[str, Field(max_length=10_000)] = ""
    payment_terms: Annotated[str, Field(max_length=2000)] = ""
    customer_overrides: CustomerOverrides = CustomerOverrides()


class InvoiceUpdate(BaseModel):
    """Changes to a draft; ``lines`` replaces the whole list, in the order given."""

    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID | None = None
    enquiry_id: uuid.UUID | None = None
    currency: Currency | None = None
    lines: Annotated[list[LineIn] | None, Field(max_length=MAX_LINES)] = None
    discount: DiscountIn | None = None
    due_date: RecordDate | None = None
    notes: Annotated[str | None, Field(max_length=10_000)] = None
    payment_terms: Annotated[str | None, Field(max_length=2000)] = None
    customer_overrides: CustomerOverrides | None = None


class InvoiceIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issue_date: RecordDate | None = Field(default=None, description="Default: today in UTC.")
    due_date: RecordDate | None = Field(
        default=None, description="Default: the draft's due date, else issue date + terms."
    )


class CreditNoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount
    reason: Annotated[str, Field(max_length=2000)] = ""


class ManualPaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount
    paid_on: RecordDate | None = Field(default=None, description="Default: today in UTC.")
    method: Literal["bank_transfer", "cash", "card", "other"]
    reference: Annotated[str, Field(max_length=200)] = ""
    status: Literal["succeeded", "pending"] = Field(
        default="succeeded",
        description="pending records money announced but not yet arrived, e.g. an uncleared cheque.",
    )
    allow_overpayment: StrictBool = Field(
        default=False, description="Accept an amount above the amount due."
    )


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount | None = Field(default=None, description="Default: all not refunded.")
    reason: Annotated[str, Field(max_length=2000)] = ""


# --- Responses ------------------------------------------------------------------------------


class DiscountOut(BaseModel):
    type: str
    value: str | int


class LineOut(BaseModel):
    id: uuid.UUID
    position: int
    description: str
    quantity: str
    unit_price: int
    tax_rate: str
    discount: DiscountOut | None
    gross_amount: int
    net_amount: int


class TaxLineOut(BaseModel):
    rate: str
    base: int
    tax: int


class InvoiceOut(BaseModel):
    id: uuid.UUID
    number: str | None
    status: str
    currency: str
    currency_exponent: int
    contact_id: uuid.UUID | None
    enquiry_id: uuid.UUID | None
    subscription_id: uuid.UUID | None
    issue_date: date | None
    due_date: date | None
    discount: DiscountOut | None
    lines: list[LineOut]
    subtotal: int
    discount_total: int
    tax_breakdown: list[TaxLineOut]
    tax_total: int
    total: int
    amount_paid: int
    amount_credited: int
    amount_due: int
    amount_overpaid: int
    notes: str
    payment_terms: str
    seller: dict[str, Any]
    customer: dict[str, Any]
    customer_overrides: dict[str, Any]
    pdf_object_id: uuid.UUID | None
    public_token: str
    issued_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    uncollectible_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InvoiceSummary(BaseModel):
    id: uuid.UUID
    number: str | None
    status: str
    currency: str
    currency_exponent: int
    contact_id: uuid.UUID | None
    enquiry_id: uuid.UUID | None
    issue_date: date | None
    due_date: date | None
    total: int
    amount_due: int
    created_at: datetime


class InvoiceActivityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    source: str
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class InvoiceTimeline(BaseModel):
    items: list[InvoiceActivityOut]


class CreditNoteOut(BaseModel):
    id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    currency: str
    currency_exponent: int
    amount: int
    reason: str
    refund_id: uuid.UUID | None
    pdf_object_id: uuid.UUID | None
    created_by: uuid.UUID | None
    created_at: datetime


class CreditNoteList(BaseModel):
    items: list[CreditNoteOut]


PaymentStatus = Literal[
    "pending",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "partially_refunded",
    "refunded",
    "disputed",
    "dispute_lost",
]


class TransitionOut(BaseModel):
    from_status: PaymentStatus | None
    to_status: PaymentStatus
    source: str
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class RefundOut(BaseModel):
    id: uuid.UUID
    amount: int
    status: str
    reason: str
    stripe_refund_id: str | None
    failure_reason: str | None = Field(
        description="Why the refund failed: Stripe's error or its refund failure_reason."
    )
    created_by: uuid.UUID | None
    created_at: datetime


class PaymentOut(BaseModel):
    id: uuid.UUID
    invoice_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    gateway: str
    method: str
    status: PaymentStatus
    currency: str
    currency_exponent: int
    amount: int
    amount_refunded: int
    amount_charged_back: int = Field(
        description="The amount a lost dispute took back, in minor units. It is 0 unless the "
        "status is dispute_lost."
    )
    reference: str
    paid_on: date | None
    stripe_payment_intent_id: str | None
    failure_reason: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    transitions: list[TransitionOut]
    refunds: list[RefundOut]


class PaymentList(BaseModel):
    items: list[PaymentOut]


# --- Settings -------------------------------------------------------------------------------


class BusinessDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=200)] = None
    address: Annotated[str | None, Field(max_length=1000)] = None
    tax_id: Annotated[str | None, Field(max_length=100)] = None
    company_number: Annotated[str | None, Field(max_length=100)] = None
    email: EmailStr | None = None
    phone: Annotated[str | None, Field(max_length=50)] = None
    website: Annotated[str | None, Field(max_length=300)] = None


class Branding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    logo_object_id: uuid.UUID | None = None
    color: str | None = Field(default=None, description="#rrggbb")

    @field_validator("color")
    @classmethod
    def _color(cls, value: str | None) -> str | None:
        if value is not None and not COLOR.match(value):
            raise PydanticCustomError("invalid_color", 'Use a color as "#rrggbb", e.g. "#1a73e8".')
        return value.lower() if value else value


def _pattern(field: str) -> Any:
    def validate(value: str) -> str:
        try:
            return check_pattern(value, field)
        except ValidationFailed as exc:
            raise PydanticCustomError(exc.errors[0].code, exc.errors[0].message) from exc

    return validate


def _days(minimum: int, maximum: int) -> Any:
    def validate(values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise PydanticCustomError("duplicate", "List each day once.")
        for value in values:
            if not minimum <= value <= maximum:
                raise PydanticCustomError("out_of_range", f"Use days from {minimum} to {maximum}.")
        return sorted(values)

    return validate


class PaymentSettingsIn(BaseModel):
    """New payment settings; a field left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    invoice_number_pattern: Annotated[
        str | None,
        AfterValidator(lambda v: v if v is None else _pattern("invoice_number_pattern")(v)),
    ] = None
    credit_note_number_pattern: Annotated[
        str | None,
        AfterValidator(lambda v: v if v is None else _pattern("credit_note_number_pattern")(v)),
    ] = None
    default_currency: Currency | None = None
    payment_terms_days: Annotated[int | None, Field(strict=True, ge=0, le=365)] = None
    reminder_days: Annotated[
        list[Annotated[int, Field(strict=True)]] | None,
        Field(max_length=10),
        AfterValidator(lambda v: v if v is None else _days(-60, 365)(v)),
    ] = None
    dunning_days: Annotated[
        list[Annotated[int, Field(strict=True)]] | None,
        Field(max_length=10),
        AfterValidator(lambda v: v if v is None else _days(1, 365)(v)),
    ] = None
    business_details: BusinessDetails | None = None
    bank_details: Annotated[str | None, Field(max_length=2000)] = None
    branding: Branding | None = None


class PaymentSettingsOut(BaseModel):
    invoice_number_pattern: str
    credit_note_number_pattern: str
    default_currency: str
    default_currency_exponent: int
    payment_terms_days: int
    reminder_days: list[int]
    dunning_days: list[int]
    business_details: dict[str, Any]
    bank_details: str
    branding: dict[str, Any]
    updated_at: datetime | None


class PaymentConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paid_on: RecordDate | None = Field(default=None, description="Default: today in UTC.")
