"""Invoice documents and their delivery: the stored PDF, the payment link and the invoice email.

The PDF of an issued invoice is kept in the workspace's private system bucket "invoices"
and named on ``Invoice.pdf_object_id``. It carries a fingerprint of everything printed on
it, so a change of status, payments or branding renders a new PDF the next time one is
needed, and an unchanged invoice reuses the stored file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

import sqlalchemy as sa
import structlog
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from frontdesk.contacts.models import Contact
from frontdesk.core.errors import Conflict, NotFound, ValidationFailed
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.composer import MAX_SUBJECT_LENGTH, RenderedEmail, single_line
from frontdesk.email.models import EmailMessage
from frontdesk.email.service import queue_email
from frontdesk.email.template_service import render_replacement
from frontdesk.payments import invoices, pdf
from frontdesk.payments.models import Invoice, PaymentSettings
from frontdesk.payments.settings import load_settings
from frontdesk.storage import service as storage
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.uploads import upload_object

log = structlog.get_logger()

INVOICES_BUCKET = "invoices"
PDF_JOB = "payments.invoice_pdf"
SENT_KIND = "invoice_sent"
# The largest logo read from storage for a PDF, in bytes.
MAX_LOGO_BYTES = 2 * 1024 * 1024
FINGERPRINT_KEY = "source_sha256"
# Statuses whose invoice can be sent: issued and not voided.
SENDABLE = frozenset({"open", "partially_paid", "overdue", "paid", "uncollectible"})
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- Views ----------------------------------------------------------------------------------


async def document_view(uow: UnitOfWork, invoice: Invoice) -> dict[str, Any]:
    """Return what the PDF and the public payment page show of an invoice, and nothing else."""
    lines = await invoices.load_lines(uow, invoice)
    return {
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "seller": _party(invoice.seller),
        "customer": _party(invoice.customer),
        "lines": [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "tax_rate": line.tax_rate,
                "gross_amount": line.gross_amount,
                "net_amount": line.net_amount,
            }
            for line in lines
        ],
        "subtotal": invoice.subtotal,
        "discount_total": invoice.discount_total,
        "tax_breakdown": list(invoice.tax_breakdown),
        "tax_total": invoice.tax_total,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "amount_credited": invoice.amount_credited,
        "amount_due": invoices.amount_due(invoice),
        "notes": invoice.notes,
        "payment_terms": invoice.payment_terms,
    }


def _party(snapshot: dict[str, Any] | None) -> dict[str, Any]:
    fields = (*pdf.PARTY_FIELDS, *pdf.PARTY_LABELS)
    return {name: value for name, value in (snapshot or {}).items() if name in fields and value}


def payment_url(uow: UnitOfWork, invoice: Invoice) -> str:
    """Return the public payment page's address, built on FRONTDESK_PUBLIC_URL."""
    return f"{uow.settings.resolved_public_url}/pay/{invoice.public_token}"


def pdf_filename(invoice: Invoice) -> str:
    name = _FILENAME_UNSAFE.sub("-", invoice.number or str(invoice.id)).strip("-.")
    return f"invoice-{name or invoice.id}.pdf"


def check_issued(invoice: Invoice) -> None:
    if invoice.status == "draft":
        raise Conflict(
            "The invoice is a draft, so it has no PDF and cannot be sent; issue it first.",
            code="invoice_not_issued",
        )


# --- PDF ------------------------------------------------------------------------------------


async def _read_blob(uow: UnitOfWork, workspace_id: uuid.UUID, object_id: uuid.UUID) -> bytes:
    path = storage.blob_path(workspace_id, object_id)
    return b"".join([chunk async for chunk in uow.rt.storage.read(path)])


def branding(invoice: Invoice, settings: PaymentSettings) -> tuple[dict[str, Any], str]:
    """Return the branding and bank details to print: the issue-time snapshot's, else current."""
    seller = invoice.seller or {}
    if "branding" in seller or "bank_details" in seller:
        return dict(seller.get("branding") or {}), str(seller.get("bank_details") or "")
    return dict(settings.branding or {}), settings.bank_details or ""


async def load_logo(uow: UnitOfWork, workspace_id: uuid.UUID, raw_id: Any) -> bytes | None:
    """Read the workspace logo by object id; a missing or oversized logo is skipped."""
    if not raw_id:
        return None
    try:
        stored, _bucket = await storage.get_object(
            uow, workspace_id=workspace_id, object_id=uuid.UUID(str(raw_id))
        )
    except (NotFound, ValueError):
        log.warning("payments.logo_missing", workspace_id=str(workspace_id))
        return None
    if stored.size > MAX_LOGO_BYTES:
        log.warning("payments.logo_too_large", workspace_id=str(workspace_id), size=stored.size)
        return None
    try:
        return await _read_blob(uow, workspace_id, stored.id)
    except BlobNotFound:
        log.warning("payments.logo_missing", workspace_id=str(workspace_id))
        return None


