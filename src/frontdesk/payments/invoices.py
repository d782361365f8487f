"""Invoices: drafts, issuing, voiding, credit notes and the amounts paid.

Drafts are editable as a whole. Issuing gives them a number, dates and snapshots of the
seller and the customer. After that, only the status and the paid and credited amounts
change. Every change records an ``InvoiceActivity`` and an ``invoice.*`` event whose data is
the invoice's API view.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.models import Contact
from frontdesk.core.db import dialect_name
from frontdesk.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import new_token
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry
from frontdesk.payments import money, numbering, totals
from frontdesk.payments.models import CreditNote, Invoice, InvoiceActivity, InvoiceLine, Payment
from frontdesk.payments.schemas import (
    CreditNoteCreate,
    CreditNoteOut,
    DiscountIn,
    InvoiceCreate,
    InvoiceIssue,
    InvoiceOut,
    InvoiceSummary,
    InvoiceUpdate,
    LineIn,
)
from frontdesk.payments.settings import load_settings

log = structlog.get_logger()

ISSUED_STATUSES = ("open", "partially_paid", "paid", "overdue", "void", "uncollectible")
# Issued statuses in which the invoice is still owed.
OWED_STATUSES = ("open", "partially_paid", "overdue")
# Payment statuses whose amount, less refunds and lost disputes, counts as paid.
SETTLED_PAYMENT_STATUSES = (
    "succeeded",
    "partially_refunded",
    "refunded",
    "disputed",
    "dispute_lost",
)
# Largest invoice total accepted, in minor units.
MAX_TOTAL = money.MAX_AMOUNT


class InvoiceNotDraft(Conflict):
    code = "invoice_not_draft"
    title = "Invoice is not a draft"


# --- Loading and views ----------------------------------------------------------------------


async def find_invoice(
    uow: UnitOfWork, workspace_id: uuid.UUID, invoice_id: uuid.UUID
) -> Invoice | None:
    invoice = await uow.session.get(Invoice, invoice_id)
    if invoice is None or invoice.workspace_id != workspace_id:
        return None
    return invoice


async def get_invoice(uow: UnitOfWork, workspace_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
    """Load an invoice of the workspace; another workspace's invoice is not found."""
    invoice = await find_invoice(uow, workspace_id, invoice_id)
    if invoice is None:
        raise NotFound(f"No invoice with id {invoice_id} in this workspace.")
    return invoice


async def lock_invoice(uow: UnitOfWork, invoice: Invoice) -> Invoice:
    """Re-read ``invoice`` with a row lock (PostgreSQL) so concurrent changes queue up.

    SQLite transactions start with BEGIN IMMEDIATE and already run one at a time.
    """
    if dialect_name(uow.session) == "postgresql":
        await uow.session.execute(
            sa.select(Invoice.id).where(Invoice.id == invoice.id).with_for_update()
        )
        await uow.session.refresh(invoice)
    return invoice


async def load_lines(uow: UnitOfWork, invoice: Invoice) -> list[InvoiceLine]:
    statement = (
        sa.select(InvoiceLine)
        .where(InvoiceLine.invoice_id == invoice.id)
        .order_by(InvoiceLine.position)
    )
    return list(await uow.session.scalars(statement))


def _discount_view(kind: str | None, value: str | None) -> dict[str, Any] | None:
    if kind is None or value is None:
        return None
    return {"type": kind, "value": int(value) if kind == "amount" else value}


def amount_due(invoice: Invoice) -> int:
    """Return what remains to pay: never below zero, zero for void and draft invoices."""
    if invoice.status in ("draft", "void"):
        return 0
    return max(0, invoice.total - invoice.amount_paid - invoice.amount_credited)


def _view_fields(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "currency_exponent": money.exponent(invoice.currency),
        "contact_id": invoice.contact_id,
        "enquiry_id": invoice.enquiry_id,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "total": invoice.total,
        "amount_due": amount_due(invoice),
        "created_at": invoice.created_at,
    }


