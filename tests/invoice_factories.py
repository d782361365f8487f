"""Factories for the invoice delivery, payment page and reminder tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from factories import Staff
from frontdesk.contacts.models import Contact
from frontdesk.runtime import Runtime

BANK_DETAILS = "IBAN GR16 0110 1250 0000 0001 2300 695\nBIC ETHNGRAA"


async def make_contact(
    runtime: Runtime, workspace_id: uuid.UUID, *, email: str | None, name: str = "Ada Lovelace"
) -> uuid.UUID:
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session:
        if email is not None:
            existing = await session.scalar(
                sa.select(Contact.id).where(
                    Contact.workspace_id == workspace_id, Contact.email == email
                )
            )
            if existing is not None:
                return existing
        contact = Contact(
            workspace_id=workspace_id,
            name=name,
            email=email,
            search_text=name.lower(),
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        await session.commit()
        return contact.id


async def save_settings(client: httpx.AsyncClient, staff: Staff, **values: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "business_details": {"name": "Studio Nine", "email": "billing@studio.example"},
        "bank_details": BANK_DETAILS,
        **values,
    }
    response = await client.put("/api/v1/payments/settings", json=body, headers=staff.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def draft_invoice(
    client: httpx.AsyncClient,
    runtime: Runtime,
    staff: Staff,
    *,
    email: str | None = "ada@example.org",
    lines: list[dict[str, Any]] | None = None,
    **values: Any,
) -> dict[str, Any]:
    contact_id = await make_contact(runtime, staff.workspace_id, email=email)
    body = {
        "contact_id": str(contact_id),
        "currency": "EUR",
        "lines": lines
        or [
            {"description": "Logo design", "quantity": "2", "unit_price": 15000, "tax_rate": "24"},
            {"description": "Business cards", "unit_price": 4550},
        ],
        **values,
    }
    response = await client.post("/api/v1/invoices", json=body, headers=staff.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def issued_invoice(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, **values: Any
) -> dict[str, Any]:
    """Create and issue an invoice of 2 x 150.00 at 24 % plus 45.50 untaxed: 417.50 EUR."""
    draft = await draft_invoice(client, runtime, staff, **values)
    response = await client.post(
        f"/api/v1/invoices/{draft['id']}/issue", json={}, headers=staff.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
