"""Payments: the status machine, manual payments, refunds and cancellation.

Statuses move only along ``TRANSITIONS``, so an event that arrives late (a "processing"
after a "succeeded") changes nothing. Every change adds a ``PaymentTransition`` and a
``payment.<status>`` event, and the invoice's paid amount and status are recomputed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.db import dialect_name
from frontdesk.core.errors import Conflict, NotFound, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import invoices, money
from frontdesk.payments.models import Invoice, Payment, PaymentTransition, Refund
from frontdesk.payments.schemas import ManualPaymentCreate, PaymentOut, RefundCreate

log = structlog.get_logger()

# The moves a payment's status may make. Anything else, including staying put, is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"processing", "succeeded", "failed", "canceled"}),
    "processing": frozenset({"succeeded", "failed", "canceled"}),
    # A declined attempt that the customer retries with another card succeeds later.
    "failed": frozenset({"succeeded", "canceled"}),
    # A dispute closed as lost may arrive before the event that opened it, so succeeded and
    # partially_refunded lead to dispute_lost directly.
    "succeeded": frozenset({"partially_refunded", "refunded", "disputed", "dispute_lost"}),
    "partially_refunded": frozenset({"refunded", "disputed", "dispute_lost"}),
    # Won disputes go back to succeeded, or to a refund status when refunds exist.
    "disputed": frozenset({"succeeded", "partially_refunded", "refunded", "dispute_lost"}),
    "refunded": frozenset(),
    "canceled": frozenset(),
    # The card issuer took the disputed amount back for good.
    "dispute_lost": frozenset(),
}
PAYMENT_STATUSES = tuple(TRANSITIONS)
REFUNDABLE = ("succeeded", "partially_refunded")

RefundFunction = Callable[[UnitOfWork, Payment, int, str, "uuid.UUID | None"], Awaitable[Refund]]
# Refunds through a gateway (Stripe) are sent by the gateway's module, registered here.
_REFUNDERS: dict[str, RefundFunction] = {}


def register_refunder(gateway: str) -> Callable[[RefundFunction], RefundFunction]:
    """Register the function that refunds payments of ``gateway`` through its provider."""

    def register(function: RefundFunction) -> RefundFunction:
        _REFUNDERS[gateway] = function
        return function

    return register


def can_transition(payment: Payment, to_status: str) -> bool:
    """Return whether ``TRANSITIONS`` allows ``payment`` to move to ``to_status``."""
    return to_status in TRANSITIONS.get(payment.status, frozenset())


async def transition(
    uow: UnitOfWork,
    payment: Payment,
    to_status: str,
    *,
    source: str,
    actor_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """Move ``payment`` to ``to_status`` if ``TRANSITIONS`` allows it; returns whether it moved.

    A backwards, repeated or unknown move returns False and changes nothing. A move adds a
    PaymentTransition and a ``payment.<to_status>`` event; the caller recomputes the invoice
    (``invoices.apply_payments``) once its amounts are final.
    """
    if not can_transition(payment, to_status):
        log.info(
            "payment.transition_ignored",
            payment_id=str(payment.id),
            from_status=payment.status,
            to_status=to_status,
            source=source,
        )
        return False
    before = payment.status
    payment.status = to_status
    payment.updated_at = uow.now()
    _add_transition(uow, payment, before, to_status, source=source, actor_id=actor_id, data=data)
    await uow.session.flush()
    uow.record_event(
        f"payment.{to_status}",
        await payment_data(uow, payment),
        workspace_id=payment.workspace_id,
    )
    return True


def _add_transition(
    uow: UnitOfWork,
    payment: Payment,
    from_status: str | None,
    to_status: str,
    *,
    source: str,
    actor_id: uuid.UUID | None,
    data: dict[str, Any] | None,
) -> None:
    uow.session.add(
        PaymentTransition(
            workspace_id=payment.workspace_id,
            payment_id=payment.id,
            from_status=from_status,
            to_status=to_status,
            source=source,
            actor_id=actor_id,
            data=data or {},
            created_at=uow.now(),
        )
    )


# --- Loading and views ----------------------------------------------------------------------


async def get_payment(uow: UnitOfWork, workspace_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
    """Load a payment of the workspace; another workspace's payment is not found."""
    payment = await uow.session.get(Payment, payment_id)
    if payment is None or payment.workspace_id != workspace_id:
        raise NotFound(f"No payment with id {payment_id} in this workspace.")
    return payment


async def _lock(uow: UnitOfWork, payment: Payment) -> None:
    if dialect_name(uow.session) == "postgresql":
        await uow.session.execute(
            sa.select(Payment.id).where(Payment.id == payment.id).with_for_update()
        )
        await uow.session.refresh(payment)