def _fingerprint(
    view: dict[str, Any], logo: bytes | None, color: str | None, bank: str, url: str
) -> str:
    source = json.dumps(
        {
            "view": view,
            "logo": hashlib.sha256(logo).hexdigest() if logo else None,
            "color": color,
            "bank": bank,
            "url": url,
            "template": _template_digest(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@cache
def _template_digest() -> str:
    digest = hashlib.sha256()
    for name in ("invoice.html", "invoice.css"):
        digest.update((pdf.TEMPLATES / name).read_bytes())
    return digest.hexdigest()


async def _current_pdf(uow: UnitOfWork, invoice: Invoice) -> StoredObject | None:
    if invoice.pdf_object_id is None:
        return None
    stored = await uow.session.get(StoredObject, invoice.pdf_object_id)
    if stored is None or stored.workspace_id != invoice.workspace_id:
        return None
    return stored


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def ensure_pdf(uow: UnitOfWork, invoice: Invoice) -> StoredObject:
    """Return the invoice's stored PDF, rendering and storing it when missing or out of date.

    Raises Conflict for a draft and PdfUnavailable when WeasyPrint cannot run.
    """
    check_issued(invoice)
    settings = await load_settings(uow, invoice.workspace_id)
    view = await document_view(uow, invoice)
    brand, bank_details = branding(invoice, settings)
    logo = await load_logo(uow, invoice.workspace_id, brand.get("logo_object_id"))
    color = brand.get("color")
    url = payment_url(uow, invoice)
    fingerprint = _fingerprint(view, logo, color, bank_details, url)

    current = await _current_pdf(uow, invoice)
    if current is not None and current.user_metadata.get(FINGERPRINT_KEY) == fingerprint:
        return current
    # Requests that find the PDF out of date at the same time wait for each other here. The
    # later one then finds the PDF that the earlier one stored.
    await invoices.lock_invoice(uow, invoice)
    current = await _current_pdf(uow, invoice)
    if current is not None and current.user_metadata.get(FINGERPRINT_KEY) == fingerprint:
        return current

    # Rendering is CPU-bound and takes seconds for long invoices, so it runs in a thread.
    data = await asyncio.to_thread(
        pdf.render_invoice,
        view,
        logo=logo,
        color=color,
        bank_details=bank_details,
        payment_url=url,
    )
    bucket = await storage.system_bucket(uow, invoice.workspace_id, INVOICES_BUCKET)
    stored, _bucket = await upload_object(
        uow,
        workspace_id=invoice.workspace_id,
        bucket_id=bucket.id,
        key=f"{invoice.id}/{pdf_filename(invoice)}",
        overwrite=True,
        claimed_type="application/pdf",
        chunks=_one_chunk(data),
        owner_id=None,
    )
    stored.user_metadata = {FINGERPRINT_KEY: fingerprint}
    if current is not None and current.id != stored.id and not sa.inspect(current).was_deleted:
        # upload_object replaced a PDF under the same key; one under another key is removed.
        current_bucket = await uow.session.get(Bucket, current.bucket_id)
        if current_bucket is not None:
            await storage.remove_object(uow, current, current_bucket)
    invoice.pdf_object_id = stored.id
    await uow.session.flush()
    log.info("payments.invoice_pdf_stored", invoice_id=str(invoice.id), object_id=str(stored.id))
    return stored


async def read_pdf(uow: UnitOfWork, invoice: Invoice) -> tuple[bytes, str]:
    """Return the invoice's PDF bytes and file name, rendering the PDF if needed."""
    stored = await ensure_pdf(uow, invoice)
    try:
        data = await _read_blob(uow, invoice.workspace_id, stored.id)
    except BlobNotFound:
        # The row outlived its blob; render again into a fresh object.
        log.error("payments.invoice_pdf_blob_missing", invoice_id=str(invoice.id))
        invoice.pdf_object_id = None
        stored = await ensure_pdf(uow, invoice)
        data = await _read_blob(uow, invoice.workspace_id, stored.id)
    return data, pdf_filename(invoice)


@job_handler(PDF_JOB)
async def render_pdf_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Render and store an issued invoice's PDF; payload {"invoice_id"}. Safe to run twice."""
    invoice = await uow.session.get(Invoice, uuid.UUID(payload["invoice_id"]))
    if invoice is None or invoice.status == "draft":
        return
    await ensure_pdf(uow, invoice)


def enqueue_pdf(uow: UnitOfWork, invoice: Invoice) -> None:
    """Enqueue the rendering of the invoice's PDF after this transaction commits."""
    uow.enqueue(PDF_JOB, {"invoice_id": str(invoice.id)}, workspace_id=invoice.workspace_id)


# --- Emails ---------------------------------------------------------------------------------


@cache
def _email_environment() -> Environment:
    # The payments templates extend the email layout and its button from the email package.
    return Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(pdf.TEMPLATES / "email"),
                PackageLoader("frontdesk.email", "templates"),
            ]
        ),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_builtin(name: str, *, subject: str, values: dict[str, Any]) -> RenderedEmail:
    """Render the built-in ``name.txt`` and ``name.html`` of the payments emails."""
    subject = single_line(subject, max_length=MAX_SUBJECT_LENGTH)
    environment = _email_environment()
    text = environment.get_template(f"{name}.txt").render(subject=subject, **values)
    html = environment.get_template(f"{name}.html").render(subject=subject, **values)
    return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)