def summary_view(invoice: Invoice) -> InvoiceSummary:
    return InvoiceSummary.model_validate(_view_fields(invoice))


async def invoice_view(uow: UnitOfWork, invoice: Invoice) -> dict[str, Any]:
    """Return the full API view of an invoice (JSON types), with lines and tax breakdown.

    Amounts are integers in minor units, and ``currency_exponent`` is the number of decimal
    places of the currency. The same dict is the data of ``invoice.*`` events.
    """
    lines = await load_lines(uow, invoice)
    view = InvoiceOut.model_validate(
        {
            **_view_fields(invoice),
            "subscription_id": invoice.subscription_id,
            "discount": _discount_view(invoice.discount_type, invoice.discount_value),
            "lines": [
                {
                    "id": line.id,
                    "position": line.position,
                    "description": line.description,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "tax_rate": line.tax_rate,
                    "discount": _discount_view(line.discount_type, line.discount_value),
                    "gross_amount": line.gross_amount,
                    "net_amount": line.net_amount,
                }
                for line in lines
            ],
            "subtotal": invoice.subtotal,
            "discount_total": invoice.discount_total,
            "tax_breakdown": invoice.tax_breakdown or [],
            "tax_total": invoice.tax_total,
            "amount_paid": invoice.amount_paid,
            "amount_credited": invoice.amount_credited,
            "amount_overpaid": max(
                0, invoice.amount_paid + invoice.amount_credited - invoice.total
            ),
            "notes": invoice.notes,
            "payment_terms": invoice.payment_terms,
            "seller": invoice.seller or {},
            "customer": invoice.customer or {},
            "customer_overrides": invoice.customer_overrides or {},
            "pdf_object_id": invoice.pdf_object_id,
            "public_token": invoice.public_token,
            "issued_at": invoice.issued_at,
            "paid_at": invoice.paid_at,
            "voided_at": invoice.voided_at,
            "uncollectible_at": invoice.uncollectible_at,
            "updated_at": invoice.updated_at,
        }
    )
    return view.model_dump(mode="json")


async def list_invoices(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    *,
    statuses: list[str],
    contact_id: uuid.UUID | None,
    enquiry_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Invoice], str | None]:
    statement = sa.select(Invoice).where(Invoice.workspace_id == workspace_id)
    if statuses:
        statement = statement.where(Invoice.status.in_(statuses))
    if contact_id is not None:
        statement = statement.where(Invoice.contact_id == contact_id)
    if enquiry_id is not None:
        statement = statement.where(Invoice.enquiry_id == enquiry_id)
    return await fetch_newest_first(uow.session, statement, Invoice, cursor=cursor, limit=limit)


# --- Activities and events ------------------------------------------------------------------


