"""Sending invoices by email with their PDF, and the staff PDF download."""

from __future__ import annotations

import asyncio
import io
import sys
import uuid
from email.message import EmailMessage as MimeMessage
from typing import Any

import httpx
import pypdf
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import owner
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.models import EmailMessage
from frontdesk.payments import delivery
from frontdesk.payments.models import Invoice, InvoiceActivity
from frontdesk.runtime import Runtime
from frontdesk.storage.models import Bucket, StoredObject
from invoice_factories import draft_invoice, issued_invoice, save_settings
from smtp_server import SmtpServer
from smtp_server import smtp_server as smtp_server


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, Any]:
    # Messages with attachments are built with a validated From address.
    return {**smtp_server.settings(), "email_from": "Studio <hello@studio.example>"}


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def parts(message: MimeMessage) -> tuple[str, str, list[MimeMessage]]:
    text = html = ""
    attachments: list[MimeMessage] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            attachments.append(part)  # type: ignore[arg-type]
        elif part.get_content_type() == "text/plain":
            text = str(part.get_content())  # type: ignore[attr-defined]
        elif part.get_content_type() == "text/html":
            html = str(part.get_content())  # type: ignore[attr-defined]
    return text, html, attachments


async def activities(runtime: Runtime, invoice_id: str, kind: str) -> list[InvoiceActivity]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(InvoiceActivity).where(
                InvoiceActivity.invoice_id == uuid.UUID(invoice_id), InvoiceActivity.type == kind
            )
        )
        return list(rows)


async def test_send_delivers_pdf_and_link(
    client: httpx.AsyncClient, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)

    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send",
        json={"message": "Thanks for the <b>great</b> project!"},
        headers=staff.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["to"] == "ada@example.org"
    await run_jobs(runtime)

    # The owner's verification email arrives too.
    received = await smtp_server.wait_for(2)
    to_customer = [item for item in received if item.rcpt_tos == ["ada@example.org"]]
    assert len(to_customer) == 1
    message = to_customer[0].parse()
    assert invoice["number"] in str(message["Subject"])
    assert "Studio Nine" in str(message["Subject"])
    assert str(message["Reply-To"]) == "billing@studio.example"
    text, html, attachments = parts(message)

    link = f"http://frontdesk.test/pay/{invoice['public_token']}"
    assert link in text
    assert f'href="{link}"' in html
    assert "Thanks for the <b>great</b> project!" in text
    assert "Thanks for the &lt;b&gt;great&lt;/b&gt; project!" in html
    assert "417.50 EUR" in text

    assert len(attachments) == 1
    attachment = attachments[0]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"invoice-{invoice['number']}.pdf"
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    assert data.startswith(b"%PDF-")
    document = pdf_text(data)
    assert invoice["number"] in document
    assert "Amount due 417.50 EUR" in document
    assert "IBAN GR16 0110 1250 0000 0001 2300 695" in document
    assert link in document

    sent = await activities(runtime, invoice["id"], "sent")
    assert len(sent) == 1
    assert sent[0].actor_id == staff.user_id
    assert sent[0].data["to"] == "ada@example.org"
    timeline = await client.get(f"/api/v1/invoices/{invoice['id']}/timeline", headers=staff.headers)
    assert "sent" in [entry["type"] for entry in timeline.json()["items"]]


async def test_pdf_stored_in_private_bucket(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)

    response = await client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=staff.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert f"invoice-{invoice['number']}.pdf" in response.headers["content-disposition"]
    assert "417.50 EUR" in pdf_text(response.content)
    async with runtime.sessionmaker() as session:
        stored = await session.get(Invoice, uuid.UUID(invoice["id"]))
        assert stored is not None
        assert stored.pdf_object_id is not None
        blob = await session.get(StoredObject, stored.pdf_object_id)
        assert blob is not None
        bucket = await session.get(Bucket, blob.bucket_id)
        assert bucket is not None
        assert bucket.name == "invoices"
        assert bucket.visibility == "private"
    made_public = await client.patch(
        f"/api/v1/storage/buckets/{bucket.id}", json={"visibility": "public"}, headers=staff.headers
    )
    assert made_public.status_code == 409


async def test_pdf_reused_until_invoice_changes(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)
    path = f"/api/v1/invoices/{invoice['id']}/pdf"

    first = await client.get(path, headers=staff.headers)
    object_id = (
        await client.get(f"/api/v1/invoices/{invoice['id']}", headers=staff.headers)
    ).json()["pdf_object_id"]
    second = await client.get(path, headers=staff.headers)
    same = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=staff.headers)).json()[
        "pdf_object_id"
    ]
    assert first.content == second.content
    assert same == object_id

    paid = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"amount": 41750, "method": "bank_transfer"},
        headers=staff.headers,
    )
    assert paid.status_code == 201, paid.text
    third = await client.get(path, headers=staff.headers)

    assert "Status Paid" in pdf_text(third.content)
    assert "Amount due 0.00 EUR" in pdf_text(third.content)
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(StoredObject)
            .where(
                StoredObject.workspace_id == staff.workspace_id,
                StoredObject.content_type == "application/pdf",
            )
        )
    assert count == 1


