"""The job that applies a stored Stripe event to our payments, refunds and disputes.

Each event is applied in the job's transaction together with ``processed_at``, so its effects
and the mark commit or roll back together. A handler that raises rolls both back and the job
system retries the job. Stripe delivers events at least once and in any order, so every
handler is idempotent and moves state only forward: payment transitions are forward-only,
refunded amounts only grow, and a closed dispute stays closed.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import invoices, payments
from frontdesk.payments.models import Dispute, Invoice, Payment, Refund, StripeEvent
from frontdesk.payments.stripe.client import from_stripe_amount
from frontdesk.payments.stripe.ledger import move_payment, settle_invoice

log = structlog.get_logger()

EVENT_JOB = "payments.stripe_event"

SUBSCRIPTION_EVENTS = frozenset(
    {
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
# Dispute statuses after which Stripe changes nothing.
DISPUTE_FINAL = frozenset({"won", "lost", "warning_closed"})
# Closed dispute statuses that leave the money with the merchant. An inquiry
# (warning_needs_response) that closes as warning_closed never became a chargeback.
DISPUTE_KEPT = frozenset({"won", "warning_closed"})
# Payment statuses that a dispute proves out of date. Only a captured charge can be
# disputed, so the payment succeeded even if its payment_intent.succeeded event is late.
NOT_YET_SUCCEEDED = frozenset({"pending", "processing", "failed"})
# Refund statuses in the order they can follow each other.
REFUND_RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 1, "canceled": 1}

Handler = Callable[[UnitOfWork, uuid.UUID, dict[str, Any], dict[str, Any]], Awaitable[None]]
SubscriptionHandler = Callable[[UnitOfWork, uuid.UUID, dict[str, Any]], Awaitable[None]]

_subscription_handler: SubscriptionHandler | None = None


def register_subscription_handler(function: SubscriptionHandler) -> SubscriptionHandler:
    """Register the function that applies subscription and Stripe invoice events."""
    global _subscription_handler
    _subscription_handler = function
    return function


def _find_subscription_handler() -> SubscriptionHandler | None:
    if _subscription_handler is not None:
        return _subscription_handler
    try:
        module = importlib.import_module("frontdesk.payments.subscriptions")
    except ImportError:
        return None
    handler: SubscriptionHandler | None = getattr(module, "apply_stripe_subscription_event", None)
    return handler


def _id_of(value: Any) -> str | None:
    """Return the id of a field that is either an id string or an expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def charge_id_of(intent: dict[str, Any]) -> str | None:
    """Return a PaymentIntent's charge: ``latest_charge`` (2022-11-15 on) or ``charges.data``."""
    latest = _id_of(intent.get("latest_charge"))
    if latest:
        return latest
    charges = intent.get("charges")
    if isinstance(charges, dict) and charges.get("data"):
        return _id_of(charges["data"][0])
    return None


def _metadata_uuid(obj: dict[str, Any], key: str) -> uuid.UUID | None:
    metadata = obj.get("metadata") or {}
    try:
        return uuid.UUID(str(metadata[key]))
    except (KeyError, ValueError):
        return None


async def _payment_by_intent(
    uow: UnitOfWork, workspace_id: uuid.UUID, intent_id: str | None
) -> Payment | None:
    if not intent_id:
        return None
    payment: Payment | None = await uow.session.scalar(
        sa.select(Payment)
        .where(
            Payment.workspace_id == workspace_id,
            Payment.stripe_payment_intent_id == intent_id,
        )
        .with_for_update()
    )
    return payment


async def _payment_for_object(
    uow: UnitOfWork, workspace_id: uuid.UUID, obj: dict[str, Any]
) -> Payment | None:
    """Find our payment of a PaymentIntent, charge, refund or dispute object."""
    intent_id = obj.get("id") if obj.get("object") == "payment_intent" else None
    intent_id = intent_id or _id_of(obj.get("payment_intent"))
    payment = await _payment_by_intent(uow, workspace_id, intent_id)
    if payment is not None:
        return payment
    payment_id = _metadata_uuid(obj, "payment_id")
    if payment_id is not None:
        payment = await uow.session.get(Payment, payment_id, with_for_update=True)
        if payment is not None and payment.workspace_id == workspace_id:
            return payment
    charge_id = obj.get("id") if obj.get("object") == "charge" else _id_of(obj.get("charge"))
    if charge_id:
        payment = await uow.session.scalar(
            sa.select(Payment)
            .where(Payment.workspace_id == workspace_id, Payment.stripe_charge_id == charge_id)
            .with_for_update()
        )
    return payment


