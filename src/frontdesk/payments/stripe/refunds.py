"""Refunds of Stripe payments: recorded at once, sent to Stripe by a job.

The refund row is written in the staff request and the ``payments.stripe_refund`` job sends
it. The job's POST carries the idempotency key ``{workspace}:{refund id}:refund:v1``, so a job
that crashed after Stripe accepted the refund and runs again gets Stripe's first response back
and never refunds twice. Stripe's refund webhooks then settle the payment's amounts.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import Conflict, ValidationFailed
from frontdesk.core.jobs import PermanentFailure, RetryLater, job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import Payment, Refund
from frontdesk.payments.payments import register_refunder
from frontdesk.payments.stripe.client import (
    AmountNotPayable,
    ApiConnectionError,
    RateLimitError,
    StripeError,
    to_stripe_amount,
)
from frontdesk.payments.stripe.credentials import client_for
from frontdesk.payments.stripe.events import raise_refunded, succeeded_refunds

log = structlog.get_logger()

REFUND_JOB = "payments.stripe_refund"
REFUNDABLE = ("succeeded", "partially_refunded")


def refund_idempotency_key(refund: Refund) -> str:
    return f"{refund.workspace_id}:{refund.id}:refund:v1"


# POST /payments/{id}/refunds sends refunds of Stripe payments through this function.
@register_refunder("stripe")
async def refund_stripe_payment(
    uow: UnitOfWork,
    payment: Payment,
    amount: int,
    reason: str,
    actor_id: uuid.UUID | None,
) -> Refund:
    """Record a pending refund of a Stripe payment and queue the job that sends it to Stripe.

    The caller loaded the payment through its workspace check. The amount must not
    exceed what is left after earlier refunds, pending ones included.
    """
    if payment.gateway != "stripe" or payment.stripe_payment_intent_id is None:
        raise Conflict(
            "This payment was not made through Stripe; record the refund manually.",
            code="not_a_stripe_payment",
        )
    if payment.status not in REFUNDABLE:
        raise Conflict(
            f"A payment in status '{payment.status}' cannot be refunded; only succeeded or "
            "partially refunded payments can.",
            code="payment_not_refundable",
        )
    if amount <= 0:
        raise ValidationFailed("amount", "must be a positive amount in minor units", "too_small")
    reserved = await uow.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status.in_(("pending", "succeeded"))
        )
    )
    remaining = payment.amount - max(int(reserved or 0), payment.amount_refunded)
    if amount > remaining:
        raise ValidationFailed(
            "amount",
            f"must be at most {remaining}, the amount not yet refunded",
            "exceeds_refundable",
        )
    try:
        to_stripe_amount(amount, payment.currency)
    except AmountNotPayable as exc:
        raise ValidationFailed("amount", str(exc), "not_payable_in_currency") from exc
    now = uow.now()
    refund = Refund(
        workspace_id=payment.workspace_id,
        payment_id=payment.id,
        amount=amount,
        status="pending",
        reason=reason,
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(refund)
    await uow.session.flush()
    uow.enqueue(REFUND_JOB, {"refund_id": str(refund.id)}, workspace_id=payment.workspace_id)
    log.info("stripe.refund_requested", payment_id=str(payment.id), refund_id=str(refund.id))
    return refund


@job_handler(REFUND_JOB)
async def send_refund(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Create the refund in Stripe and store Stripe's refund id and status."""
    refund = await uow.session.get(Refund, uuid.UUID(payload["refund_id"]), with_for_update=True)
    if refund is None or refund.stripe_refund_id is not None:
        return
    payment = await uow.session.get(Payment, refund.payment_id, with_for_update=True)
    if payment is None or payment.stripe_payment_intent_id is None:
        raise PermanentFailure("the refund's payment has no Stripe payment intent")
    params = {
        "payment_intent": payment.stripe_payment_intent_id,
        "amount": to_stripe_amount(refund.amount, payment.currency),
        # Stripe's reason is an enum; our free text goes into the metadata.
        "reason": "requested_by_customer",
        "metadata": {
            "refund_id": str(refund.id),
            "payment_id": str(payment.id),
            "workspace_id": str(payment.workspace_id),
        },
    }
    client = await client_for(uow, refund.workspace_id)
    async with client:
        try:
            obj = await client.post(
                "/v1/refunds", params, idempotency_key=refund_idempotency_key(refund)
            )
        except (RateLimitError, ApiConnectionError) as exc:
            raise RetryLater(f"Stripe is unavailable: {exc.message}") from exc
        except StripeError as exc:
            log.error(
                "stripe.refund_rejected",
                refund_id=str(refund.id),
                error_type=exc.error_type,
                code=exc.code,
            )
            refund.status = "failed"
            refund.failure_reason = f"{exc.code or exc.error_type}: {exc.message}"
            refund.updated_at = uow.now()
            return
    refund.stripe_refund_id = obj["id"]
    if obj.get("status") in ("succeeded", "failed", "canceled"):
        refund.status = obj["status"]
    if refund.status == "failed":
        refund.failure_reason = str(obj.get("failure_reason") or "failed")
    refund.updated_at = uow.now()
    if refund.status == "succeeded":
        # Card refunds usually succeed at once; the refund webhooks then change nothing.
        await uow.session.flush()
        await raise_refunded(
            uow,
            payment,
            await succeeded_refunds(uow, payment),
            source="job",
            data={"refund_id": str(refund.id), "stripe_refund_id": refund.stripe_refund_id},
        )
    log.info("stripe.refund_created", refund_id=str(refund.id), status=refund.status)