async def record_change(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    activity: str,
    event: str,
    source: str,
    actor_id: uuid.UUID | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add a timeline entry and an event for a change of ``invoice``; returns the API view."""
    uow.session.add(
        InvoiceActivity(
            workspace_id=invoice.workspace_id,
            invoice_id=invoice.id,
            type=activity,
            source=source,
            actor_id=actor_id,
            data=data or {},
            created_at=uow.now(),
        )
    )
    await uow.session.flush()
    view = await invoice_view(uow, invoice)
    uow.record_event(event, view, workspace_id=invoice.workspace_id)
    return view


async def list_activities(uow: UnitOfWork, invoice: Invoice) -> list[InvoiceActivity]:
    statement = (
        sa.select(InvoiceActivity)
        .where(InvoiceActivity.invoice_id == invoice.id)
        .order_by(InvoiceActivity.created_at, InvoiceActivity.id)
    )
    return list(await uow.session.scalars(statement))


# --- Drafts ---------------------------------------------------------------------------------


async def _check_contact(uow: UnitOfWork, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    contact = await uow.session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise ValidationFailed(
            "contact_id", "No contact with this id in the workspace.", "not_found"
        )


async def _check_enquiry(uow: UnitOfWork, workspace_id: uuid.UUID, enquiry_id: uuid.UUID) -> None:
    enquiry = await uow.session.get(Enquiry, enquiry_id)
    if enquiry is None or enquiry.workspace_id != workspace_id:
        raise ValidationFailed(
            "enquiry_id", "No enquiry with this id in the workspace.", "not_found"
        )


def _discount_columns(discount: DiscountIn | None) -> tuple[str | None, str | None]:
    if discount is None:
        return None, None
    value = discount.value
    text = money.decimal_text(value) if isinstance(value, Decimal) else str(value)
    return discount.type, text


def _line_input(line: InvoiceLine) -> totals.LineInput:
    value: Decimal | int | None = None
    if line.discount_type == "percent" and line.discount_value is not None:
        value = Decimal(line.discount_value)
    elif line.discount_type == "amount" and line.discount_value is not None:
        value = int(line.discount_value)
    return totals.LineInput(
        quantity=Decimal(line.quantity),
        unit_price=line.unit_price,
        tax_rate=Decimal(line.tax_rate),
        discount_type=line.discount_type,
        discount_value=value,
    )


async def _replace_lines(uow: UnitOfWork, invoice: Invoice, lines: list[LineIn]) -> None:
    await uow.session.execute(sa.delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    await uow.session.flush()
    for position, line in enumerate(lines):
        discount_type, discount_value = _discount_columns(line.discount)
        uow.session.add(
            InvoiceLine(
                invoice_id=invoice.id,
                position=position,
                description=line.description,
                quantity=money.decimal_text(line.quantity),
                unit_price=line.unit_price,
                tax_rate=money.decimal_text(line.tax_rate),
                discount_type=discount_type,
                discount_value=discount_value,
            )
        )
    await uow.session.flush()


async def recompute_totals(uow: UnitOfWork, invoice: Invoice) -> None:
    """Store the line amounts and the invoice totals from the current lines and discount.

    Raises a 422 naming ``lines`` when the total exceeds the largest accepted amount.
    """
    lines = await load_lines(uow, invoice)
    discount_value: Decimal | int | None = None
    if invoice.discount_type == "percent" and invoice.discount_value is not None:
        discount_value = Decimal(invoice.discount_value)
    elif invoice.discount_type == "amount" and invoice.discount_value is not None:
        discount_value = int(invoice.discount_value)
    result = totals.compute(
        [_line_input(line) for line in lines], invoice.discount_type, discount_value
    )
    if result.total > MAX_TOTAL or result.subtotal > MAX_TOTAL:
        raise ValidationFailed(
            "lines", f"The total exceeds {MAX_TOTAL} minor units; split the invoice.", "too_large"
        )
    for line, line_totals in zip(lines, result.lines, strict=True):
        line.gross_amount = line_totals.gross
        line.net_amount = line_totals.net
    invoice.subtotal = result.subtotal
    invoice.discount_total = result.discount_total
    invoice.tax_total = result.tax_total
    invoice.total = result.total
    invoice.tax_breakdown = [
        {"rate": money.decimal_text(tax.rate), "base": tax.base, "tax": tax.tax}
        for tax in result.tax_breakdown
    ]


async def create_draft(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    body: InvoiceCreate,
    source: str = "staff",
) -> Invoice:
    """Create a draft invoice; the contact and the enquiry must be the workspace's."""
    await _check_contact(uow, workspace_id, body.contact_id)
    if body.enquiry_id is not None:
        await _check_enquiry(uow, workspace_id, body.enquiry_id)

    settings = await load_settings(uow, workspace_id)
    discount_type, discount_value = _discount_columns(body.discount)
    now = uow.now()
    invoice = Invoice(
        workspace_id=workspace_id,
        contact_id=body.contact_id,
        enquiry_id=body.enquiry_id,
        status="draft",
        currency=body.currency or settings.default_currency,
        due_date=body.due_date,
        discount_type=discount_type,
        discount_value=discount_value,
        notes=body.notes,
        payment_terms=body.payment_terms,
        customer_overrides=body.customer_overrides.model_dump(exclude_none=True),
        seller={},
        customer={},
        tax_breakdown=[],
        public_token=new_token(32),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(invoice)
    await uow.session.flush()

    await _replace_lines(uow, invoice, body.lines)
    await recompute_totals(uow, invoice)
    await record_change(
        uow, invoice, activity="created", event="invoice.created", source=source, actor_id=actor_id
    )
    log.info("invoice.created", invoice_id=str(invoice.id), workspace_id=str(workspace_id))
    return invoice


def _require_draft(invoice: Invoice, action: str) -> None:
    if invoice.status != "draft":
        hint = "" if action == "issued" else " Issue a credit note or void it instead."
        raise InvoiceNotDraft(
            f"Invoice {invoice.number} is {invoice.status}; only drafts can be {action}.{hint}"
        )


async def update_draft(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    body: InvoiceUpdate,
    actor_id: uuid.UUID | None,
) -> Invoice:
    """Apply the fields present in ``body`` to a draft; ``lines`` replaces every line."""
    await lock_invoice(uow, invoice)
    _require_draft(invoice, "edited")
    fields = body.model_fields_set
    errors: list[FieldError] = []
    for name in ("contact_id", "currency", "notes", "payment_terms", "customer_overrides"):
        if name in fields and getattr(body, name) is None:
            errors.append(FieldError(field=name, message="This field cannot be null.", code="null"))
    if "lines" in fields and body.lines is None:
        errors.append(
            FieldError(field="lines", message="Send a list; [] removes every line.", code="null")
        )
    if errors:
        raise ValidationFailed.many(errors)

    if body.contact_id is not None:
        await _check_contact(uow, invoice.workspace_id, body.contact_id)
        invoice.contact_id = body.contact_id
    if "enquiry_id" in fields:
        if body.enquiry_id is not None:
            await _check_enquiry(uow, invoice.workspace_id, body.enquiry_id)
        invoice.enquiry_id = body.enquiry_id
    if body.currency is not None:
        invoice.currency = body.currency
    if "discount" in fields:
        invoice.discount_type, invoice.discount_value = _discount_columns(body.discount)
    if "due_date" in fields:
        invoice.due_date = body.due_date
    if body.notes is not None:
        invoice.notes = body.notes
    if body.payment_terms is not None:
        invoice.payment_terms = body.payment_terms
    if body.customer_overrides is not None:
        invoice.customer_overrides = body.customer_overrides.model_dump(exclude_none=True)
    if body.lines is not None:
        await _replace_lines(uow, invoice, body.lines)

    await recompute_totals(uow, invoice)
    invoice.updated_at = uow.now()
    await record_change(
        uow,
        invoice,
        activity="updated",
        event="invoice.updated",
        source="staff",
        actor_id=actor_id,
        data={"fields": sorted(fields)},
    )
    return invoice


async def delete_draft(uow: UnitOfWork, invoice: Invoice, *, actor_id: uuid.UUID | None) -> None:
    await lock_invoice(uow, invoice)
    _require_draft(invoice, "deleted")
    view = await invoice_view(uow, invoice)
    await uow.session.delete(invoice)
    await uow.session.flush()
    uow.record_event("invoice.deleted", view, workspace_id=invoice.workspace_id)


# --- Issuing --------------------------------------------------------------------------------


def _customer_snapshot(contact: Contact | None, overrides: dict[str, Any]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    if contact is not None:
        snapshot = {
            "contact_id": str(contact.id),
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
        }
    for key, value in overrides.items():
        if value not in (None, ""):
            snapshot[key] = value
    return {key: value for key, value in snapshot.items() if value not in (None, "")}


async def issue(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    body: InvoiceIssue,
    actor_id: uuid.UUID | None,
    source: str = "staff",
) -> Invoice:
    """Issue a draft: number, dates, seller and customer snapshots, status open.

    The number comes from the settings' pattern for the issue date and is taken in this
    transaction, so a failed issue gives it back.
    """
    await lock_invoice(uow, invoice)
    _require_draft(invoice, "issued")
    lines = await load_lines(uow, invoice)
    if not lines:
        raise ValidationFailed("lines", "Add at least one line before issuing.", "no_lines")
    contact = await uow.session.get(Contact, invoice.contact_id) if invoice.contact_id else None
    if contact is None:
        raise ValidationFailed(
            "contact_id", "The invoice has no contact; set contact_id first.", "required"
        )
    settings = await load_settings(uow, invoice.workspace_id)
    issue_date = body.issue_date or uow.now().date()
    due_date = body.due_date or invoice.due_date
    if due_date is None:
        try:
            due_date = issue_date + timedelta(days=settings.payment_terms_days)
        except OverflowError:
            raise ValidationFailed(
                "issue_date",
                f"The issue date plus the {settings.payment_terms_days}-day payment terms is "
                "past the year 9999; use an earlier issue date or set due_date.",
                "out_of_range",
            ) from None
    if due_date < issue_date:
        raise ValidationFailed(
            "due_date", "The due date falls before the issue date; use a later day.", "too_early"
        )

    await recompute_totals(uow, invoice)
    invoice.number = await numbering.next_number(
        uow, invoice.workspace_id, "invoice", settings.invoice_number_pattern, issue_date
    )
    invoice.issue_date = issue_date
    invoice.due_date = due_date
    invoice.seller = {
        **{key: value for key, value in (settings.business_details or {}).items() if value},
        "bank_details": settings.bank_details or "",
        "branding": dict(settings.branding or {}),
    }
    invoice.customer = _customer_snapshot(contact, invoice.customer_overrides or {})
    now = uow.now()
    invoice.status = "open"
    invoice.issued_at = now
    invoice.updated_at = now
    await uow.session.flush()
    await record_change(
        uow,
        invoice,
        activity="issued",
        event="invoice.issued",
        source=source,
        actor_id=actor_id,
        data={"number": invoice.number},
    )
    # A zero total (for example a 100 % discount) is settled as soon as it is issued.
    await apply_payments(uow, invoice, source=source, actor_id=actor_id)
    # Imported here because the delivery module imports this one.
    from frontdesk.payments.delivery import enqueue_pdf

    enqueue_pdf(uow, invoice)
    log.info("invoice.issued", invoice_id=str(invoice.id), workspace_id=str(invoice.workspace_id))
    return invoice


async def void(uow: UnitOfWork, invoice: Invoice, *, actor_id: uuid.UUID | None) -> Invoice:
    """Void an issued invoice without payments; paid ones need a credit note instead."""
    await lock_invoice(uow, invoice)
    if invoice.status == "draft":
        raise Conflict(
            "Drafts cannot be voided; delete the draft instead.", code="invoice_not_issued"
        )
    if invoice.status == "void":
        raise Conflict("The invoice is void already.", code="invoice_void")
    if invoice.status == "paid":
        raise Conflict(
            "The invoice is paid and cannot be voided; issue a credit note instead.",
            code="invoice_paid",
        )
    if invoice.amount_paid > 0:
        raise Conflict(
            f"The invoice is partially paid ({invoice.amount_paid} minor units); refund the "
            "payments or issue a credit note instead.",
            code="invoice_partially_paid",
        )
    if invoice.amount_credited > 0:
        raise Conflict(
            f"The invoice is partially credited ({invoice.amount_credited} minor units); "
            "issue a credit note for the rest instead.",
            code="invoice_partially_paid",
        )
    pending = await pending_payment_total(uow, invoice)
    if pending > 0:
        raise Conflict(
            f"Payments of {pending} minor units are pending on the invoice; confirm or cancel "
            "them first.",
            code="payment_pending",
        )

    before = invoice.status
    now = uow.now()
    invoice.status = "void"
    invoice.voided_at = now
    invoice.updated_at = now
    await record_change(
        uow,
        invoice,
        activity="voided",
        event="invoice.voided",
        source="staff",
        actor_id=actor_id,
        data={"from": before, "to": "void"},
    )
    await _recover_subscription(uow, invoice)
    return invoice


async def pending_payment_total(uow: UnitOfWork, invoice: Invoice) -> int:
    """Return the sum of the invoice's payments that are pending or processing."""
    total = await uow.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Payment.amount), 0)).where(
            Payment.invoice_id == invoice.id,
            Payment.status.in_(("pending", "processing")),
        )
    )
    return int(total or 0)


