"""Email fallback of the website chat, end to end through a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import owner
from frontdesk.conversations import service
from frontdesk.conversations.fallback import EMAIL_FALLBACK_JOB, send_email_fallback
from frontdesk.conversations.models import ConversationParticipant
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from smtp_server import ReceivedMessage, SmtpServer

# The alias marks the fixture as used; pytest finds it by name in this module.
from smtp_server import smtp_server as smtp_server

DELAY = 120


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, Any]:
    return {**smtp_server.settings(), "email_from": "Frontdesk <noreply@mail.frontdesk.test>"}


class ChatSetup:
    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    async def open(self, *, email: str | None = "cam@example.org") -> None:
        self.staff = await owner(self.client, workspace_name="Atelier Nord")
        settings = await self.client.get("/api/v1/chat/settings", headers=self.staff.headers)
        self.key = settings.json()["public_key"]
        body = {"name": "Cam"} | ({"email": email} if email else {})
        created = await self.client.post(f"/chat/{self.key}/visitors", json=body)
        assert created.status_code == 201, created.text
        self.visitor_id = created.json()["visitor"]["id"]
        self.headers = {"Authorization": f"Bearer {created.json()['visitor_token']}"}
        started = await self.client.post(f"/chat/{self.key}/conversations", headers=self.headers)
        self.conversation_id = started.json()["id"]

    async def visitor_writes(self, text: str) -> None:
        response = await self.client.post(
            f"/chat/{self.key}/conversations/{self.conversation_id}/messages",
            headers=self.headers,
            json={"body": text},
        )
        assert response.status_code == 201, response.text

    async def staff_writes(self, text: str, *, kind: str = "message") -> int:
        async with unit_of_work(self.runtime) as uow:
            conversation = await service.get_conversation(
                uow,
                workspace_id=self.staff.workspace_id,
                conversation_id=uuid.UUID(self.conversation_id),
            )
            author = service.Author(type="member", id=self.staff.user_id, name="Ana")
            message, _ = await service.post_message(
                uow, conversation, author=author, kind=kind, body=text
            )
            return message.seq

    async def visitor_reads(self, seq: int) -> None:
        response = await self.client.post(
            f"/chat/{self.key}/conversations/{self.conversation_id}/read",
            headers=self.headers,
            json={"seq": seq},
        )
        assert response.status_code == 200, response.text

    async def participant(self) -> ConversationParticipant:
        async with self.runtime.sessionmaker() as session:
            participant = await session.get(
                ConversationParticipant,
                (uuid.UUID(self.conversation_id), "visitor", self.visitor_id),
            )
            assert participant is not None
            return participant


@pytest.fixture
async def chat(client: httpx.AsyncClient, runtime: Runtime) -> ChatSetup:
    setup = ChatSetup(client, runtime)
    await setup.open()
    return setup


def replies(smtp_server: SmtpServer) -> list[ReceivedMessage]:
    """Return the messages sent to visitors, leaving out the owner's verification email."""
    return [m for m in smtp_server.messages if m.rcpt_tos[0].endswith("@example.org")]


async def wait_for_replies(smtp_server: SmtpServer, count: int) -> list[ReceivedMessage]:
    for _ in range(500):
        if len(replies(smtp_server)) >= count:
            return replies(smtp_server)
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} replies, got {len(replies(smtp_server))}")


def body_text(message: ReceivedMessage) -> str:
    plain = message.parse().get_body(preferencelist=("plain",))
    assert plain is not None
    return str(plain.get_content())


async def fallback_jobs(runtime: Runtime) -> list[Job]:
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(sa.select(Job).where(Job.name == EMAIL_FALLBACK_JOB)))


