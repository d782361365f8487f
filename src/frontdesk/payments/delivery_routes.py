"""Staff API for an invoice's PDF and for sending the invoice by email."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from frontdesk.auth.dependencies import AgentDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.payments import delivery, invoices

router = APIRouter(prefix="/invoices", tags=["invoices"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such invoice in this workspace."},
    409: {"model": Problem, "description": "The invoice is a draft or void."},
    503: {"model": Problem, "description": "PDF rendering is unavailable on this server."},
}


class InvoiceSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: EmailStr | None = Field(
        default=None, description="Recipient; the customer's email address when left out."
    )
    message: Annotated[str | None, Field(max_length=5000)] = Field(
        default=None, description="Text added to the email above the payment link."
    )


class InvoiceSent(BaseModel):
    email_id: uuid.UUID
    to: str
    pdf_object_id: uuid.UUID


def pdf_response(data: bytes, filename: str, *, disposition: str) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'{disposition}; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/{invoice_id}/pdf",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"application/pdf": {}}}},
)
async def get_invoice_pdf(uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID) -> Response:
    """Download the issued invoice's PDF, rendered now if it is missing or out of date."""
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    data, filename = await delivery.read_pdf(uow, invoice)
    return pdf_response(data, filename, disposition="attachment")


@router.post("/{invoice_id}/send", status_code=202, response_model=InvoiceSent, responses=_ERRORS)
async def send_invoice(
    uow: UowDep, actor: AgentDep, invoice_id: uuid.UUID, body: InvoiceSend | None = None
) -> InvoiceSent:
    """Email the invoice with its PDF attached and the payment link; records "sent"."""
    data = body or InvoiceSend()
    invoice = await invoices.get_invoice(uow, actor.workspace_id, invoice_id)
    email = await delivery.send_invoice(
        uow, invoice, to=data.to, message=data.message, actor_id=actor.user_id
    )
    assert invoice.pdf_object_id is not None  # send_invoice stored the PDF
    return InvoiceSent(email_id=email.id, to=email.to_address, pdf_object_id=invoice.pdf_object_id)