async def payment_views(uow: UnitOfWork, rows: list[Payment]) -> list[PaymentOut]:
    """Return the API views of payments with their transitions and refunds, oldest first.

    Transitions and refunds of all the payments are read with one query each.
    """
    ids = [payment.id for payment in rows]
    transitions: dict[uuid.UUID, list[PaymentTransition]] = {payment_id: [] for payment_id in ids}
    refunds: dict[uuid.UUID, list[Refund]] = {payment_id: [] for payment_id in ids}
    if ids:
        for item in await uow.session.scalars(
            sa.select(PaymentTransition)
            .where(PaymentTransition.payment_id.in_(ids))
            .order_by(PaymentTransition.created_at, PaymentTransition.id)
        ):
            transitions[item.payment_id].append(item)
        for refund in await uow.session.scalars(
            sa.select(Refund)
            .where(Refund.payment_id.in_(ids))
            .order_by(Refund.created_at, Refund.id)
        ):
            refunds[refund.payment_id].append(refund)
    return [_view(payment, transitions[payment.id], refunds[payment.id]) for payment in rows]


async def payment_view(uow: UnitOfWork, payment: Payment) -> PaymentOut:
    """Return the API view of one payment with its transitions and refunds."""
    return (await payment_views(uow, [payment]))[0]


def _view(
    payment: Payment, transitions: list[PaymentTransition], refunds: list[Refund]
) -> PaymentOut:
    return PaymentOut.model_validate(
        {
            "id": payment.id,
            "invoice_id": payment.invoice_id,
            "contact_id": payment.contact_id,
            "gateway": payment.gateway,
            "method": payment.method,
            "status": payment.status,
            "currency": payment.currency,
            "currency_exponent": money.exponent(payment.currency),
            "amount": payment.amount,
            "amount_refunded": payment.amount_refunded,
            "amount_charged_back": payment.amount_charged_back,
            "reference": payment.reference,
            "paid_on": payment.paid_on,
            "stripe_payment_intent_id": payment.stripe_payment_intent_id,
            "failure_reason": payment.failure_reason,
            "created_by": payment.created_by,
            "created_at": payment.created_at,
            "updated_at": payment.updated_at,
            "transitions": [
                {
                    "from_status": item.from_status,
                    "to_status": item.to_status,
                    "source": item.source,
                    "actor_id": item.actor_id,
                    "data": item.data or {},
                    "created_at": item.created_at,
                }
                for item in transitions
            ],
            "refunds": [
                {
                    "id": refund.id,
                    "amount": refund.amount,
                    "status": refund.status,
                    "reason": refund.reason,
                    "stripe_refund_id": refund.stripe_refund_id,
                    "failure_reason": refund.failure_reason,
                    "created_by": refund.created_by,
                    "created_at": refund.created_at,
                }
                for refund in refunds
            ],
        }
    )


async def payment_data(uow: UnitOfWork, payment: Payment) -> dict[str, Any]:
    """Return the payment's API view as JSON types, the data of ``payment.*`` events."""
    return (await payment_view(uow, payment)).model_dump(mode="json")


async def list_invoice_payments(uow: UnitOfWork, invoice: Invoice) -> list[Payment]:
    statement = (
        sa.select(Payment)
        .where(Payment.invoice_id == invoice.id)
        .order_by(Payment.created_at, Payment.id)
    )
    return list(await uow.session.scalars(statement))


async def _settle(uow: UnitOfWork, payment: Payment, *, actor_id: uuid.UUID | None) -> None:
    if payment.invoice_id is None:
        return
    invoice = await uow.session.get(Invoice, payment.invoice_id)
    if invoice is not None:
        await invoices.apply_payments(uow, invoice, source="staff", actor_id=actor_id)


# --- Manual payments ------------------------------------------------------------------------


