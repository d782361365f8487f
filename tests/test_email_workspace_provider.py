"""A workspace's own email provider: settings API, encryption, delivery, suppression, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from email_provider_servers import FakeProviders, serve_fake_providers
from factories import Staff, member, owner
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage, EmailProviderSetting
from frontdesk.email.service import queue_email
from frontdesk.runtime import Runtime

FROM = "Studio Nine <hello@studio-nine.example>"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"email_providers_allow_private_networks": True}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with serve_fake_providers() as providers:
        yield providers


async def set_provider(
    client: httpx.AsyncClient, staff: Staff, kind: str, config: dict[str, Any], **extra: Any
) -> httpx.Response:
    body = {"kind": kind, "config": config, "from_address": FROM, **extra}
    return await client.put("/api/v1/email/provider", headers=staff.headers, json=body)


async def queue(runtime: Runtime, staff: Staff, to: str = "client@example.org") -> EmailMessage:
    async with unit_of_work(runtime) as uow:
        return await queue_email(
            uow,
            kind="enquiry_acknowledgement",
            to=to,
            subject="We received your enquiry",
            text="Thank you, we will answer soon.",
            html="<p>Thank you, we will answer soon.</p>",
            workspace_id=staff.workspace_id,
        )


async def stored_message(runtime: Runtime, email_id: Any) -> EmailMessage:
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, email_id)
        assert message is not None
        return message


async def test_settings_masked_and_encrypted(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    response = await set_provider(
        client, staff, "postmark", fake.config("postmark"), webhook_secret="hooks:s3cret"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "postmark"
    assert body["config"]["server_token"] == "********"
    assert body["from_address"] == FROM
    assert body["has_webhook_secret"] is True
    assert body["events_webhook_url"].startswith("http://frontdesk.test/webhooks/email/postmark/")

    async with runtime.sessionmaker() as session:
        row = await session.get(EmailProviderSetting, staff.workspace_id)
    assert row is not None
    assert fake.postmark_token not in row.config_encrypted
    assert "s3cret" not in (row.webhook_secret_encrypted or "")

    again = await client.get("/api/v1/email/provider", headers=staff.headers)
    assert again.json()["config"]["server_token"] == "********"


async def test_same_kind_keeps_secret(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    changed = await set_provider(
        client,
        staff,
        "postmark",
        {"server_token": "********", "api_base_url": fake.config("postmark")["api_base_url"]},
        track_opens=True,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["track_opens"] is True

    message = await queue(runtime, staff)
    await run_jobs(runtime)
    assert (await stored_message(runtime, message.id)).status == "sent"
    assert len(fake.received("postmark")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "carrier-pigeon", "config": {}, "from_address": FROM}, "kind"),
        ({"kind": "postmark", "config": {}, "from_address": FROM}, "config.server_token"),
        (
            {"kind": "postmark", "config": {"server_token": "x"}, "from_address": "not an address"},
            "from_address",
        ),
        (
            {"kind": "smtp", "config": {"host": "mail.example", "port": 0}, "from_address": FROM},
            "config.port",
        ),
        (
            {
                "kind": "postmark",
                "config": {"server_token": "x", "colour": 1},
                "from_address": FROM,
            },
            "config.colour",
        ),
        *(
            (
                {
                    "kind": "postmark",
                    "config": {"server_token": "x", "message_stream": stream},
                    "from_address": FROM,
                },
                "config.message_stream",
            )
            for stream in ("", "my stream", "s" * 101)
        ),
    ],
)
async def test_invalid_settings_rejected(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    staff = await owner(client)
    response = await client.put("/api/v1/email/provider", headers=staff.headers, json=body)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    async with runtime.sessionmaker() as session:
        assert await session.get(EmailProviderSetting, staff.workspace_id) is None


class TestPrivateHosts:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"email_providers_allow_private_networks": False}

    @pytest.mark.parametrize(
        ("kind", "config", "field"),
        [
            ("smtp", {"host": "127.0.0.1"}, "config.host"),
            ("smtp", {"host": "localhost"}, "config.host"),
            ("smtp", {"host": "10.1.2.3"}, "config.host"),
            # Written the ways that once slipped past the check.
            ("smtp", {"host": "[127.0.0.1]"}, "config.host"),
            ("smtp", {"host": "[::1]"}, "config.host"),
            ("smtp", {"host": "[::ffff:127.0.0.1]"}, "config.host"),
            ("smtp", {"host": "[fe80::1]"}, "config.host"),
            ("smtp", {"host": "127.0.0.1."}, "config.host"),
            ("smtp", {"host": "localhost."}, "config.host"),
            ("smtp", {"host": "ex ample.com"}, "config.host"),
            # IPv6 addresses that carry a loopback IPv4 address (NAT64, 6to4).
            ("smtp", {"host": "64:ff9b::127.0.0.1"}, "config.host"),
            ("smtp", {"host": "2002:7f00:1::"}, "config.host"),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "https://LOCALHOST./"},
                "config.api_base_url",
            ),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "https://\uff11\uff12\uff17.0.0.1/"},
                "config.api_base_url",
            ),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "https://[::1/"},
                "config.api_base_url",
            ),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "https://api.example:99999/"},
                "config.api_base_url",
            ),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "https://169.254.169.254"},
                "config.api_base_url",
            ),
            (
                "postmark",
                {"server_token": "x", "api_base_url": "http://api.example"},
                "config.api_base_url",
            ),
        ],
    )
    async def test_private_host_rejected(
        self, client: httpx.AsyncClient, kind: str, config: dict[str, Any], field: str
    ) -> None:
        staff = await owner(client)
        response = await set_provider(client, staff, kind, config)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


async def test_settings_need_admin(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    response = await client.get("/api/v1/email/provider", headers=agent.headers)
    assert response.status_code == 403
    test_send = await client.post(
        "/api/v1/email/provider/test", headers=agent.headers, json={"to": "me@example.org"}
    )
    assert test_send.status_code == 403


async def test_delivery_through_workspace_provider(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    message = await queue(runtime, staff)
    assert message.from_address == FROM
    assert message.message_id.endswith("@studio-nine.example>")

    await run_jobs(runtime)

    [request] = fake.received("postmark")
    sent = request.json()
    assert sent["To"] == "client@example.org"
    assert "hello@studio-nine.example" in sent["From"]
    assert sent["Subject"] == "We received your enquiry"
    headers = {header["Name"]: header["Value"] for header in sent["Headers"]}
    assert headers["Message-ID"] == message.message_id
    assert headers["Auto-Submitted"] == "auto-generated"
    stored = await stored_message(runtime, message.id)
    assert stored.status == "sent"
    assert stored.transport == "postmark"
    assert stored.provider == "postmark"
    assert stored.provider_message_id == fake.accepted_ids[0]


async def test_other_workspace_uses_instance_mail(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    other = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    message = await queue(runtime, other)
    await run_jobs(runtime)
    stored = await stored_message(runtime, message.id)
    assert stored.transport == "outbox"
    assert fake.received("postmark") == []


async def test_suppressed_recipient_not_sent(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    added = await client.post(
        "/api/v1/email/suppressions",
        headers=staff.headers,
        json={"address": "Client@Example.org", "detail": "asked by phone"},
    )
    assert added.status_code == 201, added.text
    message = await queue(runtime, staff)
    await run_jobs(runtime)

    stored = await stored_message(runtime, message.id)
    assert stored.status == "suppressed"
    assert stored.suppressed_reason == "manual"
    assert fake.received("postmark") == []

    lifted = await client.delete(
        f"/api/v1/email/suppressions/{added.json()['id']}", headers=staff.headers
    )
    assert lifted.status_code == 204
    again = await queue(runtime, staff)
    await run_jobs(runtime)
    assert (await stored_message(runtime, again.id)).status == "sent"


async def test_rate_limit_retries_after(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    fake.fail_next(
        "postmark",
        429,
        {"ErrorCode": 429, "Message": "Rate limit exceeded"},
        {"Retry-After": "120"},
    )
    message = await queue(runtime, staff)
    started = runtime.clock.now()
    await run_jobs(runtime)

    stored = await stored_message(runtime, message.id)
    assert stored.status == "queued"
    assert stored.last_error is not None
    assert "Rate limit exceeded" in stored.last_error
    async with runtime.sessionmaker() as session:
        job = (
            await session.scalars(
                sa.select(Job).where(
                    Job.name == "email.send",
                    Job.payload["email_id"].as_string() == str(message.id),
                )
            )
        ).one()
    assert job.status == "pending"
    assert (job.run_at - started).total_seconds() >= 120


async def test_rejection_fails_at_once(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    fake.fail_next(
        "postmark", 422, {"ErrorCode": 406, "Message": "You tried to send to inactive recipients."}
    )
    message = await queue(runtime, staff)
    await run_jobs(runtime)
    stored = await stored_message(runtime, message.id)
    assert stored.status == "failed"
    assert "inactive recipients" in (stored.last_error or "")


async def test_test_send_reports_provider_error(
    client: httpx.AsyncClient, fake: FakeProviders
) -> None:
    staff = await owner(client)
    config = fake.config("postmark", server_token="wrong-token")
    assert (await set_provider(client, staff, "postmark", config)).status_code == 200
    response = await client.post(
        "/api/v1/email/provider/test", headers=staff.headers, json={"to": "me@example.org"}
    )
    assert response.status_code == 502
    assert response.json()["code"] == "provider_error"
    assert "valid Server token" in response.json()["detail"]


async def test_test_send_succeeds(client: httpx.AsyncClient, fake: FakeProviders) -> None:
    staff = await owner(client)
    assert (await set_provider(client, staff, "resend", fake.config("resend"))).status_code == 200
    response = await client.post(
        "/api/v1/email/provider/test", headers=staff.headers, json={"to": "me@example.org"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "sent"
    [request] = fake.received("resend")
    assert request.json()["to"] == ["me@example.org"]


async def test_delete_returns_to_instance_mail(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    deleted = await client.delete("/api/v1/email/provider", headers=staff.headers)
    assert deleted.status_code == 204
    instance = await client.get("/api/v1/email/provider", headers=staff.headers)
    assert instance.status_code == 200
    assert instance.json()["kind"] == "instance"
    assert instance.json()["events_webhook_url"] is None
    message = await queue(runtime, staff)
    await run_jobs(runtime)
    assert (await stored_message(runtime, message.id)).transport == "outbox"


async def test_test_send_checks_input(client: httpx.AsyncClient, fake: FakeProviders) -> None:
    staff = await owner(client)
    missing = await client.post(
        "/api/v1/email/provider/test", headers=staff.headers, json={"to": "me@example.org"}
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "provider_not_set"
    assert (await set_provider(client, staff, "resend", fake.config("resend"))).status_code == 200
    invalid = await client.post(
        "/api/v1/email/provider/test", headers=staff.headers, json={"to": "nobody"}
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "to"
    assert fake.received("resend") == []


async def test_mask_needs_stored_value(client: httpx.AsyncClient, fake: FakeProviders) -> None:
    staff = await owner(client)
    assert (
        await set_provider(client, staff, "postmark", fake.config("postmark"))
    ).status_code == 200
    switched = await set_provider(
        client, staff, "smtp", {"host": "127.0.0.1", "username": "u", "password": "********"}
    )
    assert switched.status_code == 422
    assert switched.json()["errors"][0]["field"] == "config.password"


async def test_postmark_secret_format(client: httpx.AsyncClient, fake: FakeProviders) -> None:
    staff = await owner(client)
    response = await set_provider(
        client, staff, "postmark", fake.config("postmark"), webhook_secret="no-colon"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "webhook_secret"


async def test_smtp_has_no_webhooks(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await set_provider(client, staff, "smtp", {"host": "127.0.0.1"})
    assert response.status_code == 200, response.text
    assert response.json()["events_webhook_url"] is None
    assert response.json()["inbound_webhook_url"] is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"host": "smtp.example.org", "port": "587"}, "config.port"),
        ({"host": "smtp.example.org", "verify_certificate": "yes"}, "config.verify_certificate"),
        ({"host": "smtp.example.org", "timeout_seconds": True}, "config.timeout_seconds"),
    ],
)
async def test_smtp_config_types_strict(
    client: httpx.AsyncClient, config: dict[str, Any], field: str
) -> None:
    staff = await owner(client)

    response = await set_provider(client, staff, "smtp", config)

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]
