"""Received email through the API and provider webhooks: enquiries, threading, reports."""

from __future__ import annotations

import json
import uuid
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from factories import Staff, member, owner
from frontdesk.auth.models import User
from frontdesk.core.clock import FrozenClock
from frontdesk.email.inbound_service import reply_address
from frontdesk.email.models import EmailMessage, EmailSuppression, InboundEmail
from frontdesk.enquiries.models import Enquiry
from frontdesk.runtime import Runtime
from frontdesk.storage.models import StoredObject
from webhook_signing import mailgun_signature, postmark_authorization, unix

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
CUSTOMER = "camille@example.org"


def mime(
    *,
    sender: str = CUSTOMER,
    to: str = "hello@studio.example",
    subject: str = "Wedding photos in June?",
    body: str = "Hello, are you free on 14 June?",
    **headers: str,
) -> bytes:
    message = MimeMessage()
    message["From"] = f"Camille Martin <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(FrozenClock().now())
    message["Message-ID"] = make_msgid(domain="mail.example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


async def upload(client: httpx.AsyncClient, staff: Staff, raw: bytes) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "message/rfc822"},
        content=raw,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def enquiry_count(runtime: Runtime, staff: Staff) -> int:
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Enquiry)
            .where(Enquiry.workspace_id == staff.workspace_id)
        )
    return int(count or 0)


async def send_template_about(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, enquiry_id: str
) -> EmailMessage:
    template = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={
            "key": "answer",
            "name": "Answer",
            "subject": "Re: your enquiry",
            "body": "<p>Yes</p>",
        },
    )
    assert template.status_code == 201, template.text
    sent = await client.post(
        f"/api/v1/email/templates/{template.json()['id']}/send",
        headers=staff.headers,
        json={"to": CUSTOMER, "enquiry_id": enquiry_id},
    )
    assert sent.status_code == 202, sent.text
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, uuid.UUID(sent.json()["email_id"]))
    assert message is not None
    return message