async def mark_uncollectible(
    uow: UnitOfWork, invoice: Invoice, *, actor_id: uuid.UUID | None
) -> Invoice:
    """Write off what remains due; a later payment still settles the invoice."""
    await lock_invoice(uow, invoice)
    if invoice.status not in ("open", "partially_paid", "overdue"):
        raise Conflict(
            f"Only open, partially paid or overdue invoices can be marked uncollectible; this "
            f"one is {invoice.status}.",
            code="invoice_not_collectible",
        )
    before = invoice.status
    now = uow.now()
    invoice.status = "uncollectible"
    invoice.uncollectible_at = now
    invoice.updated_at = now
    await record_change(
        uow,
        invoice,
        activity="marked_uncollectible",
        event="invoice.marked_uncollectible",
        source="staff",
        actor_id=actor_id,
        data={"from": before, "to": "uncollectible"},
    )
    await _recover_subscription(uow, invoice)
    return invoice


# --- Payments and credit notes --------------------------------------------------------------


async def _recover_subscription(uow: UnitOfWork, invoice: Invoice) -> None:
    """Reactivate the invoice's past_due subscription once this invoice is no longer owed."""
    if invoice.subscription_id is None or invoice.status in OWED_STATUSES:
        return
    # Imported here because the subscription modules import this one.
    from frontdesk.payments.subscription_jobs import recover_settled

    await recover_settled(uow, invoice.subscription_id)


