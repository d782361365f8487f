"""Template emails with attachments and inline images, and replies that thread."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from conftest import run_jobs
from email_provider_servers import FakeProviders, serve_fake_providers
from factories import Staff, owner
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from smtp_server import SmtpServer
from smtp_server import smtp_server as smtp_server

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PDF_NAME = "Devis \u2013 Été 2027.pdf"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, Any]:
    return {
        **smtp_server.settings(),
        "email_from": "Studio <hello@studio.example>",
        "email_providers_allow_private_networks": True,
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with serve_fake_providers() as providers:
        yield providers


async def stored_file(client: httpx.AsyncClient, staff: Staff, key: str, content: bytes) -> str:
    bucket = await client.post(
        "/api/v1/storage/buckets", headers=staff.headers, json={"name": f"b-{uuid.uuid4().hex[:8]}"}
    )
    assert bucket.status_code == 201, bucket.text
    response = await client.post(
        f"/api/v1/storage/buckets/{bucket.json()['id']}/objects",
        headers=staff.headers | {"Content-Type": "application/octet-stream"},
        params={"key": key},
        content=content,
    )
    assert response.status_code == 201, response.text
    object_id: str = response.json()["id"]
    return object_id


async def template_id(client: httpx.AsyncClient, staff: Staff) -> str:
    response = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={
            "key": "quote",
            "name": "Quote",
            "subject": "Your quote",
            "body": '<p>Here is your quote.</p><img src="cid:logo" alt="Studio logo">',
        },
    )
    assert response.status_code == 201, response.text
    result: str = response.json()["id"]
    return result


async def send(
    client: httpx.AsyncClient, staff: Staff, template: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/email/templates/{template}/send",
        headers=staff.headers,
        json={"to": "ada@example.org", **body},
    )


async def test_attachments_over_smtp(
    client: httpx.AsyncClient, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    staff = await owner(client)
    pdf = await stored_file(client, staff, f"quotes/{PDF_NAME}", PDF)
    logo = await stored_file(client, staff, "logo.png", png())
    template = await template_id(client, staff)

    response = await send(
        client,
        staff,
        template,
        attachments=[{"object_id": pdf}, {"object_id": logo, "content_id": "logo"}],
    )
    assert response.status_code == 202, response.text
    await run_jobs(runtime)

    [received] = [
        message for message in smtp_server.messages if "ada@example.org" in message.rcpt_tos
    ]
    parsed = received.parse()
    assert parsed.get_content_type() == "multipart/mixed"
    files = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert files[PDF_NAME].get_content() == PDF
    related = next(part for part in parsed.walk() if part.get_content_type() == "multipart/related")
    image = next(part for part in related.walk() if part.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo>"


async def test_attachments_through_provider(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    configured = await client.put(
        "/api/v1/email/provider",
        headers=staff.headers,
        json={
            "kind": "postmark",
            "config": fake.config("postmark"),
            "from_address": "Studio <hello@studio.example>",
        },
    )
    assert configured.status_code == 200, configured.text
    pdf = await stored_file(client, staff, PDF_NAME, PDF)
    response = await send(
        client, staff, await template_id(client, staff), attachments=[{"object_id": pdf}]
    )
    assert response.status_code == 202, response.text
    await run_jobs(runtime)

    [request] = fake.received("postmark")
    [attachment] = request.json()["Attachments"]
    assert attachment["Name"] == PDF_NAME
    assert attachment["ContentType"] == "application/pdf"


async def test_attachment_checks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    theirs = await stored_file(client, other, "secret.pdf", PDF)
    template = await template_id(client, staff)

    foreign = await send(client, staff, template, attachments=[{"object_id": theirs}])
    runtime.settings.email_max_attachment_bytes = 10
    mine = await stored_file(client, staff, "big.pdf", PDF)
    too_large = await send(client, staff, template, attachments=[{"object_id": mine}])

    assert foreign.status_code == 422
    assert foreign.json()["errors"][0]["field"] == "attachments.0.object_id"
    assert too_large.status_code == 422
    assert too_large.json()["errors"][0]["field"] == "attachments"
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.kind == "template")
        )
    assert count == 0


async def test_reply_carries_threading_headers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    raw = (
        b"From: Ada <ada@example.org>\r\nTo: hello@studio.example\r\nSubject: Quote?\r\n"
        b"Message-ID: <question-1@mail.example.org>\r\n\r\nHow much for a portrait?\r\n"
    )
    received = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "message/rfc822"},
        content=raw,
    )
    assert received.status_code == 201, received.text
    template = await template_id(client, staff)

    response = await send(client, staff, template, enquiry_id=received.json()["enquiry_id"])
    assert response.status_code == 202, response.text
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, uuid.UUID(response.json()["email_id"]))
    assert message is not None
    assert message.headers["In-Reply-To"] == "<question-1@mail.example.org>"
    assert message.headers["References"] == "<question-1@mail.example.org>"


async def test_reply_skips_auto_reply(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    question = (
        b"From: Ada <ada@example.org>\r\nTo: hello@studio.example\r\nSubject: Quote?\r\n"
        b"Message-ID: <question-2@mail.example.org>\r\n\r\nHow much for a portrait?\r\n"
    )
    received = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "message/rfc822"},
        content=question,
    )
    enquiry_id = received.json()["enquiry_id"]
    template = await template_id(client, staff)
    first = await send(client, staff, template, enquiry_id=enquiry_id)
    async with runtime.sessionmaker() as session:
        sent = await session.get(EmailMessage, uuid.UUID(first.json()["email_id"]))
    assert sent is not None
    auto_reply = (
        f"From: Ada <ada@example.org>\r\nTo: hello@studio.example\r\nSubject: Out of office\r\n"
        f"Message-ID: <away-1@mail.example.org>\r\nIn-Reply-To: {sent.message_id}\r\n"
        f"Auto-Submitted: auto-replied\r\n\r\nI am away.\r\n"
    ).encode()
    away = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "message/rfc822"},
        content=auto_reply,
    )
    assert away.json()["action"] == "threaded"

    second = await send(client, staff, template, enquiry_id=enquiry_id)

    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, uuid.UUID(second.json()["email_id"]))
    assert message is not None
    assert message.headers["In-Reply-To"] == "<question-2@mail.example.org>"
