"""Invoices of manual subscriptions: one per period, and one for a prorated plan change.

An invoice is created as a draft with one line from the plan, linked to the subscription,
and issued through the invoice core in the caller's transaction. The email with the PDF is
sent by a job of its own after the commit, so a failing PDF renderer or mail setup delays
the email without undoing the renewal.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog

from frontdesk.core.errors import ProblemError
from frontdesk.core.jobs import PermanentFailure, job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import delivery, invoices
from frontdesk.payments.models import Invoice, Plan, Subscription
from frontdesk.payments.pdf import format_amount
from frontdesk.payments.schemas import InvoiceCreate, InvoiceIssue, LineIn

log = structlog.get_logger()

SEND_JOB = "payments.subscriptions.send_invoice"


def _period_text(start: datetime, end: datetime) -> str:
    # The end is exclusive, so the period's last day is the day before it.
    return f"{start.date().isoformat()} to {(end - timedelta(days=1)).date().isoformat()}"


async def _issue(
    uow: UnitOfWork,
    subscription: Subscription,
    plan: Plan,
    description: str,
    amount: int,
    *,
    discount: int = 0,
    notes: str = "",
) -> Invoice:
    assert subscription.contact_id is not None
    line: dict[str, Any] = {
        "description": description,
        "quantity": "1",
        "unit_price": amount,
        "tax_rate": plan.tax_rate,
    }
    if discount:
        line["discount"] = {"type": "amount", "value": discount}
    body = InvoiceCreate(
        contact_id=subscription.contact_id,
        currency=plan.currency,
        lines=[LineIn.model_validate(line)],
        notes=notes,
    )
    invoice = await invoices.create_draft(
        uow, workspace_id=subscription.workspace_id, actor_id=None, body=body, source="job"
    )
    invoice.subscription_id = subscription.id
    await invoices.issue(uow, invoice, body=InvoiceIssue(), actor_id=None, source="job")
    uow.enqueue(
        SEND_JOB,
        {"invoice_id": str(invoice.id)},
        unique_key=f"{SEND_JOB}:{invoice.id}",
        workspace_id=subscription.workspace_id,
    )
    log.info(
        "subscription.invoice_issued",
        invoice_id=str(invoice.id),
        subscription_id=str(subscription.id),
    )
    return invoice


@job_handler(SEND_JOB)
async def send_invoice_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Email a subscription invoice to its contact; skipped once it is no longer owed."""
    invoice = await uow.session.get(Invoice, uuid.UUID(payload["invoice_id"]))
    if invoice is None or invoice.status not in ("open", "partially_paid", "overdue"):
        return
    try:
        await delivery.send_invoice(uow, invoice, to=None, message=None, actor_id=None)
    except ProblemError as exc:
        # A missing address or an invoice that cannot be sent does not change by retrying.
        if exc.status < 500:
            raise PermanentFailure(f"{exc.code}: {exc.detail}") from exc
        raise


async def issue_period_invoice(
    uow: UnitOfWork,
    subscription: Subscription,
    plan: Plan,
    *,
    credit: int = 0,
    credited_plan: Plan | None = None,
    credited_until: datetime | None = None,
) -> Invoice:
    """Issue the invoice of the subscription's current period.

    A ``credit`` for the unused part of ``credited_plan`` until ``credited_until``, after a
    change to another interval, is an amount discount on the line, stated in the notes.
    """
    assert subscription.current_period_start and subscription.current_period_end
    period = _period_text(subscription.current_period_start, subscription.current_period_end)
    notes = ""
    if credit and credited_plan is not None and credited_until is not None:
        notes = (
            f"The line is reduced by {format_amount(credit, plan.currency)} for the unused "
            f"part of {credited_plan.name} from "
            f"{subscription.current_period_start.date().isoformat()} to "
            f"{(credited_until - timedelta(days=1)).date().isoformat()}."
        )
    return await _issue(
        uow,
        subscription,
        plan,
        f"{plan.name} ({period})",
        plan.amount,
        discount=credit,
        notes=notes,
    )


async def issue_proration_invoice(
    uow: UnitOfWork, subscription: Subscription, old: Plan, new: Plan, amount: int
) -> Invoice:
    """Issue the price difference of a plan change for the rest of the current period."""
    assert subscription.current_period_end is not None
    until = subscription.current_period_end.date().isoformat()
    description = f"Change from {old.name} to {new.name}, prorated until {until}"
    return await _issue(uow, subscription, new, description, amount)