def _unpaid_status(invoice: Invoice, today: date) -> str:
    if invoice.status == "uncollectible":
        return "uncollectible"
    if invoice.due_date is not None and invoice.due_date < today:
        return "overdue"
    return "open"


async def apply_payments(
    uow: UnitOfWork, invoice: Invoice, *, source: str, actor_id: uuid.UUID | None = None
) -> bool:
    """Recompute the paid and credited amounts and the status of an issued invoice.

    amount_paid is the sum over settled payments (succeeded, partially refunded, refunded,
    disputed, dispute lost) of amount minus amount refunded minus amount charged back, each
    payment counting at least 0; amount_credited is the sum of credit notes.
    The status becomes paid when both cover the total, partially_paid when either is above
    zero, otherwise open (overdue once past the due date). Void invoices keep their status,
    and an uncollectible invoice stays so until it is paid in full. Returns whether anything
    changed; a change records an activity and an event. An invoice that stops being owed
    returns its past_due manual subscription to active in the same transaction.
    """
    if invoice.status == "draft":
        return False
    # A refund reported after a lost dispute can make the deductions exceed the amount.
    counted = Payment.amount - Payment.amount_refunded - Payment.amount_charged_back
    paid = (
        await uow.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(sa.case((counted > 0, counted), else_=0)), 0))
            .where(Payment.invoice_id == invoice.id)
            .where(Payment.status.in_(SETTLED_PAYMENT_STATUSES))
        )
    ).scalar_one()
    credited = (
        await uow.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(CreditNote.amount), 0)).where(
                CreditNote.invoice_id == invoice.id
            )
        )
    ).scalar_one()
    paid, credited = int(paid), int(credited)
    before = (invoice.status, invoice.amount_paid, invoice.amount_credited)

    status = invoice.status
    if status != "void":
        if paid + credited >= invoice.total:
            status = "paid"
        elif status == "uncollectible":
            pass
        elif paid + credited > 0:
            status = "partially_paid"
        else:
            status = _unpaid_status(invoice, uow.now().date())
    if (status, paid, credited) == before:
        return False

    invoice.amount_paid = paid
    invoice.amount_credited = credited
    invoice.status = status
    now = uow.now()
    invoice.updated_at = now
    if status == "paid" and invoice.paid_at is None:
        invoice.paid_at = now
    elif status != "paid":
        invoice.paid_at = None
    status_changed = status != before[0]
    event = f"invoice.{status}" if status_changed and status != "open" else "invoice.updated"
    if status_changed and status == "open":
        event = "invoice.reopened"
    await record_change(
        uow,
        invoice,
        activity="status_changed" if status_changed else "amounts_changed",
        event=event,
        source=source,
        actor_id=actor_id,
        data={
            "from": before[0],
            "to": status,
            "amount_paid": paid,
            "amount_credited": credited,
        },
    )
    if status_changed:
        await _recover_subscription(uow, invoice)
    return True


