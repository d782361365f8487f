"""A workspace's IMAP mailbox end to end: settings, polling into enquiries, duplicates."""

from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import Staff, member, owner
from frontdesk.core.uow import unit_of_work
from frontdesk.email.mailbox import poll
from frontdesk.email.models import EmailMailbox, InboundEmail
from frontdesk.runtime import Runtime
from imap_server import TestMailbox
from imap_server import imap_mailbox as imap_mailbox
from imap_server import imap_server as imap_server


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"email_providers_allow_private_networks": True}


def message(subject: str) -> bytes:
    mime = MimeMessage()
    mime["From"] = "Camille <camille@example.org>"
    mime["To"] = "hello@studio.example"
    mime["Subject"] = subject
    mime["Message-ID"] = make_msgid(domain="example.org")
    mime.set_content("Are you free in June?")
    return mime.as_bytes().replace(b"\n", b"\r\n")


def settings_body(mailbox: TestMailbox, **extra: Any) -> dict[str, Any]:
    settings = mailbox.settings()
    return {
        "settings": {
            "host": settings.host,
            "port": settings.port,
            "security": "none",
            "username": settings.username,
            "password": settings.password.get_secret_value(),
            "mailbox": settings.mailbox,
        },
        **extra,
    }


async def received(runtime: Runtime, staff: Staff) -> list[str]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(InboundEmail.subject)
            .where(InboundEmail.workspace_id == staff.workspace_id)
            .order_by(InboundEmail.created_at, InboundEmail.id)
        )
    return list(rows)


async def test_only_new_mail_by_default(
    client: httpx.AsyncClient, runtime: Runtime, imap_mailbox: TestMailbox
) -> None:
    staff = await owner(client)
    imap_mailbox.append(message("Old message"))
    response = await client.put(
        "/api/v1/email/mailbox", headers=staff.headers, json=settings_body(imap_mailbox)
    )
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["password"] == "********"
    imap_mailbox.append(message("New message"))

    polled = await client.post("/api/v1/email/mailbox/poll", headers=staff.headers)
    assert polled.status_code == 202
    await run_jobs(runtime)

    assert await received(runtime, staff) == ["New message"]
    async with runtime.sessionmaker() as session:
        stored = await session.get(EmailMailbox, staff.workspace_id)
    assert stored is not None
    assert imap_mailbox.settings().password.get_secret_value() not in stored.settings_encrypted


async def test_import_existing_and_no_duplicates(
    client: httpx.AsyncClient, runtime: Runtime, imap_mailbox: TestMailbox
) -> None:
    staff = await owner(client)
    imap_mailbox.append(message("First"))
    imap_mailbox.append(message("Second"))
    response = await client.put(
        "/api/v1/email/mailbox",
        headers=staff.headers,
        json=settings_body(imap_mailbox, import_existing=True),
    )
    assert response.status_code == 200, response.text

    async with unit_of_work(runtime) as uow:
        assert await poll(uow, staff.workspace_id) == 2
    # A crash before the position was stored: the same messages come again.
    async with unit_of_work(runtime) as uow:
        await uow.session.execute(
            sa.update(EmailMailbox)
            .where(EmailMailbox.workspace_id == staff.workspace_id)
            .values(last_uid=0)
        )
    async with unit_of_work(runtime) as uow:
        assert await poll(uow, staff.workspace_id) == 2

    assert await received(runtime, staff) == ["First", "Second"]
    enquiries = await client.get("/api/v1/enquiries", headers=staff.headers)
    assert len(enquiries.json()["items"]) == 2


async def test_wrong_password_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, imap_mailbox: TestMailbox
) -> None:
    staff = await owner(client)
    body = settings_body(imap_mailbox)
    body["settings"]["password"] = "wrong-password"
    response = await client.put("/api/v1/email/mailbox", headers=staff.headers, json=body)
    assert response.status_code == 502
    assert response.json()["code"] == "mailbox_unreachable"
    missing = await client.get("/api/v1/email/mailbox", headers=staff.headers)
    assert missing.status_code == 404


async def test_connection_test_counts(client: httpx.AsyncClient, imap_mailbox: TestMailbox) -> None:
    staff = await owner(client)
    imap_mailbox.append(message("One"))
    assert (
        await client.put(
            "/api/v1/email/mailbox", headers=staff.headers, json=settings_body(imap_mailbox)
        )
    ).status_code == 200
    response = await client.post("/api/v1/email/mailbox/test", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "messages": 1}


class TestPrivateHosts:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"email_providers_allow_private_networks": False}

    async def test_loopback_rejected(self, client: httpx.AsyncClient) -> None:
        staff = await owner(client)
        response = await client.put(
            "/api/v1/email/mailbox",
            headers=staff.headers,
            json={"settings": {"host": "127.0.0.1", "username": "u", "password": "p"}},
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "settings.host"


async def test_mailbox_needs_admin(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    for method, path in [
        ("GET", "/api/v1/email/mailbox"),
        ("PUT", "/api/v1/email/mailbox"),
        ("POST", "/api/v1/email/mailbox/test"),
        ("POST", "/api/v1/email/mailbox/poll"),
    ]:
        anonymous = await client.request(method, path, json={"settings": {}})
        as_agent = await client.request(method, path, headers=agent.headers, json={"settings": {}})
        assert anonymous.status_code == 401, path
        assert as_agent.status_code == 403, path


async def test_invalid_settings_named(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.put(
        "/api/v1/email/mailbox",
        headers=staff.headers,
        json={"settings": {"host": "imap.example.org", "username": "u", "security": "ssl"}},
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"settings.password", "settings.security"} <= fields