def _transition_data(event: dict[str, Any]) -> dict[str, Any]:
    return {"stripe_event_id": event["id"], "stripe_event_type": event["type"]}


async def _on_checkout_completed(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any], session: dict[str, Any]
) -> None:
    if session.get("mode") not in (None, "payment"):
        return
    payment: Payment | None = await uow.session.scalar(
        sa.select(Payment)
        .where(
            Payment.workspace_id == workspace_id,
            Payment.stripe_checkout_session_id == session["id"],
        )
        .with_for_update()
    )
    if payment is None:
        payment = await _payment_from_session(uow, workspace_id, session)
        if payment is None:
            log.info("stripe.checkout_session_unknown", workspace_id=str(workspace_id))
            return
    intent_id = _id_of(session.get("payment_intent"))
    if intent_id and payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = intent_id
    data = _transition_data(event)
    if session.get("payment_status") in ("paid", "no_payment_required"):
        payment.paid_on = datetime.fromtimestamp(event["created"], UTC).date()
        await move_payment(uow, payment, "succeeded", source="webhook", data=data)
    else:
        # Delayed methods (SEPA debit, bank transfers) finish with payment_intent events.
        await move_payment(uow, payment, "processing", source="webhook", data=data)
    await settle_invoice(uow, payment.invoice_id, source="webhook")


async def _payment_from_session(
    uow: UnitOfWork, workspace_id: uuid.UUID, session: dict[str, Any]
) -> Payment | None:
    """Record the payment of a session whose request did not commit its own payment row."""
    invoice_id = _metadata_uuid(session, "invoice_id")
    if invoice_id is None:
        return None
    invoice = await uow.session.get(Invoice, invoice_id)
    if invoice is None or invoice.workspace_id != workspace_id:
        return None
    currency = str(session.get("currency") or invoice.currency).upper()
    now = uow.now()
    payment = Payment(
        workspace_id=workspace_id,
        invoice_id=invoice.id,
        contact_id=invoice.contact_id,
        gateway="stripe",
        method="card",
        status="pending",
        currency=currency,
        amount=from_stripe_amount(int(session.get("amount_total") or 0), currency),
        amount_refunded=0,
        reference=session["id"],
        stripe_checkout_session_id=session["id"],
        created_at=now,
        updated_at=now,
    )
    uow.session.add(payment)
    await uow.session.flush()
    return payment


async def _on_payment_intent(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any], intent: dict[str, Any]
) -> None:
    payment = await _payment_for_object(uow, workspace_id, intent)
    if payment is None:
        log.info("stripe.payment_intent_unknown", workspace_id=str(workspace_id))
        return
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = intent["id"]
    kind = event["type"].removeprefix("payment_intent.")
    data = _transition_data(event)
    if kind == "succeeded":
        payment.stripe_charge_id = payment.stripe_charge_id or charge_id_of(intent)
        payment.paid_on = payment.paid_on or datetime.fromtimestamp(event["created"], UTC).date()
        await move_payment(uow, payment, "succeeded", source="webhook", data=data)
    elif kind == "processing":
        await move_payment(uow, payment, "processing", source="webhook", data=data)
    elif kind == "payment_failed":
        error = intent.get("last_payment_error") or {}
        moved = await move_payment(uow, payment, "failed", source="webhook", data=data)
        if moved:
            payment.failure_reason = str(error.get("message") or error.get("code") or "failed")
    elif kind == "canceled":
        await move_payment(uow, payment, "canceled", source="webhook", data=data)
    await settle_invoice(uow, payment.invoice_id, source="webhook")


