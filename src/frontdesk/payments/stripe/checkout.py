"""Stripe Checkout for an invoice's amount due, and PaymentIntents for custom flows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import Conflict, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import Invoice, Payment
from frontdesk.payments.stripe.client import (
    AmountNotPayable,
    StripeClient,
    StripeError,
    to_stripe_amount,
)
from frontdesk.payments.stripe.credentials import StripeUnavailable, client_for

log = structlog.get_logger()

PAYABLE = ("open", "partially_paid", "overdue")


def amount_due(invoice: Invoice) -> int:
    return max(invoice.total - invoice.amount_paid - invoice.amount_credited, 0)


def _check_payable(invoice: Invoice) -> int:
    if invoice.status not in PAYABLE:
        raise Conflict(
            f"An invoice in status '{invoice.status}' cannot be paid online.",
            code="invoice_not_payable",
        )
    due = amount_due(invoice)
    if due <= 0:
        raise Conflict("The invoice has nothing left to pay.", code="invoice_not_payable")
    try:
        to_stripe_amount(due, invoice.currency)
    except AmountNotPayable as exc:
        raise ValidationFailed("amount", str(exc), "not_payable_in_currency") from exc
    return due


async def _reusable_session(client: StripeClient, payments: list[Payment], due: int) -> str | None:
    """Return the URL of a still open session for the same amount, so a second click reuses it."""
    for payment in payments:
        if payment.status != "pending" or payment.amount != due:
            continue
        if payment.stripe_checkout_session_id is None:
            continue
        session = await client.get(f"/v1/checkout/sessions/{payment.stripe_checkout_session_id}")
        if session.get("status") == "open" and session.get("url"):
            return str(session["url"])
    return None


async def create_checkout_for_invoice(uow: UnitOfWork, invoice: Invoice) -> str:
    """Create (or reuse) a Checkout Session for the amount due and return its URL.

    A pending payment records the session; checkout.session.completed settles it. The
    idempotency key names the invoice and the count of earlier sessions, so a request that
    runs again after a crash gets the same session back instead of a second one.
    """
    due = _check_payable(invoice)
    earlier = list(
        await uow.session.scalars(
            sa.select(Payment)
            .where(
                Payment.invoice_id == invoice.id,
                Payment.gateway == "stripe",
                Payment.stripe_checkout_session_id.is_not(None),
            )
            .order_by(Payment.created_at)
        )
    )
    public = uow.settings.resolved_public_url
    page = f"{public}/pay/{invoice.public_token}"
    currency = invoice.currency.lower()
    params: dict[str, Any] = {
        "mode": "payment",
        "success_url": f"{page}?checkout=success",
        "cancel_url": f"{page}?checkout=canceled",
        "client_reference_id": str(invoice.id),
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": to_stripe_amount(due, invoice.currency),
                    "product_data": {"name": f"Invoice {invoice.number or invoice.id}"},
                },
            }
        ],
        "metadata": {"invoice_id": str(invoice.id), "workspace_id": str(invoice.workspace_id)},
        "payment_intent_data": {
            "metadata": {
                "invoice_id": str(invoice.id),
                "workspace_id": str(invoice.workspace_id),
            }
        },
    }
    customer_email = (invoice.customer or {}).get("email")
    if customer_email:
        params["customer_email"] = customer_email
    key = f"{invoice.workspace_id}:{invoice.id}:checkout:{len(earlier)}:v1"
    client = await client_for(uow, invoice.workspace_id)
    async with client:
        try:
            reused = await _reusable_session(client, earlier, due)
            if reused is not None:
                return reused
            session = await client.post("/v1/checkout/sessions", params, idempotency_key=key)
        except StripeError as exc:
            log.warning(
                "stripe.checkout_failed",
                invoice_id=str(invoice.id),
                status=exc.status,
                error_type=exc.error_type,
            )
            raise StripeUnavailable(
                f"Stripe did not start the payment: {exc.message} Try again later."
            ) from exc
    now = uow.now()
    uow.session.add(
        Payment(
            workspace_id=invoice.workspace_id,
            invoice_id=invoice.id,
            contact_id=invoice.contact_id,
            gateway="stripe",
            method="card",
            status="pending",
            currency=invoice.currency,
            amount=due,
            amount_refunded=0,
            reference=session["id"],
            stripe_checkout_session_id=session["id"],
            created_at=now,
            updated_at=now,
        )
    )
    await uow.session.flush()
    log.info("stripe.checkout_created", invoice_id=str(invoice.id))
    return str(session["url"])


async def create_payment_intent(
    uow: UnitOfWork, payment: Payment, *, customer_id: str | None = None
) -> dict[str, Any]:
    """Create the PaymentIntent of a pending Stripe payment; the caller confirms it client-side.

    Returns the intent, whose ``client_secret`` goes to the browser. The key names the
    payment, so a retried request gets the same intent.
    """
    params: dict[str, Any] = {
        "amount": to_stripe_amount(payment.amount, payment.currency),
        "currency": payment.currency.lower(),
        "automatic_payment_methods": {"enabled": True},
        "customer": customer_id,
        "metadata": {
            "payment_id": str(payment.id),
            "workspace_id": str(payment.workspace_id),
            "invoice_id": str(payment.invoice_id) if payment.invoice_id else "",
        },
    }
    client = await client_for(uow, payment.workspace_id)
    async with client:
        intent = await client.post(
            "/v1/payment_intents",
            params,
            idempotency_key=f"{payment.workspace_id}:{payment.id}:payment_intent:v1",
        )
    payment.stripe_payment_intent_id = intent["id"]
    payment.updated_at = uow.now()
    await uow.session.flush()
    return intent
