"""Payments API: manual payments of an invoice, payment details, refunds, cancel, confirm."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from frontdesk.auth.dependencies import AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.payments import invoices, payments
from frontdesk.payments.schemas import (
    ManualPaymentCreate,
    PaymentConfirm,
    PaymentList,
    PaymentOut,
    RefundCreate,
)

router = APIRouter(tags=["payments"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such invoice or payment in this workspace."},
    409: {"model": Problem, "description": "The status does not allow this."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.post(
    "/invoices/{invoice_id}/payments",
    status_code=201,
    response_model=PaymentOut,
    responses=_ERRORS,
)
async def record_payment(
    uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID, body: ManualPaymentCreate
) -> PaymentOut:
    """Record a payment received outside Frontdesk (bank transfer, cash, card, other)."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    payment = await payments.record_manual_payment(uow, invoice, body=body, actor_id=actor.user_id)
    return await payments.payment_view(uow, payment)


@router.get("/invoices/{invoice_id}/payments", response_model=PaymentList, responses=_ERRORS)
@read_only
async def list_payments(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> PaymentList:
    """List the invoice's payments of every gateway, oldest first."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    rows = await payments.list_invoice_payments(uow, invoice)
    return PaymentList(items=await payments.payment_views(uow, rows))


@router.get("/payments/{payment_id}", response_model=PaymentOut, responses=_ERRORS)
@read_only
async def get_payment(uow: UowDep, actor: AgentDep, payment_id: uuid.UUID) -> PaymentOut:
    """Read a payment with its status transitions and refunds."""
    payment = await payments.get_payment(uow, actor.workspace_id, payment_id)
    return await payments.payment_view(uow, payment)


@router.post(
    "/payments/{payment_id}/refunds", status_code=201, response_model=PaymentOut, responses=_ERRORS
)
async def refund_payment(
    uow: UowDep, actor: AgentDep, payment_id: uuid.UUID, body: RefundCreate
) -> PaymentOut:
    """Refund part or all of a payment; manual refunds are recorded, not sent."""
    payment = await payments.get_payment(uow, actor.workspace_id, payment_id)
    await payments.refund_payment(uow, payment, body=body, actor_id=actor.user_id)
    return await payments.payment_view(uow, payment)


@router.post("/payments/{payment_id}/cancel", response_model=PaymentOut, responses=_ERRORS)
async def cancel_payment(uow: UowDep, actor: AgentDep, payment_id: uuid.UUID) -> PaymentOut:
    """Cancel a pending manual payment."""
    payment = await payments.get_payment(uow, actor.workspace_id, payment_id)
    await payments.cancel_payment(uow, payment, actor_id=actor.user_id)
    return await payments.payment_view(uow, payment)


@router.post("/payments/{payment_id}/confirm", response_model=PaymentOut, responses=_ERRORS)
async def confirm_payment(
    uow: UowDep, actor: AgentDep, payment_id: uuid.UUID, body: PaymentConfirm | None = None
) -> PaymentOut:
    """Mark a pending manual payment as received on `paid_on` (default today)."""
    payment = await payments.get_payment(uow, actor.workspace_id, payment_id)
    await payments.confirm_payment(
        uow, payment, paid_on=body.paid_on if body else None, actor_id=actor.user_id
    )
    return await payments.payment_view(uow, payment)