async def raise_refunded(
    uow: UnitOfWork, payment: Payment, refunded: int, *, source: str, data: dict[str, Any]
) -> None:
    """Grow the payment's refunded amount to ``refunded`` and move its status to match.

    A smaller or equal amount changes nothing, so late or repeated refund news is harmless.
    """
    if refunded <= payment.amount_refunded:
        return
    payment.amount_refunded = min(refunded, payment.amount)
    payment.updated_at = uow.now()
    target = "refunded" if payment.amount_refunded >= payment.amount else "partially_refunded"
    await move_payment(uow, payment, target, source=source, data=data)
    await settle_invoice(uow, payment.invoice_id, source=source)


async def _raise_refunded(
    uow: UnitOfWork, payment: Payment, refunded: int, event: dict[str, Any]
) -> None:
    await raise_refunded(uow, payment, refunded, source="webhook", data=_transition_data(event))


async def succeeded_refunds(uow: UnitOfWork, payment: Payment) -> int:
    """Return the sum of the payment's succeeded refunds, in minor units."""
    total = await uow.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "succeeded"
        )
    )
    return int(total or 0)


async def _upsert_refund(
    uow: UnitOfWork, workspace_id: uuid.UUID, payment: Payment, obj: dict[str, Any]
) -> Refund:
    refund: Refund | None = await uow.session.scalar(
        sa.select(Refund).where(Refund.stripe_refund_id == obj["id"])
    )
    if refund is None:
        refund_id = _metadata_uuid(obj, "refund_id")
        if refund_id is not None:
            refund = await uow.session.get(Refund, refund_id)
    now = uow.now()
    status = str(obj.get("status") or "pending")
    if refund is None:
        refund = Refund(
            workspace_id=workspace_id,
            payment_id=payment.id,
            amount=from_stripe_amount(int(obj.get("amount") or 0), payment.currency),
            status=status,
            reason=str(obj.get("reason") or ""),
            stripe_refund_id=obj["id"],
            created_at=now,
            updated_at=now,
        )
        uow.session.add(refund)
    else:
        refund.stripe_refund_id = refund.stripe_refund_id or obj["id"]
        if REFUND_RANK.get(status, 0) > REFUND_RANK.get(refund.status, 0):
            refund.status = status
            refund.updated_at = now
    if refund.status == "failed" and obj.get("failure_reason"):
        # Stripe's code, for example "insufficient_funds" or "expired_or_canceled_card".
        refund.failure_reason = str(obj["failure_reason"])
    await uow.session.flush()
    return refund


async def _on_charge_refunded(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any], charge: dict[str, Any]
) -> None:
    payment = await _payment_for_object(uow, workspace_id, charge)
    if payment is None:
        log.info("stripe.charge_unknown", workspace_id=str(workspace_id))
        return
    payment.stripe_charge_id = payment.stripe_charge_id or charge["id"]
    refunds = charge.get("refunds")
    if isinstance(refunds, dict):
        for obj in refunds.get("data") or []:
            await _upsert_refund(uow, workspace_id, payment, obj)
    refunded = from_stripe_amount(int(charge.get("amount_refunded") or 0), payment.currency)
    await _raise_refunded(uow, payment, refunded, event)


async def _on_refund(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any], obj: dict[str, Any]
) -> None:
    payment = await _payment_for_object(uow, workspace_id, obj)
    if payment is None:
        log.info("stripe.refund_unknown", workspace_id=str(workspace_id))
        return
    await _upsert_refund(uow, workspace_id, payment, obj)
    await _raise_refunded(uow, payment, await succeeded_refunds(uow, payment), event)


