"""The public payment page /pay/{token}: what it shows, to whom, and how often."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from factories import Staff, owner
from frontdesk.payments.models import Invoice, Payment, StripeAccount
from frontdesk.runtime import Runtime
from invoice_factories import draft_invoice, issued_invoice, save_settings
from stripe_server import FakeStripe, connect_workspace, serve_fake_stripe

PAGE_LIMIT = 6


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with serve_fake_stripe() as fake:
        yield fake


@pytest.fixture
def settings_overrides(fake_stripe: FakeStripe) -> dict[str, Any]:
    return {
        "payment_page_requests_per_ip_per_minute": PAGE_LIMIT,
        "stripe_api_base": fake_stripe.url,
        "stripe_max_retries": 0,
    }


async def connect_stripe(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    """Store a Stripe account row, which is what the page checks to offer card payments."""
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session:
        session.add(
            StripeAccount(
                workspace_id=workspace_id,
                secret_key_encrypted="not-used-by-the-page",
                webhook_token=uuid.uuid4().hex,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()


async def test_open_invoice_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await save_settings(client, staff, branding={"color": "#0a7d4f"})
    invoice = await issued_invoice(client, runtime, staff)

    response = await client.get(f"/pay/{invoice['public_token']}")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert f"Invoice {invoice['number']}" in page
    assert "Studio Nine" in page
    assert "417.50 EUR" in page
    assert "Logo design" in page
    assert "IBAN GR16 0110 1250 0000 0001 2300 695" in page
    assert f'href="/pay/{invoice["public_token"]}/pdf"' in page
    assert "#0a7d4f" in page
    assert "Pay by card" not in page
    # Nothing beyond what the invoice shows: no ids, no contact address.
    assert invoice["id"] not in page
    assert str(invoice["contact_id"]) not in page
    assert "ada@example.org" not in page
    assert "billing@studio.example" not in page


async def test_unknown_token_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/pay/no-such-token")
    too_long = await client.get("/pay/" + "x" * 65)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert too_long.status_code in (404, 422)


async def test_draft_not_shown(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    draft = await draft_invoice(client, runtime, staff)
    async with runtime.sessionmaker() as session:
        token = await session.scalar(
            sa.select(Invoice.public_token).where(Invoice.id == uuid.UUID(draft["id"]))
        )
    assert token

    page = await client.get(f"/pay/{token}")
    pdf = await client.get(f"/pay/{token}/pdf")
    checkout = await client.post(f"/pay/{token}/checkout")

    assert page.status_code == 404
    assert pdf.status_code == 404
    assert checkout.status_code == 404


async def test_paid_invoice_shows_paid(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)
    await connect_stripe(runtime, staff.workspace_id)
    paid = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"amount": 41750, "method": "bank_transfer"},
        headers=staff.headers,
    )
    assert paid.status_code == 201, paid.text

    page = (await client.get(f"/pay/{invoice['public_token']}")).text
    checkout = await client.post(f"/pay/{invoice['public_token']}/checkout")

    assert "Paid" in page
    assert "paid in full" in page
    assert "Pay by card" not in page
    assert "IBAN" not in page
    assert checkout.status_code == 409
    assert checkout.json()["code"] == "invoice_not_payable"


async def test_void_invoice_shows_void(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)
    voided = await client.post(f"/api/v1/invoices/{invoice['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text

    page = (await client.get(f"/pay/{invoice['public_token']}")).text

    assert "Void" in page
    assert "voided and nothing is due" in page
    assert "IBAN" not in page


async def test_markup_is_escaped(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await save_settings(
        client, staff, business_details={"name": "<i>Studio</i>"}, branding={"color": "#123456"}
    )
    invoice = await issued_invoice(
        client,
        runtime,
        staff,
        lines=[{"description": "<script>alert(1)</script>", "unit_price": 1000}],
    )

    page = (await client.get(f"/pay/{invoice['public_token']}")).text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>Studio</i>" not in page
    assert "&lt;i&gt;Studio&lt;/i&gt;" in page


async def test_pdf_download(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)

    response = await client.get(f"/pay/{invoice['public_token']}/pdf")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline;")
    assert response.content.startswith(b"%PDF-")


async def test_card_button_needs_stripe(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    token = invoice["public_token"]

    before = (await client.get(f"/pay/{token}")).text
    refused = await client.post(f"/pay/{token}/checkout")
    await connect_stripe(runtime, staff.workspace_id)
    after = (await client.get(f"/pay/{token}")).text

    assert "Pay by card" not in before
    assert refused.status_code == 409
    assert refused.json()["code"] == "card_payments_unavailable"
    assert "Pay by card" in after
    assert f'action="/pay/{token}/checkout"' in after


async def test_rate_limited_per_ip(
    app: FastAPI, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    path = f"/pay/{invoice['public_token']}"

    statuses = [(await client.get(path)).status_code for _ in range(PAGE_LIMIT + 1)]
    unknown = await client.get("/pay/unknown-token")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as other:
        from_other_ip = await other.get(path)

    assert statuses[:PAGE_LIMIT] == [200] * PAGE_LIMIT
    assert statuses[PAGE_LIMIT] == 429
    assert unknown.status_code == 429
    assert from_other_ip.status_code == 200


async def test_card_checkout_redirects_to_stripe(
    client: httpx.AsyncClient, runtime: Runtime, fake_stripe: FakeStripe
) -> None:
    connected = await connect_workspace(client, fake_stripe)
    # The invoice factories use only the workspace and the headers of the owner.
    staff = Staff(
        user_id=uuid.uuid4(), workspace_id=connected.workspace_id, headers=connected.headers
    )
    invoice = await issued_invoice(client, runtime, staff)
    token = invoice["public_token"]

    page = (await client.get(f"/pay/{token}")).text
    response = await client.post(f"/pay/{token}/checkout")

    assert "Pay by card" in page
    assert response.status_code == 303, response.text
    sessions = fake_stripe.created("cs_test")
    assert len(sessions) == 1
    assert response.headers["location"] == sessions[0]["url"]
    item = fake_stripe.posts("/v1/checkout/sessions")[0].params["line_items"][0]
    assert item["price_data"]["unit_amount"] == "41750"
    async with runtime.sessionmaker() as session:
        payment = await session.scalar(
            sa.select(Payment).where(Payment.invoice_id == uuid.UUID(invoice["id"]))
        )
    assert payment is not None
    assert payment.status == "pending"
    assert payment.stripe_checkout_session_id == sessions[0]["id"]

    back = (await client.get(f"/pay/{token}", params={"checkout": "success"})).text
    assert "being confirmed" in back