async def test_new_sender_creates_enquiry(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    raw = (CORPUS / "email" / "flanker" / "attached-pdf.eml").read_bytes()
    received = await upload(client, staff, raw)

    assert received["action"] == "created_enquiry"
    assert received["enquiry_id"] is not None
    [attachment] = [item for item in received["attachments"] if not item["inline"]]
    assert attachment["filename"].endswith(".pdf")
    async with runtime.sessionmaker() as session:
        enquiry = await session.get(Enquiry, uuid.UUID(received["enquiry_id"]))
        stored = await session.get(StoredObject, uuid.UUID(attachment["object_id"]))
        raw_object = await session.get(StoredObject, uuid.UUID(received["raw_object_id"]))
    assert enquiry is not None
    assert enquiry.source == "email"
    assert enquiry.subject == "test message via curl - extra content-type (_001_)"
    assert stored is not None
    assert stored.size == attachment["size"]
    assert raw_object is not None
    assert raw_object.size == len(raw)


async def test_duplicate_message_ignored(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    raw = mime()
    first = await upload(client, staff, raw)
    second = await upload(client, staff, raw)
    assert second["id"] == first["id"]
    assert await enquiry_count(runtime, staff) == 1


async def test_reply_joins_enquiry(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    sent = await send_template_about(client, runtime, staff, first["enquiry_id"])

    reply = await upload(
        client,
        staff,
        mime(
            subject="Another topic entirely",
            body="Great, see you then.\n\nOn Monday, Studio wrote:\n> Yes",
            In_Reply_To=sent.message_id,
            References=sent.message_id,
        ),
    )

    assert reply["action"] == "threaded"
    assert reply["enquiry_id"] == first["enquiry_id"]
    assert reply["text"] == "Great, see you then."
    assert "> Yes" in reply["quoted"]
    assert await enquiry_count(runtime, staff) == 1
    timeline = await client.get(
        f"/api/v1/enquiries/{first['enquiry_id']}/timeline", headers=staff.headers
    )
    assert "email_received" in [entry["type"] for entry in timeline.json()["items"]]


async def test_stranger_cannot_join_thread(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    sent = await send_template_about(client, runtime, staff, first["enquiry_id"])

    intruder = await upload(
        client, staff, mime(sender="someone@else.example", In_Reply_To=sent.message_id)
    )

    assert intruder["action"] == "created_enquiry"
    assert intruder["enquiry_id"] != first["enquiry_id"]


async def test_staff_reply_recognised(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    first = await upload(client, staff, mime())
    async with runtime.sessionmaker() as session:
        user = await session.get(User, agent.user_id)
    assert user is not None
    agent_email = user.email
    assert agent_email
    from_staff = await upload(
        client,
        staff,
        mime(sender=agent_email, In_Reply_To=f"<{first['message_id'].strip('<>')}>"),
    )
    assert from_staff["action"] == "staff_reply"
    assert from_staff["enquiry_id"] == first["enquiry_id"]


async def test_reply_address_threads(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    address = reply_address(
        "hello@studio.example", runtime.secrets.secret_key, uuid.UUID(first["enquiry_id"])
    )
    reply = await upload(client, staff, mime(to=address, subject="New subject"))
    forged = await upload(
        client, staff, mime(to=address.replace("+r", "+r0").replace("@", "x@"), subject="Hi")
    )
    assert reply["action"] == "threaded"
    assert reply["enquiry_id"] == first["enquiry_id"]
    assert forged["enquiry_id"] != first["enquiry_id"]


async def test_auto_reply_starts_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    received = await upload(
        client, staff, mime(subject="Out of office", Auto_Submitted="auto-replied")
    )
    assert received["action"] == "automatic"
    assert received["enquiry_id"] is None
    assert "auto-submitted" in received["automatic_reason"].lower()
    assert await enquiry_count(runtime, staff) == 0


def delivery_report(original_message_id: str, recipient: str) -> bytes:
    """A bounce (RFC 3464 multipart/report) about the message ``original_message_id``."""
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@mx.example.org>\r\n"
        "To: hello@studio.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4()}@mx.example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_message_id}\r\nTo: {recipient}\r\nSubject: Re\r\n\r\n"
        "--b1--\r\n"
    ).encode()


async def suppressions(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(sa.select(EmailSuppression.address, EmailSuppression.reason))
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_bounce_of_sent_message_suppresses(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    sent = await send_template_about(client, runtime, staff, first["enquiry_id"])

    received = await upload(client, staff, delivery_report(sent.message_id, CUSTOMER))

    assert received["action"] == "report"
    assert received["report_kind"] == "hard"
    assert await suppressions(runtime) == [(CUSTOMER, "hard_bounce")]


async def test_forged_bounce_suppresses_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    sent = await send_template_about(client, runtime, staff, first["enquiry_id"])
    corpus = (CORPUS / "email" / "flanker" / "bounce" / "gmail-invalid-address.eml").read_bytes()

    unknown_message = await upload(client, staff, corpus)
    other_address = await upload(client, staff, delivery_report(sent.message_id, "sam@example.com"))

    assert unknown_message["action"] == "report"
    assert other_address["action"] == "report"
    assert await suppressions(runtime) == []
    assert await enquiry_count(runtime, staff) == 1


async def test_own_address_is_automatic(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    runtime.settings.email_from = "Studio Nine <hello@studio-nine.example>"
    received = await upload(client, staff, mime(sender="hello@studio-nine.example"))
    assert received["action"] == "automatic"
    assert await enquiry_count(runtime, staff) == 0


async def test_message_without_id_deduplicated(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    raw = b"From: Camille <camille@example.org>\r\nTo: hello@studio.example\r\nSubject: Hi\r\n\r\nHello\r\n"
    first = await upload(client, staff, raw)
    second = await upload(client, staff, raw)
    assert second["id"] == first["id"]
    assert first["message_id"].endswith("@no-message-id.invalid>")
    assert await enquiry_count(runtime, staff) == 1


async def test_upload_limits(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    empty = await client.post(
        "/api/v1/email/inbound", headers=staff.headers | {"Content-Type": "message/rfc822"}
    )
    assert empty.status_code == 400
    runtime.settings.inbound_max_bytes = 1000
    large = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "message/rfc822"},
        content=mime(body="x" * 5000),
    )
    assert large.status_code == 413
    assert large.json()["code"] == "message_too_large"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(InboundEmail)) == 0


async def test_upload_needs_message_type(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)

    as_json = await client.post("/api/v1/email/inbound", headers=staff.headers, json={})
    as_text = await client.post(
        "/api/v1/email/inbound",
        headers=staff.headers | {"Content-Type": "text/plain"},
        content=mime(),
    )

    for response in (as_json, as_text):
        assert response.status_code == 415, response.text
        assert "message/rfc822" in response.json()["detail"]
    assert await enquiry_count(runtime, staff) == 0
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(InboundEmail)) == 0


class TestWebhooks:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"email_providers_allow_private_networks": True}

    async def configure(
        self,
        client: httpx.AsyncClient,
        staff: Staff,
        kind: str,
        config: dict[str, Any],
        **extra: Any,
    ) -> str:
        response = await client.put(
            "/api/v1/email/provider",
            headers=staff.headers,
            json={"kind": kind, "config": config, "from_address": "hello@studio.example", **extra},
        )
        assert response.status_code == 200, response.text
        return httpx.URL(response.json()["inbound_webhook_url"]).path

    async def test_postmark_inbound(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        staff = await owner(client)
        path = await self.configure(
            client, staff, "postmark", {"server_token": "t"}, webhook_secret="in:s3cret"
        )
        body = (
            CORPUS / "email-webhooks" / "anymail" / "postmark-inbound-test-payload.json"
        ).read_bytes()

        wrong = await client.post(path, content=body, headers=postmark_authorization("in", "no"))
        right = await client.post(
            path, content=body, headers=postmark_authorization("in", "s3cret")
        )

        assert wrong.status_code == 401
        assert right.status_code == 200, right.text
        assert right.json()["action"] == "created_enquiry"
        async with runtime.sessionmaker() as session:
            inbound = await session.get(InboundEmail, uuid.UUID(right.json()["inbound_email_id"]))
        assert inbound is not None
        assert inbound.source == "postmark"
        assert inbound.from_address == "support@postmarkapp.com"

    async def test_postmark_payload_without_sender(self, client: httpx.AsyncClient) -> None:
        staff = await owner(client)
        path = await self.configure(
            client, staff, "postmark", {"server_token": "t"}, webhook_secret="in:s3cret"
        )
        sample = json.loads(
            (
                CORPUS / "email-webhooks" / "anymail" / "postmark-inbound-test-payload.json"
            ).read_bytes()
        )
        sample.pop("FromFull")
        sample.pop("From", None)

        response = await client.post(
            path,
            content=json.dumps(sample).encode(),
            headers=postmark_authorization("in", "s3cret"),
        )

        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert (error["field"], error["code"]) == ("FromFull", "payload_invalid")
        assert error["message"].startswith("The payload is invalid: FromFull is missing;")

    async def test_sendgrid_raw_mode(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        staff = await owner(client)
        path = await self.configure(client, staff, "sendgrid", {"api_key": "SG.x"})
        # The sample is stored with LF line ends; HTTP multipart bodies use CRLF.
        body = (CORPUS / "email-webhooks" / "sendgrid" / "raw_data.txt").read_bytes()
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        response = await client.post(
            path, content=body, headers={"Content-Type": "multipart/form-data; boundary=xYzZY"}
        )
        assert response.status_code == 200, response.text
        async with runtime.sessionmaker() as session:
            inbound = await session.get(
                InboundEmail, uuid.UUID(response.json()["inbound_email_id"])
            )
        assert inbound is not None
        assert inbound.subject == "Inbound Parse Test Raw Data"
        assert inbound.raw_object_id is not None

    async def test_mailgun_route_signed(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
    ) -> None:
        staff = await owner(client)
        path = await self.configure(
            client,
            staff,
            "mailgun",
            {"domain": "mg.studio.example", "api_key": "key"},
            webhook_secret="route-key",
        )
        fields = {
            "body-mime": mime().decode(),
            **mailgun_signature("route-key", unix(clock.now()), "a" * 50),
        }
        forged = {**fields, "signature": "0" * 64}
        assert (await client.post(path, data=forged)).status_code == 401
        response = await client.post(path, data=fields)
        assert response.status_code == 200, response.text
        assert response.json()["action"] == "created_enquiry"

    async def test_payload_error_names_field(self, client: httpx.AsyncClient) -> None:
        staff = await owner(client)
        path = await self.configure(
            client, staff, "postmark", {"server_token": "t"}, webhook_secret="in:s3cret"
        )
        response = await client.post(
            path, content=json.dumps({"Subject": 5}), headers=postmark_authorization("in", "s3cret")
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"]


class TestReplyAddress:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"email_providers_allow_private_networks": True}

    async def test_template_sets_reply_address(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        staff = await owner(client)
        provider = await client.put(
            "/api/v1/email/provider",
            headers=staff.headers,
            json={
                "kind": "postmark",
                "config": {"server_token": "t"},
                "from_address": "Studio <hello@studio.example>",
            },
        )
        assert provider.status_code == 200, provider.text
        first = await upload(client, staff, mime())
        sent = await send_template_about(client, runtime, staff, first["enquiry_id"])
        assert sent.reply_to is not None
        assert sent.reply_to.startswith("hello+r")
        assert sent.reply_to.endswith("@studio.example")

        reply = await upload(client, staff, mime(to=sent.reply_to, subject="Re: hi"))
        assert reply["action"] == "threaded"
        assert reply["enquiry_id"] == first["enquiry_id"]
