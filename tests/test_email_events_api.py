"""Provider webhooks end to end, open and click tracking, and one-click unsubscribe."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from email_provider_servers import FakeProviders, serve_fake_providers
from factories import Staff, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailEvent, EmailMessage, EmailSuppression
from frontdesk.email.service import queue_email
from frontdesk.runtime import Runtime
from webhook_signing import (
    SendGridSigner,
    SnsSigner,
    SvixSigner,
    mailgun_body,
    postmark_authorization,
    sns_notification,
    sns_subscription_confirmation,
)

FROM = "Studio Nine <hello@studio-nine.example>"
TO = "client@example.org"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"email_providers_allow_private_networks": True}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with serve_fake_providers() as providers:
        yield providers


async def configure(
    client: httpx.AsyncClient, staff: Staff, kind: str, config: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    body = {"kind": kind, "config": config, "from_address": FROM, **extra}
    response = await client.put("/api/v1/email/provider", headers=staff.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def events_path(settings: dict[str, Any]) -> str:
    return httpx.URL(settings["events_webhook_url"]).path


async def send_one(runtime: Runtime, staff: Staff, html: str = "<p>Hello</p>") -> EmailMessage:
    async with unit_of_work(runtime) as uow:
        message = await queue_email(
            uow,
            kind="enquiry_acknowledgement",
            to=TO,
            subject="Your enquiry",
            text="Hello",
            html=html,
            workspace_id=staff.workspace_id,
        )
    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        stored = await session.get(EmailMessage, message.id)
    assert stored is not None
    assert stored.status == "sent"
    return stored


async def reload(runtime: Runtime, email_id: uuid.UUID) -> EmailMessage:
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, email_id)
    assert message is not None
    return message


async def suppressed(runtime: Runtime, staff: Staff) -> list[tuple[str, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(EmailSuppression.address, EmailSuppression.reason).where(
                EmailSuppression.workspace_id == staff.workspace_id
            )
        )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def sendgrid_record(
    message: EmailMessage, event: str, clock: FrozenClock, **extra: Any
) -> dict[str, Any]:
    return {
        "email": TO,
        "timestamp": int(clock.now().timestamp()),
        "event": event,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{message.provider_message_id}.filterdrecv-5645d9c87f-abcd-1-1",
        **extra,
    }


class TestSendGrid:
    async def test_events_applied_once(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        fake: FakeProviders,
        clock: FrozenClock,
    ) -> None:
        signer = SendGridSigner()
        staff = await owner(client)
        settings = await configure(
            client, staff, "sendgrid", fake.config("sendgrid"), webhook_secret=signer.public_key
        )
        message = await send_one(runtime, staff)
        records = [
            sendgrid_record(message, "delivered", clock),
            sendgrid_record(message, "bounce", clock, type="bounce", reason="550 5.1.1 unknown"),
        ]
        body = json.dumps(records).encode()
        headers = signer.headers(body, clock.now()) | {"Content-Type": "application/json"}

        first = await client.post(events_path(settings), content=body, headers=headers)
        again = await client.post(events_path(settings), content=body, headers=headers)
        await run_jobs(runtime)

        assert first.status_code == 200, first.text
        assert first.json() == {"received": 2, "stored": 2}
        assert again.json() == {"received": 2, "stored": 0}
        stored = await reload(runtime, message.id)
        assert stored.delivery_status == "bounced"
        assert await suppressed(runtime, staff) == [(TO, "hard_bounce")]

        # A late "delivered" never moves the status back.
        late = json.dumps([sendgrid_record(message, "delivered", clock)]).encode()
        response = await client.post(
            events_path(settings), content=late, headers=signer.headers(late, clock.now())
        )
        assert response.status_code == 200
        await run_jobs(runtime)
        assert (await reload(runtime, message.id)).delivery_status == "bounced"

    async def test_tampered_body_rejected(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        fake: FakeProviders,
        clock: FrozenClock,
    ) -> None:
        signer = SendGridSigner()
        staff = await owner(client)
        settings = await configure(
            client, staff, "sendgrid", fake.config("sendgrid"), webhook_secret=signer.public_key
        )
        message = await send_one(runtime, staff)
        body = json.dumps([sendgrid_record(message, "spamreport", clock)]).encode()
        headers = signer.headers(body, clock.now())

        tampered = await client.post(
            events_path(settings),
            content=body.replace(b"spamreport", b"delivered "),
            headers=headers,
        )
        clock.advance(seconds=600)
        replayed = await client.post(events_path(settings), content=body, headers=headers)

        assert tampered.status_code == 401
        assert tampered.json()["code"] == "signature_invalid"
        assert replayed.status_code == 401
        assert replayed.json()["code"] == "timestamp_outside_tolerance"
        async with runtime.sessionmaker() as session:
            assert (await session.scalar(sa.select(sa.func.count()).select_from(EmailEvent))) == 0

    async def test_unknown_address_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/webhooks/email/sendgrid/no-such-token/events", content=b"[]")
        assert response.status_code == 404


async def test_postmark_basic_auth(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    staff = await owner(client)
    settings = await configure(
        client, staff, "postmark", fake.config("postmark"), webhook_secret="hooks:s3cret"
    )
    message = await send_one(runtime, staff)
    record = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "MessageID": message.provider_message_id,
        "Email": TO,
        "BouncedAt": clock.now().isoformat(),
        "Description": "The subscriber explicitly marked this message as spam.",
        "MessageStream": "outbound",
    }
    body = json.dumps(record).encode()

    wrong = await client.post(
        events_path(settings), content=body, headers=postmark_authorization("hooks", "guess")
    )
    right = await client.post(
        events_path(settings), content=body, headers=postmark_authorization("hooks", "s3cret")
    )
    await run_jobs(runtime)

    assert wrong.status_code == 401
    assert wrong.json()["code"] == "credentials_invalid"
    assert right.status_code == 200, right.text
    assert (await reload(runtime, message.id)).delivery_status == "complained"
    assert await suppressed(runtime, staff) == [(TO, "complaint")]


async def test_mailgun_and_resend_signatures(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    mailgun_staff = await owner(client)
    mailgun = await configure(
        client, mailgun_staff, "mailgun", fake.config("mailgun"), webhook_secret="key-signing"
    )
    mailgun_message = await send_one(runtime, mailgun_staff)
    event_data = {
        "id": uuid.uuid4().hex,
        "event": "delivered",
        "timestamp": clock.now().timestamp(),
        "recipient": TO,
        "message": {"headers": {"message-id": mailgun_message.provider_message_id}},
    }
    good = mailgun_body("key-signing", event_data, clock.now())
    bad = mailgun_body("another-key", event_data, clock.now())
    assert (await client.post(events_path(mailgun), content=bad)).status_code == 401
    assert (await client.post(events_path(mailgun), content=good)).status_code == 200

    signer = SvixSigner()
    resend_staff = await owner(client)
    resend = await configure(
        client, resend_staff, "resend", fake.config("resend"), webhook_secret=signer.secret
    )
    resend_message = await send_one(runtime, resend_staff)
    payload = {
        "type": "email.delivered",
        "created_at": clock.now().isoformat(),
        "data": {
            "email_id": resend_message.provider_message_id,
            "to": [TO],
            "created_at": clock.now().isoformat(),
        },
    }
    body = json.dumps(payload).encode()
    headers = signer.headers(body, "msg_" + uuid.uuid4().hex, clock.now())
    forged = dict(headers, **{"svix-signature": "v1,AAAA"})
    assert (await client.post(events_path(resend), content=body, headers=forged)).status_code == 401
    assert (
        await client.post(events_path(resend), content=body, headers=headers)
    ).status_code == 200

    await run_jobs(runtime)
    assert (await reload(runtime, mailgun_message.id)).delivery_status == "delivered"
    assert (await reload(runtime, resend_message.id)).delivery_status == "delivered"


async def test_ses_through_sns(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake: FakeProviders,
    clock: FrozenClock,
    app: Any,
) -> None:
    signer = SnsSigner()
    app.state.sns_fetch_certificate = signer.fetch
    staff = await owner(client)
    settings = await configure(client, staff, "ses", fake.config("ses"))
    message = await send_one(runtime, staff)

    confirmation = signer.sign(sns_subscription_confirmation(clock.now()))
    confirmed = await client.post(events_path(settings), content=json.dumps(confirmation))
    assert confirmed.status_code == 200, confirmed.text
    async with runtime.sessionmaker() as session:
        job = (await session.scalars(sa.select(Job).where(Job.name == "email.sns.confirm"))).one()
    assert job.payload["url"] == confirmation["SubscribeURL"]

    ses_event = {
        "eventType": "Bounce",
        "mail": {
            "timestamp": clock.now().isoformat(),
            "messageId": message.provider_message_id,
            "destination": [TO],
            "headers": [{"name": "Message-ID", "value": message.message_id}],
        },
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": TO, "diagnosticCode": "smtp; 550 5.1.1"}],
            "timestamp": clock.now().isoformat(),
            "feedbackId": "0100-feedback",
        },
    }
    notification = signer.sign(sns_notification(ses_event, clock.now()))
    forged = dict(notification, Message=json.dumps({**ses_event, "eventType": "Delivery"}))
    assert (await client.post(events_path(settings), content=json.dumps(forged))).status_code == 401
    accepted = await client.post(events_path(settings), content=json.dumps(notification))
    assert accepted.status_code == 200, accepted.text
    await run_jobs(runtime)
    assert (await reload(runtime, message.id)).delivery_status == "bounced"
    assert await suppressed(runtime, staff) == [(TO, "hard_bounce")]


class TestTracking:
    async def test_pixel_and_redirect(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        fake: FakeProviders,
        clock: FrozenClock,
    ) -> None:
        staff = await owner(client)
        await configure(
            client, staff, "postmark", fake.config("postmark"), track_opens=True, track_clicks=True
        )
        message = await send_one(
            runtime,
            staff,
            html='<p><a href="https://studio.example/book?a=1&amp;b=2">Book</a> '
            '<a href="mailto:hi@studio.example">Mail</a></p>',
        )
        links = [unescape(link) for link in re.findall(r'href="([^"]+)"', message.html_body)]
        assert links[0].startswith("http://frontdesk.test/e/c/")
        assert links[1] == "mailto:hi@studio.example"
        pixel = re.search(r'<img src="([^"]+)"', message.html_body)
        assert pixel is not None

        # A privacy proxy fetches the pixel at once; a person clicks a minute later.
        opened = await client.get(httpx.URL(unescape(pixel.group(1))).path)
        clock.advance(seconds=60)
        clicked = await client.get(
            httpx.URL(links[0]).path, headers={"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605"}
        )

        assert opened.status_code == 200
        assert opened.headers["content-type"] == "image/gif"
        assert clicked.status_code == 302
        assert clicked.headers["location"] == "https://studio.example/book?a=1&b=2"
        async with runtime.sessionmaker() as session:
            rows = (
                await session.execute(
                    sa.select(EmailEvent.type, EmailEvent.machine_reason).order_by(
                        EmailEvent.occurred_at
                    )
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            ("opened", "too_soon_after_delivery"),
            ("clicked", None),
        ]

    async def test_tampered_click_never_redirects(
        self, client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
    ) -> None:
        staff = await owner(client)
        await configure(client, staff, "postmark", fake.config("postmark"), track_clicks=True)
        message = await send_one(runtime, staff, html='<a href="https://studio.example/">x</a>')
        link = unescape(re.findall(r'href="([^"]+)"', message.html_body)[0])
        payload, signature = httpx.URL(link).path.rsplit("/", 1)[1].split(".")
        forged_payload = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
        first = "y" if signature[0] == "x" else "x"
        forged_signature = first + signature[1:]
        for token in [f"{forged_payload}.{signature}", f"{payload}.{forged_signature}", "garbage"]:
            response = await client.get(f"/e/c/{token}")
            assert response.status_code == 404, token
            assert "location" not in response.headers


async def test_one_click_unsubscribe(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    await configure(client, staff, "postmark", fake.config("postmark"))
    async with unit_of_work(runtime) as uow:
        await queue_email(
            uow,
            kind="newsletter",
            to=TO,
            subject="Spring opening hours",
            text="We open at nine.",
            html="<p>We open at nine.</p>",
            workspace_id=staff.workspace_id,
            category="bulk",
        )
    await run_jobs(runtime)
    [request] = fake.received("postmark")
    sent_headers = {header["Name"]: header["Value"] for header in request.json()["Headers"]}
    assert sent_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = sent_headers["List-Unsubscribe"].strip("<>")
    path = httpx.URL(url).path

    page = await client.get(path)
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert await suppressed(runtime, staff) == []

    done = await client.post(path, content=b"List-Unsubscribe=One-Click")
    assert done.status_code == 200
    assert await suppressed(runtime, staff) == [(TO, "unsubscribe")]
    async with runtime.sessionmaker() as session:
        types = list(await session.scalars(sa.select(EmailEvent.type)))
    assert "unsubscribed" in types


async def test_transactional_mail_has_no_unsubscribe(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    await configure(client, staff, "postmark", fake.config("postmark"))
    message = await send_one(runtime, staff)
    assert "List-Unsubscribe" not in message.headers