async def test_pdf_job_stores_pdf(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    async with runtime.sessionmaker() as session:
        row = await session.get(Invoice, uuid.UUID(invoice["id"]))
        assert row is not None
        row.pdf_object_id = None
        await session.commit()

    async with runtime.sessionmaker() as session:
        uow = UnitOfWork(runtime, session)
        row = await session.get(Invoice, uuid.UUID(invoice["id"]))
        assert row is not None
        delivery.enqueue_pdf(uow, row)
        await uow.commit()
    await run_jobs(runtime)

    async with runtime.sessionmaker() as session:
        row = await session.get(Invoice, uuid.UUID(invoice["id"]))
        assert row is not None
        assert row.pdf_object_id is not None


async def test_send_draft_conflict(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    draft = await draft_invoice(client, runtime, staff)

    sent = await client.post(f"/api/v1/invoices/{draft['id']}/send", json={}, headers=staff.headers)
    pdf = await client.get(f"/api/v1/invoices/{draft['id']}/pdf", headers=staff.headers)

    assert sent.status_code == 409
    assert sent.json()["code"] == "invoice_not_issued"
    assert pdf.status_code == 409


async def test_send_void_conflict(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    voided = await client.post(f"/api/v1/invoices/{invoice['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text

    sent = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send", json={}, headers=staff.headers
    )

    assert sent.status_code == 409
    assert sent.json()["code"] == "invoice_not_sendable"


async def test_send_without_address_names_to(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff, email=None)
    path = f"/api/v1/invoices/{invoice['id']}/send"

    missing = await client.post(path, json={}, headers=staff.headers)
    invalid = await client.post(path, json={"to": "not an address"}, headers=staff.headers)
    given = await client.post(path, json={"to": "accounts@example.org"}, headers=staff.headers)

    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "to"
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "to"
    assert given.status_code == 202, given.text
    assert given.json()["to"] == "accounts@example.org"
    assert await activities(runtime, invoice["id"], "sent")


async def test_other_workspace_invoice_not_found(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    stranger = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)

    sent = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send", json={}, headers=stranger.headers
    )
    pdf = await client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=stranger.headers)

    assert sent.status_code == 404
    assert pdf.status_code == 404
    assert await activities(runtime, invoice["id"], "sent") == []


async def test_workspace_template_replaces_email(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    await save_settings(client, staff)
    template = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={
            "key": "invoice_sent",
            "name": "Our invoice email",
            "variables": [
                {"name": "invoice_number", "type": "string", "sample": "INV-1"},
                {"name": "payment_link", "type": "string", "sample": "https://x.example/pay"},
            ],
            "subject": "Your bill {{ invoice_number }}",
            "body": "<p>Pay here: {{ payment_link }}</p>",
        },
    )
    assert template.status_code == 201, template.text
    invoice = await issued_invoice(client, runtime, staff)

    sent = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send", json={}, headers=staff.headers
    )
    assert sent.status_code == 202, sent.text

    async with runtime.sessionmaker() as session:
        email = await session.get(EmailMessage, uuid.UUID(sent.json()["email_id"]))
    assert email is not None
    assert email.subject == f"Your bill {invoice['number']}"
    assert f"Pay here: http://frontdesk.test/pay/{invoice['public_token']}" in email.html_body
    assert len(email.attachments) == 1
    assert email.attachments[0]["content_type"] == "application/pdf"


async def test_concurrent_downloads_store_one_pdf(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    path = f"/api/v1/invoices/{invoice['id']}/pdf"

    responses = await asyncio.gather(*(client.get(path, headers=staff.headers) for _ in range(3)))

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[0].content == responses[1].content == responses[2].content
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(StoredObject)
            .where(
                StoredObject.workspace_id == staff.workspace_id,
                StoredObject.content_type == "application/pdf",
            )
        )
    assert count == 1


async def test_missing_weasyprint_is_503(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, runtime, staff)
    # A None entry in sys.modules makes ``import weasyprint`` raise ImportError, as on a
    # server without the package.
    monkeypatch.setitem(sys.modules, "weasyprint", None)

    response = await client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=staff.headers)
    sent = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send", json={}, headers=staff.headers
    )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "pdf_unavailable"
    assert sent.status_code == 503
    assert await activities(runtime, invoice["id"], "sent") == []