async def _on_dispute(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any], obj: dict[str, Any]
) -> None:
    payment = await _payment_for_object(uow, workspace_id, obj)
    if payment is None:
        log.info("stripe.dispute_unknown", workspace_id=str(workspace_id))
        return
    now = uow.now()
    status = str(obj.get("status") or "needs_response")
    amount = from_stripe_amount(int(obj.get("amount") or 0), payment.currency)
    dispute: Dispute | None = await uow.session.scalar(
        sa.select(Dispute).where(Dispute.stripe_dispute_id == obj["id"])
    )
    if dispute is None:
        dispute = Dispute(
            workspace_id=workspace_id,
            payment_id=payment.id,
            stripe_dispute_id=obj["id"],
            amount=amount,
            currency=str(obj.get("currency") or payment.currency).upper(),
            status=status,
            reason=str(obj.get("reason") or ""),
            created_at=now,
            updated_at=now,
        )
        uow.session.add(dispute)
    elif dispute.status not in DISPUTE_FINAL:
        dispute.status = status
        if obj.get("amount") is not None:
            dispute.amount = amount
        dispute.updated_at = now
    await uow.session.flush()
    data = {**_transition_data(event), "dispute_status": dispute.status}
    if payment.status in NOT_YET_SUCCEEDED:
        await move_payment(uow, payment, "succeeded", source="webhook", data=data)
    if dispute.status in DISPUTE_KEPT:
        # The payment returns to the status its refunds give it.
        restored = "succeeded"
        if payment.amount_refunded >= payment.amount:
            restored = "refunded"
        elif payment.amount_refunded > 0:
            restored = "partially_refunded"
        await move_payment(uow, payment, restored, source="webhook", data=data)
    elif dispute.status == "lost":
        await _charge_back(uow, payment, dispute, data)
    elif dispute.status not in DISPUTE_FINAL:
        await move_payment(uow, payment, "disputed", source="webhook", data=data)
    await settle_invoice(uow, payment.invoice_id, source="webhook")


async def _charge_back(
    uow: UnitOfWork, payment: Payment, dispute: Dispute, data: dict[str, Any]
) -> None:
    """Move the payment to dispute_lost and record the amount the card issuer took back.

    The amount is the dispute's, at most what the payment kept after its refunds. A payment
    that is dispute_lost already, or refunded in full, does not move.
    """
    if not payments.can_transition(payment, "dispute_lost"):
        return
    payment.amount_charged_back = max(
        0, min(dispute.amount, payment.amount - payment.amount_refunded)
    )
    payment.updated_at = uow.now()
    lost = {
        **data,
        "stripe_dispute_id": dispute.stripe_dispute_id,
        "amount": payment.amount_charged_back,
    }
    await move_payment(uow, payment, "dispute_lost", source="webhook", data=lost)
    if payment.invoice_id is None:
        return
    invoice = await uow.session.get(Invoice, payment.invoice_id, with_for_update=True)
    if invoice is None:
        return
    await invoices.record_change(
        uow,
        invoice,
        activity="dispute_lost",
        event="invoice.dispute_lost",
        source="webhook",
        actor_id=None,
        data={"payment_id": str(payment.id), **lost},
    )
    log.info(
        "payment.dispute_lost",
        payment_id=str(payment.id),
        invoice_id=str(invoice.id),
        amount=payment.amount_charged_back,
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_completed,
    "payment_intent.processing": _on_payment_intent,
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "charge.refunded": _on_charge_refunded,
    "charge.refund.updated": _on_refund,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
}


async def apply_event(uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any]) -> bool:
    """Apply one verified event; return False for a type this gateway does not use."""
    event_type = event["type"]
    obj = event["data"]["object"]
    handler = HANDLERS.get(event_type)
    if handler is not None:
        await handler(uow, workspace_id, event, obj)
        return True
    if event_type in SUBSCRIPTION_EVENTS:
        subscription_handler = _find_subscription_handler()
        if subscription_handler is None:
            # Without frontdesk.payments.subscriptions the event is marked processed with no
            # effect, and reconciliation shows the subscriptions that differ.
            log.warning("stripe.subscription_handler_missing", event_type=event_type)
            return False
        await subscription_handler(uow, workspace_id, event)
        return True
    return False


@job_handler(EVENT_JOB)
async def process_stripe_event(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Apply a stored event once; a raised error rolls back its effects and retries the job."""
    workspace_id = uuid.UUID(payload["workspace_id"])
    stored = await uow.session.get(
        StripeEvent, (workspace_id, payload["event_id"]), with_for_update=True
    )
    if stored is None or stored.processed_at is not None:
        return
    applied = await apply_event(uow, workspace_id, stored.payload)
    stored.attempts += 1
    stored.last_error = None
    stored.processed_at = uow.now()
    log.info(
        "stripe.event_processed",
        workspace_id=str(workspace_id),
        event_id=stored.event_id,
        event_type=stored.type,
        applied=applied,
    )
