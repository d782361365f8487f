"""Payment status moves and invoice settlement as the Stripe gateway applies them.

The state machine (``payments.transition``) and the invoice totals
(``invoices.apply_payments``) belong to the core payments modules; these helpers call them
with the gateway's source and skip moves that change nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import invoices, payments
from frontdesk.payments.models import Invoice, Payment


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
    return await payments.transition(uow, payment, to_status, source=source, data=data)


async def settle_invoice(uow: UnitOfWork, invoice_id: uuid.UUID | None, *, source: str) -> None:
    """Recompute the amounts and status of the payment's invoice after a payment changed."""
    if invoice_id is None:
        return
    invoice = await uow.session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None:
        return
    await invoices.apply_payments(uow, invoice, source=source, actor_id=None)
