"""Invoices API: drafts, issuing, voiding, credit notes and the timeline."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem, ValidationFailed
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery, Page
from frontdesk.core.query_params import parse_statuses
from frontdesk.enquiries.queries import get_enquiry
from frontdesk.payments import invoices
from frontdesk.payments.schemas import (
    INVOICE_STATUSES,
    CreditNoteCreate,
    CreditNoteList,
    CreditNoteOut,
    InvoiceActivityOut,
    InvoiceCreate,
    InvoiceFromEnquiry,
    InvoiceIssue,
    InvoiceOut,
    InvoiceSummary,
    InvoiceTimeline,
    InvoiceUpdate,
)

router = APIRouter(prefix="/invoices", tags=["invoices"])
enquiry_router = APIRouter(prefix="/enquiries", tags=["invoices"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such invoice in this workspace."},
    409: {"model": Problem, "description": "The invoice's status does not allow this."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=Page[InvoiceSummary], responses=_ERRORS)
@read_only
async def list_invoices(
    uow: UowDep,
    actor: AgentDep,
    status: Annotated[
        list[str],
        Query(description="Statuses to include; repeat the parameter or separate with commas."),
    ] = [],  # noqa: B006  (FastAPI copies query defaults)
    contact_id: uuid.UUID | None = None,
    enquiry_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[InvoiceSummary]:
    """List the workspace's invoices, newest first; pass `next_cursor` as `cursor` for more."""
    rows, next_cursor = await invoices.list_invoices(
        uow,
        actor.workspace_id,
        statuses=parse_statuses(status, INVOICE_STATUSES),
        contact_id=contact_id,
        enquiry_id=enquiry_id,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[invoices.summary_view(row) for row in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=InvoiceOut, responses=_ERRORS)
async def create_invoice(uow: UowDep, actor: AgentDep, body: InvoiceCreate) -> InvoiceOut:
    """Create a draft invoice for a contact of the workspace."""
    invoice = await invoices.create_draft(
        uow, workspace_id=actor.workspace_id, actor_id=actor.user_id, body=body
    )
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@enquiry_router.post(
    "/{enquiry_id}/invoice", status_code=201, response_model=InvoiceOut, responses=_ERRORS
)
async def create_invoice_from_enquiry(
    uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID, body: InvoiceFromEnquiry
) -> InvoiceOut:
    """Create a draft invoice for an enquiry, billed to the enquiry's contact."""
    enquiry = await get_enquiry(uow, workspace_id=actor.workspace_id, enquiry_id=enquiry_id)
    if enquiry.contact_id is None:
        raise ValidationFailed(
            "enquiry_id",
            "The enquiry has no contact; create the invoice with POST /invoices and a contact_id.",
            "no_contact",
        )
    invoice = await invoices.create_draft(
        uow,
        workspace_id=actor.workspace_id,
        actor_id=actor.user_id,
        body=InvoiceCreate(
            contact_id=enquiry.contact_id, enquiry_id=enquiry.id, **body.model_dump()
        ),
    )
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.get("/{invoice_id}", response_model=InvoiceOut, responses=_ERRORS)
@read_only
async def get_invoice(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> InvoiceOut:
    """Read an invoice with its lines, tax breakdown and amounts."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.patch("/{invoice_id}", response_model=InvoiceOut, responses=_ERRORS)
async def update_invoice(
    uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID, body: InvoiceUpdate
) -> InvoiceOut:
    """Change a draft; `lines` replaces all lines in the given order. 409 once issued."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    await invoices.update_draft(uow, invoice, body=body, actor_id=actor.user_id)
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.delete("/{invoice_id}", status_code=204, responses=_ERRORS)
async def delete_invoice(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> Response:
    """Delete a draft. Issued invoices are kept; void them instead."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    await invoices.delete_draft(uow, invoice, actor_id=actor.user_id)
    return Response(status_code=204)


@router.post("/{invoice_id}/issue", response_model=InvoiceOut, responses=_ERRORS)
async def issue_invoice(
    uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID, body: InvoiceIssue | None = None
) -> InvoiceOut:
    """Issue a draft: number, issue and due dates, seller and customer snapshots."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    await invoices.issue(uow, invoice, body=body or InvoiceIssue(), actor_id=actor.user_id)
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.post("/{invoice_id}/void", response_model=InvoiceOut, responses=_ERRORS)
async def void_invoice(uow: UowDep, actor: AdminDep, invoice_id: uuid.UUID) -> InvoiceOut:
    """Void an issued invoice without payments (admins)."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    await invoices.void(uow, invoice, actor_id=actor.user_id)
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.post("/{invoice_id}/mark-uncollectible", response_model=InvoiceOut, responses=_ERRORS)
async def mark_uncollectible(uow: UowDep, actor: AdminDep, invoice_id: uuid.UUID) -> InvoiceOut:
    """Write off what remains due on an issued invoice (admins)."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    await invoices.mark_uncollectible(uow, invoice, actor_id=actor.user_id)
    return InvoiceOut.model_validate(await invoices.invoice_view(uow, invoice))


@router.get("/{invoice_id}/timeline", response_model=InvoiceTimeline, responses=_ERRORS)
@read_only
async def get_timeline(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> InvoiceTimeline:
    """List the invoice's activities, oldest first."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    activities = await invoices.list_activities(uow, invoice)
    return InvoiceTimeline(items=[InvoiceActivityOut.model_validate(item) for item in activities])


@router.post(
    "/{invoice_id}/credit-notes", status_code=201, response_model=CreditNoteOut, responses=_ERRORS
)
async def create_credit_note(
    uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID, body: CreditNoteCreate
) -> CreditNoteOut:
    """Credit part or all of an issued invoice; the amount due drops, never below zero."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    note = await invoices.create_credit_note(uow, invoice, body=body, actor_id=actor.user_id)
    return invoices.credit_note_view(note)


@router.get("/{invoice_id}/credit-notes", response_model=CreditNoteList, responses=_ERRORS)
@read_only
async def list_credit_notes(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> CreditNoteList:
    """List the invoice's credit notes, oldest first."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    notes = await invoices.list_credit_notes(uow, invoice)
    return CreditNoteList(items=[invoices.credit_note_view(note) for note in notes])
