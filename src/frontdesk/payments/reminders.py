"""Payment reminders: emails on the workspace's reminder days relative to an invoice's due date.

A reminder day of -3 sends three days before the due date, 0 on it, 7 a week after. Each
reminder goes out at most once per invoice and day: the job records a "reminder_sent"
activity with the day's offset and checks for it first, in the same transaction as the
email. Draft, paid, void and uncollectible invoices get no reminders.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.service import queue_email
from frontdesk.email.template_service import render_replacement
from frontdesk.payments import delivery, invoices, pdf
from frontdesk.payments.models import Invoice, InvoiceActivity, PaymentSettings
from frontdesk.payments.settings import DEFAULT_REMINDER_DAYS, load_settings

log = structlog.get_logger()

REMINDER_JOB = "payments.invoices.send_reminders"
REMINDER_KIND = "invoice_reminder"
REMINDER_ACTIVITY = "reminder_sent"
REMINDABLE = ("open", "partially_paid", "overdue")


async def _reminder_days(uow: UnitOfWork) -> tuple[dict[uuid.UUID, set[int]], set[int]]:
    """Return each workspace's reminder days and the default days of workspaces without settings."""
    rows = await uow.session.execute(
        sa.select(PaymentSettings.workspace_id, PaymentSettings.reminder_days)
    )
    configured = {workspace_id: set(days or []) for workspace_id, days in rows}
    return configured, set(DEFAULT_REMINDER_DAYS)


async def _already_sent(uow: UnitOfWork, invoice: Invoice, offset: int) -> bool:
    rows = await uow.session.scalars(
        sa.select(InvoiceActivity.data).where(
            InvoiceActivity.invoice_id == invoice.id,
            InvoiceActivity.type == REMINDER_ACTIVITY,
        )
    )
    return any(data.get("offset") == offset for data in rows)


async def send_reminder(uow: UnitOfWork, invoice: Invoice, offset: int) -> bool:
    """Queue the reminder of ``offset`` days for the invoice unless it was sent already.

    Returns False, sending nothing, when it was sent, when nothing is due or when the
    customer has no email address.
    """
    await invoices.lock_invoice(uow, invoice)
    if invoice.status not in REMINDABLE or invoices.amount_due(invoice) <= 0:
        return False
    if await _already_sent(uow, invoice, offset):
        return False
    recipient = await delivery.customer_email(uow, invoice)
    if not recipient:
        log.info("payments.reminder_skipped", invoice_id=str(invoice.id), reason="no_email")
        return False

    settings = await load_settings(uow, invoice.workspace_id)
    seller = delivery.business_name(invoice, settings)
    assert invoice.due_date is not None  # the query selects invoices with a due date
    values: dict[str, Any] = {
        "customer_name": delivery.customer_name(invoice),
        "business_name": seller,
        "invoice_number": invoice.number or "",
        "amount_due": pdf.format_amount(invoices.amount_due(invoice), invoice.currency),
        "due_date": invoice.due_date.isoformat(),
        "days_overdue": offset,
        "payment_link": delivery.payment_url(uow, invoice),
    }
    if offset > 0:
        subject = f"Reminder: invoice {invoice.number} from {seller} is overdue"
    else:
        subject = f"Reminder: invoice {invoice.number} from {seller}"
    rendered = await render_replacement(
        uow, workspace_id=invoice.workspace_id, key=REMINDER_KIND, language="en", values=values
    ) or delivery.render_builtin(REMINDER_KIND, subject=subject, values=values)
    reply_to = (invoice.seller or {}).get("email")
    email = await queue_email(
        uow,
        kind=REMINDER_KIND,
        to=recipient,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        workspace_id=invoice.workspace_id,
        reply_to=str(reply_to) if reply_to else None,
        enquiry_id=invoice.enquiry_id,
    )
    await invoices.record_change(
        uow,
        invoice,
        activity=REMINDER_ACTIVITY,
        event="invoice.reminder_sent",
        source="job",
        actor_id=None,
        data={"offset": offset, "email_id": str(email.id), "to": email.to_address},
    )
    log.info(
        "payments.reminder_sent", invoice_id=str(invoice.id), email_id=str(email.id), offset=offset
    )
    return True


async def send_due_reminders(uow: UnitOfWork, *, today: date | None = None) -> int:
    """Send every reminder due today (UTC) and return how many were queued.

    NOTE: a reminder day on which the job did not run (the service was down all day) is
    skipped, not sent late.
    """
    today = today or uow.now().date()
    configured, default_days = await _reminder_days(uow)
    all_days = set(default_days).union(*configured.values())
    if not all_days:
        return 0
    due_dates = [today - timedelta(days=offset) for offset in sorted(all_days)]
    candidates = await uow.session.scalars(
        sa.select(Invoice)
        .where(Invoice.status.in_(REMINDABLE), Invoice.due_date.in_(due_dates))
        .order_by(Invoice.due_date, Invoice.id)
    )
    sent = 0
    for invoice in list(candidates):
        assert invoice.due_date is not None
        offset = (today - invoice.due_date).days
        if offset not in configured.get(invoice.workspace_id, default_days):
            continue
        if await send_reminder(uow, invoice, offset):
            sent += 1
    return sent


@periodic(REMINDER_JOB, every_seconds=86400)
async def send_reminders_job(uow: UnitOfWork, _payload: dict[str, Any]) -> None:
    sent = await send_due_reminders(uow)
    log.info("payments.reminders_run", sent=sent)