def credit_note_view(note: CreditNote) -> CreditNoteOut:
    return CreditNoteOut.model_validate(
        {
            "id": note.id,
            "invoice_id": note.invoice_id,
            "number": note.number,
            "currency": note.currency,
            "currency_exponent": money.exponent(note.currency),
            "amount": note.amount,
            "reason": note.reason,
            "refund_id": note.refund_id,
            "pdf_object_id": note.pdf_object_id,
            "created_by": note.created_by,
            "created_at": note.created_at,
        }
    )


async def list_credit_notes(uow: UnitOfWork, invoice: Invoice) -> list[CreditNote]:
    statement = (
        sa.select(CreditNote)
        .where(CreditNote.invoice_id == invoice.id)
        .order_by(CreditNote.created_at, CreditNote.id)
    )
    return list(await uow.session.scalars(statement))


async def create_credit_note(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    body: CreditNoteCreate,
    actor_id: uuid.UUID | None,
    refund_id: uuid.UUID | None = None,
    source: str = "staff",
) -> CreditNote:
    """Credit part or all of an issued invoice, up to what is not credited yet.

    On a paid invoice the credit shows as ``amount_overpaid`` until staff refund it.
    """
    await lock_invoice(uow, invoice)
    if invoice.status == "draft":
        raise Conflict(
            "Credit notes apply to issued invoices; edit the draft instead.",
            code="invoice_not_issued",
        )
    if invoice.status == "void":
        raise Conflict("The invoice is void; nothing is left to credit.", code="invoice_void")
    creditable = invoice.total - invoice.amount_credited
    if body.amount > creditable:
        raise ValidationFailed(
            "amount",
            f"At most {creditable} minor units of this invoice are not credited yet.",
            "too_large",
        )
    settings = await load_settings(uow, invoice.workspace_id)
    now = uow.now()
    note = CreditNote(
        workspace_id=invoice.workspace_id,
        invoice_id=invoice.id,
        number=await numbering.next_number(
            uow,
            invoice.workspace_id,
            "credit_note",
            settings.credit_note_number_pattern,
            now.date(),
        ),
        currency=invoice.currency,
        amount=body.amount,
        reason=body.reason,
        refund_id=refund_id,
        created_by=actor_id,
        created_at=now,
    )
    uow.session.add(note)
    await uow.session.flush()
    note_view = credit_note_view(note).model_dump(mode="json")
    uow.record_event("credit_note.created", note_view, workspace_id=invoice.workspace_id)
    await apply_payments(uow, invoice, source=source, actor_id=actor_id)
    await record_change(
        uow,
        invoice,
        activity="credit_note_created",
        event="invoice.credited",
        source=source,
        actor_id=actor_id,
        data={"credit_note_id": str(note.id), "number": note.number, "amount": note.amount},
    )
    return note
