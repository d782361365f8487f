"""Payment status moves and invoice settlement as the Stripe gateway needs them.

The payment state machine and the invoice totals belong to ``frontdesk.payments.payments``
and ``frontdesk.payments.invoices``. Both are imported when present. Until then the
fallbacks below apply the same documented rules, so the gateway works on its own.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import Invoice, Payment, PaymentTransition

# The moves the payment state machine allows; any other move changes nothing.
ALLOWED_MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"processing", "succeeded", "failed", "canceled"}),
    "processing": frozenset({"succeeded", "failed", "canceled"}),
    "succeeded": frozenset({"partially_refunded", "refunded", "disputed"}),
    "partially_refunded": frozenset({"refunded", "disputed"}),
    "disputed": frozenset({"succeeded", "partially_refunded", "refunded"}),
    # A declined attempt that the customer retries with another card succeeds later.
    "failed": frozenset({"succeeded", "canceled"}),
    "canceled": frozenset(),
    "refunded": frozenset(),
}
SETTLED = ("succeeded", "partially_refunded", "refunded", "disputed")

TransitionFunction = Callable[..., Awaitable[bool]]
ApplyPaymentsFunction = Callable[..., Awaitable[None]]


def _core(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(f"frontdesk.payments.{module}"), name)
    except (ImportError, AttributeError):
        return None


async def _fallback_transition(
    uow: UnitOfWork,
    payment: Payment,
    to_status: str,
    *,
    source: str,
    actor_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    if to_status not in ALLOWED_MOVES.get(payment.status, frozenset()):
        return False
    now = uow.now()
    uow.session.add(
        PaymentTransition(
            workspace_id=payment.workspace_id,
            payment_id=payment.id,
            from_status=payment.status,
            to_status=to_status,
            source=source,
            actor_id=actor_id,
            data=data or {},
            created_at=now,
        )
    )
    payment.status = to_status
    payment.updated_at = now
    await uow.session.flush()
    return True


async def move_payment(
    uow: UnitOfWork,
    payment: Payment,
    to_status: str,
    *,
    source: str,
    data: dict[str, Any] | None = None,
) -> bool:
    """Move ``payment`` forward to ``to_status``; return False for a backwards or unknown move."""
    if payment.status == to_status:
        return False
    transition: TransitionFunction = _core("payments", "transition") or _fallback_transition
    return await transition(uow, payment, to_status, source=source, data=data)


async def _fallback_apply_payments(uow: UnitOfWork, invoice: Invoice, *, source: str) -> None:
    rows = await uow.session.execute(
        sa.select(Payment.amount, Payment.amount_refunded).where(
            Payment.invoice_id == invoice.id, Payment.status.in_(SETTLED)
        )
    )
    invoice.amount_paid = sum(amount - refunded for amount, refunded in rows)
    if invoice.status in ("draft", "void", "uncollectible"):
        return
    covered = invoice.amount_paid + invoice.amount_credited
    if covered >= invoice.total:
        status = "paid"
    elif covered > 0:
        status = "partially_paid"
    elif invoice.due_date is not None and invoice.due_date < uow.now().date():
        status = "overdue"
    else:
        status = "open"
    if status != invoice.status:
        invoice.status = status
        invoice.paid_at = uow.now() if status == "paid" else None
    invoice.updated_at = uow.now()
    await uow.session.flush()


async def settle_invoice(uow: UnitOfWork, invoice_id: uuid.UUID | None, *, source: str) -> None:
    """Recompute the amounts and status of the payment's invoice after a payment changed."""
    if invoice_id is None:
        return
    invoice = await uow.session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None:
        return
    apply_payments: ApplyPaymentsFunction | None = _core("invoices", "apply_payments")
    if apply_payments is not None:
        await apply_payments(uow, invoice, source=source, actor_id=None)
    else:
        await _fallback_apply_payments(uow, invoice, source=source)