async def record_manual_payment(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    body: ManualPaymentCreate,
    actor_id: uuid.UUID | None,
) -> Payment:
    """Record money received outside any gateway (bank transfer, cash, card terminal...).

    The amount may not exceed the amount due unless ``allow_overpayment`` is set. Pending
    payments count against the amount due too, so two recordings cannot both take it.
    """
    await invoices.lock_invoice(uow, invoice)
    if invoice.status == "draft":
        raise Conflict(
            "Payments apply to issued invoices; issue the invoice first.",
            code="invoice_not_issued",
        )
    if invoice.status == "void":
        raise Conflict("The invoice is void; it takes no payments.", code="invoice_void")
    today = uow.now().date()
    paid_on: date = body.paid_on or today
    if paid_on > today:
        raise ValidationFailed(
            "paid_on", f"The date is in the future; use {today.isoformat()} or earlier.", "future"
        )
    pending = await invoices.pending_payment_total(uow, invoice)
    available = max(0, invoices.amount_due(invoice) - pending)
    if body.amount > available and not body.allow_overpayment:
        raise ValidationFailed(
            "amount",
            f"The amount exceeds the {available} minor units still due; lower it or set "
            "allow_overpayment to true.",
            "exceeds_amount_due",
        )
    now = uow.now()
    payment = Payment(
        workspace_id=invoice.workspace_id,
        invoice_id=invoice.id,
        contact_id=invoice.contact_id,
        gateway="manual",
        method=body.method,
        status=body.status,
        currency=invoice.currency,
        amount=body.amount,
        amount_refunded=0,
        reference=body.reference,
        paid_on=paid_on if body.status == "succeeded" else body.paid_on,
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(payment)
    await uow.session.flush()
    _add_transition(uow, payment, None, body.status, source="staff", actor_id=actor_id, data={})
    await uow.session.flush()
    uow.record_event(
        "payment.created", await payment_data(uow, payment), workspace_id=invoice.workspace_id
    )
    await invoices.record_change(
        uow,
        invoice,
        activity="payment_recorded",
        event="invoice.payment_recorded",
        source="staff",
        actor_id=actor_id,
        data={
            "payment_id": str(payment.id),
            "amount": payment.amount,
            "method": payment.method,
            "status": payment.status,
        },
    )
    await invoices.apply_payments(uow, invoice, source="staff", actor_id=actor_id)
    log.info("payment.recorded", payment_id=str(payment.id), invoice_id=str(invoice.id))
    return payment


async def confirm_payment(
    uow: UnitOfWork, payment: Payment, *, paid_on: date | None, actor_id: uuid.UUID | None
) -> Payment:
    """Mark a pending manual payment as received."""
    await _lock(uow, payment)
    if payment.gateway != "manual" or payment.status not in ("pending", "processing"):
        raise Conflict(
            f"Only pending manual payments can be confirmed; this one is {payment.gateway} "
            f"and {payment.status}.",
            code="payment_not_pending",
        )
    invoice = (
        None if payment.invoice_id is None else await uow.session.get(Invoice, payment.invoice_id)
    )
    if invoice is not None and invoice.status == "void":
        raise Conflict(
            "The invoice is void, so it takes no payments; cancel this payment instead.",
            code="invoice_void",
        )
    today = uow.now().date()
    received = paid_on or today
    if received > today:
        raise ValidationFailed(
            "paid_on", f"The date is in the future; use {today.isoformat()} or earlier.", "future"
        )
    payment.paid_on = received
    await transition(uow, payment, "succeeded", source="staff", actor_id=actor_id)
    await _settle(uow, payment, actor_id=actor_id)
    return payment


async def cancel_payment(
    uow: UnitOfWork, payment: Payment, *, actor_id: uuid.UUID | None
) -> Payment:
    """Cancel a pending manual payment, for example a cheque that never arrived."""
    await _lock(uow, payment)
    if payment.gateway != "manual" or payment.status not in ("pending", "processing"):
        raise Conflict(
            f"Only pending manual payments can be canceled; this one is {payment.gateway} and "
            f"{payment.status}. Refund a received payment instead.",
            code="payment_not_pending",
        )
    await transition(uow, payment, "canceled", source="staff", actor_id=actor_id)
    await _settle(uow, payment, actor_id=actor_id)
    return payment


async def refund_payment(
    uow: UnitOfWork, payment: Payment, *, body: RefundCreate, actor_id: uuid.UUID | None
) -> Refund:
    """Refund part or all of a received payment.

    Manual payments are refunded outside Frontdesk and only recorded here; other gateways
    refund through their registered function.
    """
    await _lock(uow, payment)
    if payment.status not in REFUNDABLE:
        raise Conflict(
            f"Only succeeded or partially refunded payments can be refunded; this one is "
            f"{payment.status}.",
            code="payment_not_refundable",
        )
    refundable = payment.amount - payment.amount_refunded
    amount = body.amount if body.amount is not None else refundable
    if amount > refundable:
        raise ValidationFailed(
            "amount",
            f"At most {refundable} minor units of this payment are not refunded yet.",
            "too_large",
        )
    if payment.gateway != "manual":
        refunder = _REFUNDERS.get(payment.gateway)
        if refunder is None:
            raise Conflict(
                f"Refunds of {payment.gateway} payments are not available.",
                code="refund_unavailable",
            )
        return await refunder(uow, payment, amount, body.reason, actor_id)

    now = uow.now()
    refund = Refund(
        workspace_id=payment.workspace_id,
        payment_id=payment.id,
        amount=amount,
        status="succeeded",
        reason=body.reason,
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(refund)
    payment.amount_refunded += amount
    payment.updated_at = now
    await uow.session.flush()
    to_status = "refunded" if payment.amount_refunded >= payment.amount else "partially_refunded"
    data = {"refund_id": str(refund.id), "amount": amount}
    if not await transition(uow, payment, to_status, source="staff", actor_id=actor_id, data=data):
        # A second partial refund keeps the status; the amount still changed.
        uow.record_event(
            "payment.updated", await payment_data(uow, payment), workspace_id=payment.workspace_id
        )
    if payment.invoice_id is not None:
        invoice = await uow.session.get(Invoice, payment.invoice_id)
        if invoice is not None:
            await invoices.record_change(
                uow,
                invoice,
                activity="payment_refunded",
                event="invoice.payment_refunded",
                source="staff",
                actor_id=actor_id,
                data={"payment_id": str(payment.id), **data},
            )
            await invoices.apply_payments(uow, invoice, source="staff", actor_id=actor_id)
    log.info("payment.refund_recorded", payment_id=str(payment.id), refund_id=str(refund.id))
    return refund
