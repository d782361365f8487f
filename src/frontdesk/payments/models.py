"""Invoices, credit notes, payments, refunds, disputes, plans and subscriptions.

Amounts are integers in the currency's minor unit (cents for EUR, yen for JPY, fils for
BHD). Quantities, rates and percentages are decimal strings, so both databases store them
exactly.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base, JSONType, UUIDPrimaryKey

Amount = sa.BigInteger


class PaymentSettings(Base):
    """A workspace's invoicing settings: numbering, defaults, its own details and branding."""

    __tablename__ = "payment_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    invoice_number_pattern: Mapped[str] = mapped_column(sa.String(100))
    credit_note_number_pattern: Mapped[str] = mapped_column(sa.String(100))
    default_currency: Mapped[str] = mapped_column(sa.String(3))
    payment_terms_days: Mapped[int] = mapped_column()
    # Days relative to the due date on which reminders go out: -3 is three days before.
    reminder_days: Mapped[list[int]] = mapped_column(JSONType, default=list)
    # Copied onto each invoice when it is issued: name, address, tax id, email, phone.
    business_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Shown on invoices for bank transfers.
    bank_details: Mapped[str] = mapped_column(sa.Text, default="")
    # {"logo_object_id", "color"}
    branding: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Days after a failed renewal on which dunning emails go out.
    dunning_days: Mapped[list[int]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class NumberSequence(Base):
    """The last number used per workspace, document kind and scope.

    The scope is the pattern rendered without its sequence (for example "INV-2026-"), so a
    pattern with a year starts again at 1 each year. Issuing updates this row in the issuing
    transaction, so a rolled-back issue gives its number back and numbers have no gaps.
    """

    __tablename__ = "number_sequences"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    last_value: Mapped[int] = mapped_column(sa.BigInteger)


class Invoice(UUIDPrimaryKey, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "number"),
        sa.Index("ix_invoices_workspace_created", "workspace_id", "created_at", "id"),
        sa.Index("ix_invoices_status_due", "status", "due_date"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    enquiry_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("enquiries.id", ondelete="SET NULL"), index=True
    )
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    # Set when the invoice is issued; drafts have none.
    number: Mapped[str | None] = mapped_column(sa.String(100))
    # draft, open, partially_paid, paid, overdue, void, uncollectible
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    currency: Mapped[str] = mapped_column(sa.String(3))
    issue_date: Mapped[date | None] = mapped_column(sa.Date)
    due_date: Mapped[date | None] = mapped_column(sa.Date)
    # Invoice-level discount: "percent" with a decimal string, or "amount" in minor units.
    discount_type: Mapped[str | None] = mapped_column(sa.String(10))
    discount_value: Mapped[str | None] = mapped_column(sa.String(40))
    subtotal: Mapped[int] = mapped_column(Amount, default=0)
    discount_total: Mapped[int] = mapped_column(Amount, default=0)
    tax_total: Mapped[int] = mapped_column(Amount, default=0)
    total: Mapped[int] = mapped_column(Amount, default=0)
    # Sum of settled payments minus their refunds and lost disputes, and of credit notes.
    amount_paid: Mapped[int] = mapped_column(Amount, default=0)
    amount_credited: Mapped[int] = mapped_column(Amount, default=0)
    # [{"rate": "20", "base": 1000, "tax": 200}]
    tax_breakdown: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    payment_terms: Mapped[str] = mapped_column(sa.Text, default="")
    # The business's and the customer's details as they were when the invoice was issued.
    seller: Mapped[dict[str, Any]] = mapped_column(default=dict)
    customer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The customer's details while a draft; copied to ``customer`` at issue.
    customer_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pdf_object_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Secret part of the public payment page address.
    public_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    issued_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    voided_at: Mapped[datetime | None] = mapped_column()
    uncollectible_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class InvoiceLine(UUIDPrimaryKey, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (sa.UniqueConstraint("invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    description: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[str] = mapped_column(sa.String(40))
    unit_price: Mapped[int] = mapped_column(Amount)
    # Percent as a decimal string, "0" for none.
    tax_rate: Mapped[str] = mapped_column(sa.String(20), default="0")
    discount_type: Mapped[str | None] = mapped_column(sa.String(10))
    discount_value: Mapped[str | None] = mapped_column(sa.String(40))
    # Quantity times unit price, rounded, and the same after the line's own discount.
    gross_amount: Mapped[int] = mapped_column(Amount, default=0)
    net_amount: Mapped[int] = mapped_column(Amount, default=0)


class InvoiceActivity(UUIDPrimaryKey, Base):
    """One entry of an invoice's timeline: created, edited, issued, sent, paid, voided..."""

    __tablename__ = "invoice_activities"
    __table_args__ = (sa.Index("ix_invoice_activities_invoice", "invoice_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    invoice_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("invoices.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(50))
    # api, staff, webhook or job
    source: Mapped[str] = mapped_column(sa.String(20))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()


class CreditNote(UUIDPrimaryKey, Base):
    """A reduction of an issued invoice, for example with a refund."""

    __tablename__ = "credit_notes"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "number"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(sa.String(100))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(Amount)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    refund_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    pdf_object_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()


class Payment(UUIDPrimaryKey, Base):
    """Money received or expected for an invoice, through the manual or the Stripe gateway."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.Index("ix_payments_workspace_created", "workspace_id", "created_at", "id"),
        sa.Index(
            "uq_payments_stripe_payment_intent",
            "workspace_id",
            "stripe_payment_intent_id",
            unique=True,
            sqlite_where=sa.text("stripe_payment_intent_id IS NOT NULL"),
            postgresql_where=sa.text("stripe_payment_intent_id IS NOT NULL"),
        ),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("invoices.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL")
    )
    # manual or stripe
    gateway: Mapped[str] = mapped_column(sa.String(10))
    # bank_transfer, cash, card, other...
    method: Mapped[str] = mapped_column(sa.String(30))
    # pending, processing, succeeded, failed, canceled, refunded, partially_refunded, disputed,
    # dispute_lost
    status: Mapped[str] = mapped_column(sa.String(20))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(Amount)
    amount_refunded: Mapped[int] = mapped_column(Amount, default=0)
    # What a lost dispute took back through the card issuer; 0 unless the status is dispute_lost.
    amount_charged_back: Mapped[int] = mapped_column(Amount, default=0)
    reference: Mapped[str] = mapped_column(sa.String(200), default="")
    # The day the money arrived, as staff record it or as the gateway reports it.
    paid_on: Mapped[date | None] = mapped_column(sa.Date)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class PaymentTransition(UUIDPrimaryKey, Base):
    """One status change of a payment and where it came from: api, webhook, staff or job."""

    __tablename__ = "payment_transitions"
    __table_args__ = (sa.Index("ix_payment_transitions_payment", "payment_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    payment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[str] = mapped_column(sa.String(20))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # For webhooks, the Stripe event id and type.
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()


class Refund(UUIDPrimaryKey, Base):
    __tablename__ = "refunds"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[int] = mapped_column(Amount)
    # pending, succeeded, failed, canceled
    status: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    # Why the refund failed: Stripe's error, or the failure_reason of its refund object.
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Dispute(UUIDPrimaryKey, Base):
    __tablename__ = "disputes"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    stripe_dispute_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # Stripe's dispute status: warning_needs_response, needs_response, under_review, won, lost...
    status: Mapped[str] = mapped_column(sa.String(40))
    reason: Mapped[str] = mapped_column(sa.String(100), default="")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class StripeAccount(Base):
    """A workspace's Stripe credentials, encrypted at rest, and its webhook address token."""

    __tablename__ = "stripe_accounts"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    secret_key_encrypted: Mapped[str] = mapped_column(sa.Text)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    publishable_key: Mapped[str | None] = mapped_column(sa.String(255))
    # Names the workspace in the webhook URL; not a secret (the signature is checked).
    webhook_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    livemode: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class StripeCustomer(Base):
    """The Stripe customer created for a contact."""

    __tablename__ = "stripe_customers"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_customer_id: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column()


class StripeEvent(Base):
    """A received Stripe webhook event, stored once by its id and applied by a job."""

    __tablename__ = "stripe_events"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    api_version: Mapped[str | None] = mapped_column(sa.String(40))
    # The event's "created" time from Stripe, used to order changes of one object.
    stripe_created: Mapped[int] = mapped_column(sa.BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    # Set in the transaction that applied the event's effects.
    processed_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class Plan(UUIDPrimaryKey, Base):
    __tablename__ = "plans"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # week, month or year
    interval: Mapped[str] = mapped_column(sa.String(10))
    interval_count: Mapped[int] = mapped_column(default=1)
    trial_days: Mapped[int] = mapped_column(default=0)
    tax_rate: Mapped[str] = mapped_column(sa.String(20), default="0")
    active: Mapped[bool] = mapped_column(default=True)
    stripe_product_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_price_id: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Subscription(UUIDPrimaryKey, Base):
    """A contact's subscription to a plan, billed by the scheduler or mirrored from Stripe.

    ``status`` takes Stripe's subscription statuses: incomplete, incomplete_expired,
    trialing, active, past_due, canceled, unpaid, paused.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.Index("ix_subscriptions_workspace_created", "workspace_id", "created_at", "id"),
        sa.Index("ix_subscriptions_due", "gateway", "status", "current_period_end"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    plan_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("plans.id", ondelete="RESTRICT"))
    gateway: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(20))
    current_period_start: Mapped[datetime | None] = mapped_column()
    current_period_end: Mapped[datetime | None] = mapped_column()
    trial_end: Mapped[datetime | None] = mapped_column()
    # The moment a manual subscription's periods are counted from: the end of the trial or
    # the start, moved to the change time by a plan change to another interval. Stripe
    # subscriptions leave it empty because Stripe sets their periods.
    billing_anchor: Mapped[datetime | None] = mapped_column()
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None] = mapped_column()
    paused_at: Mapped[datetime | None] = mapped_column()
    # Set when a renewal failed; dunning emails count days from it.
    past_due_since: Mapped[datetime | None] = mapped_column()
    dunning_emails_sent: Mapped[int] = mapped_column(default=0)
    stripe_subscription_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    # The Stripe event time of the last change applied, so older events change nothing.
    stripe_updated: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