async def test_unread_reply_emailed_once(
    chat: ChatSetup, runtime: Runtime, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    await chat.visitor_writes("Do you do weddings?")
    await chat.staff_writes("Yes, we do! Which date?")

    await run_jobs(runtime)
    assert replies(smtp_server) == []

    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)

    received = await wait_for_replies(smtp_server, 1)
    assert len(received) == 1
    assert received[0].rcpt_tos == ["cam@example.org"]
    parsed = received[0].parse()
    assert parsed["Subject"] == "New reply from Atelier Nord"
    plain = parsed.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Ana wrote:" in text
    assert "Yes, we do! Which date?" in text
    assert "Do you do weddings?" not in text
    assert "reply in the chat on our website" in text
    html_part = parsed.get_body(preferencelist=("html",))
    assert html_part is not None
    assert "<p>Ana wrote:<br>\r\nYes, we do! Which date?</p>" in html_part.get_content()
    assert (await chat.participant()).last_emailed_seq == 2

    # A job that runs again finds the message emailed already.
    async with unit_of_work(runtime) as uow:
        uow.enqueue(EMAIL_FALLBACK_JOB, {"conversation_id": chat.conversation_id, "seq": 2})
    await run_jobs(runtime)
    await asyncio.sleep(0.2)
    assert len(replies(smtp_server)) == 1


async def test_read_in_time_sends_nothing(
    chat: ChatSetup, runtime: Runtime, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    seq = await chat.staff_writes("Hello!")
    await chat.visitor_reads(seq)

    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)

    await asyncio.sleep(0.2)
    assert replies(smtp_server) == []
    async with runtime.sessionmaker() as session:
        kinds = list(await session.scalars(sa.select(EmailMessage.kind)))
    assert "chat_reply" not in kinds
    assert [job.status for job in await fallback_jobs(runtime)] == ["succeeded"]
    assert (await chat.participant()).last_emailed_seq == 0


async def test_replies_batched_in_one_email(
    chat: ChatSetup, runtime: Runtime, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    await chat.staff_writes("First reply")
    clock.advance(seconds=30)
    await chat.staff_writes("Second reply")
    await chat.staff_writes("internal remark", kind="note")

    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)

    received = await wait_for_replies(smtp_server, 1)
    await asyncio.sleep(0.2)
    assert len(replies(smtp_server)) == 1
    text = body_text(received[0])
    assert text.index("First reply") < text.index("Second reply")
    assert "internal remark" not in text
    assert len(await fallback_jobs(runtime)) == 2

    # A later reply is emailed on its own, without the ones already sent.
    await chat.staff_writes("Third reply")
    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)
    received = await wait_for_replies(smtp_server, 2)
    later = body_text(received[1])
    assert "Third reply" in later
    assert "First reply" not in later


async def test_partly_read_emails_the_rest(
    chat: ChatSetup, runtime: Runtime, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    first = await chat.staff_writes("Seen in the chat")
    await chat.visitor_reads(first)
    await chat.staff_writes("Sent after the visitor left")

    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)

    received = await wait_for_replies(smtp_server, 1)
    text = body_text(received[0])
    assert "Sent after the visitor left" in text
    assert "Seen in the chat" not in text


async def test_concurrent_runs_email_once(
    chat: ChatSetup, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    seq = await chat.staff_writes("Are you there?")
    payload = {"conversation_id": chat.conversation_id, "seq": seq}

    async def run_once() -> None:
        async with unit_of_work(runtime) as uow:
            await send_email_fallback(uow, payload)

    await asyncio.gather(run_once(), run_once())

    async with runtime.sessionmaker() as session:
        emails = list(
            await session.scalars(sa.select(EmailMessage).where(EmailMessage.kind == "chat_reply"))
        )
    assert len(emails) == 1
    assert (await chat.participant()).last_emailed_seq == seq


async def test_no_email_no_job(client: httpx.AsyncClient, runtime: Runtime) -> None:
    setup = ChatSetup(client, runtime)
    await setup.open(email=None)

    await setup.staff_writes("Hello?")

    assert await fallback_jobs(runtime) == []


async def test_email_left_later_gets_replies(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    setup = ChatSetup(client, runtime)
    await setup.open(email=None)
    response = await client.patch(
        f"/chat/{setup.key}/visitor", headers=setup.headers, json={"email": "late@example.org"}
    )
    assert response.status_code == 200, response.text

    await setup.staff_writes("Thanks for leaving your email")
    clock.advance(seconds=DELAY + 1)
    await run_jobs(runtime)

    received = await wait_for_replies(smtp_server, 1)
    assert received[0].rcpt_tos == ["late@example.org"]