def business_name(invoice: Invoice, settings: PaymentSettings) -> str:
    name = (invoice.seller or {}).get("name") or (settings.business_details or {}).get("name")
    return str(name) if name else "Your supplier"


def customer_name(invoice: Invoice) -> str | None:
    name = (invoice.customer or {}).get("name")
    return str(name) if name else None


async def customer_email(uow: UnitOfWork, invoice: Invoice) -> str | None:
    """Return the invoice's customer address: its snapshot's email, else the contact's."""
    email = (invoice.customer or {}).get("email")
    if email:
        return str(email)
    if invoice.contact_id is None:
        return None
    contact = await uow.session.get(Contact, invoice.contact_id)
    if contact is None or contact.workspace_id != invoice.workspace_id:
        return None
    return contact.email


async def send_invoice(
    uow: UnitOfWork,
    invoice: Invoice,
    *,
    to: str | None,
    message: str | None,
    actor_id: uuid.UUID | None,
) -> EmailMessage:
    """Queue the invoice email with the PDF attached and the payment link; record "sent".

    Raises Conflict for a draft or void invoice and ValidationFailed on ``to`` when no
    address is given and the customer has none.
    """
    check_issued(invoice)
    if invoice.status not in SENDABLE:
        raise Conflict(
            f"The invoice is {invoice.status}, so it cannot be sent; issue a new invoice instead.",
            code="invoice_not_sendable",
        )
    recipient = to or await customer_email(uow, invoice)
    if not recipient:
        raise ValidationFailed(
            "to",
            "The customer has no email address; give one in 'to'.",
            "missing_recipient",
        )

    settings = await load_settings(uow, invoice.workspace_id)
    stored = await ensure_pdf(uow, invoice)
    link = payment_url(uow, invoice)
    seller = business_name(invoice, settings)
    values: dict[str, Any] = {
        "customer_name": customer_name(invoice),
        "business_name": seller,
        "invoice_number": invoice.number or "",
        "amount_due": pdf.format_amount(invoices.amount_due(invoice), invoice.currency),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "payment_link": link,
        "message": message or None,
    }
    rendered = await render_replacement(
        uow, workspace_id=invoice.workspace_id, key=SENT_KIND, language="en", values=values
    ) or render_builtin(SENT_KIND, subject=f"Invoice {invoice.number} from {seller}", values=values)
    reply_to = (invoice.seller or {}).get("email")
    email = await queue_email(
        uow,
        kind=SENT_KIND,
        to=recipient,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        workspace_id=invoice.workspace_id,
        reply_to=str(reply_to) if reply_to else None,
        enquiry_id=invoice.enquiry_id,
        # A person sends the invoice, so replies and auto-replies are welcome.
        auto_submitted=False,
        attachments=[
            {
                "object_id": str(stored.id),
                "filename": pdf_filename(invoice),
                "content_type": "application/pdf",
                "size": stored.size,
            }
        ],
    )
    await invoices.record_change(
        uow,
        invoice,
        activity="sent",
        event="invoice.sent",
        source="staff" if actor_id else "api",
        actor_id=actor_id,
        data={"email_id": str(email.id), "to": email.to_address},
    )
    log.info("payments.invoice_sent", invoice_id=str(invoice.id), email_id=str(email.id))
    return email
