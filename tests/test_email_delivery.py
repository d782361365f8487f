"""The email.send job against a real SMTP server: headers, retries, permanent failures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from conftest import run_jobs
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email import service
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Workspace
from smtp_server import SmtpServer

# The alias marks the fixture as used; pytest finds it by name in this module.
from smtp_server import smtp_server as smtp_server


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, Any]:
    return {**smtp_server.settings(), "email_from": "Frontdesk <noreply@mail.frontdesk.test>"}


async def make_workspace(runtime: Runtime, name: str = "Atelier Nord") -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        workspace = Workspace(name=name, created_at=now, updated_at=now, settings={})
        uow.session.add(workspace)
        await uow.session.flush()
        return workspace.id


async def queue_acknowledgement(
    runtime: Runtime, workspace_id: uuid.UUID, *, business_name: str = "Atelier Nord"
) -> EmailMessage:
    async with unit_of_work(runtime) as uow:
        queued = await service.send_enquiry_acknowledgement(
            uow,
            workspace_id=workspace_id,
            enquiry_id=None,  # type: ignore[arg-type]  # no enquiry row is needed here
            to="client@example.org",
            contact_name="Camille",
            business_name=business_name,
            reply_to="hello@atelier.example",
            form_name="Contact",
            language="fr",
        )
        assert queued is True
        message = await uow.session.scalar(
            sa.select(EmailMessage).order_by(EmailMessage.created_at.desc()).limit(1)
        )
        assert message is not None
        return message


async def load_message(runtime: Runtime, email_id: uuid.UUID) -> EmailMessage:
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, email_id)
        assert message is not None
        return message


async def send_job(runtime: Runtime, email_id: uuid.UUID) -> Job:
    async with runtime.sessionmaker() as session:
        jobs = (await session.scalars(sa.select(Job).where(Job.name == "email.send"))).all()
    matching = [job for job in jobs if job.payload == {"email_id": str(email_id)}]
    assert len(matching) == 1
    return matching[0]


async def test_acknowledgement_headers(
    runtime: Runtime, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)

    assert await run_jobs(runtime) == 1

    received = await smtp_server.wait_for(1)
    assert len(received) == 1
    assert received[0].mail_from == "noreply@mail.frontdesk.test"
    assert received[0].rcpt_tos == ["client@example.org"]
    parsed = received[0].parse()
    assert parsed["From"] == "Frontdesk <noreply@mail.frontdesk.test>"
    assert parsed["To"] == "client@example.org"
    assert parsed["Reply-To"] == "hello@atelier.example"
    assert parsed["Subject"] == "Nous avons bien reçu votre demande \u2013 Atelier Nord"
    assert parsed["Date"].datetime == queued.created_at.replace(microsecond=0)
    assert parsed["Message-ID"] == queued.message_id
    assert parsed["Message-ID"] == f"<{queued.id}@mail.frontdesk.test>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Bonjour Camille," in text.get_content()
    assert "Atelier Nord" in html.get_content()

    sent = await load_message(runtime, queued.id)
    assert sent.status == "sent"
    assert sent.transport == "smtp"
    assert sent.attempts == 1
    assert sent.sent_at == clock.now()
    assert (await send_job(runtime, queued.id)).status == "succeeded"


async def test_business_name_cannot_add_header(runtime: Runtime, smtp_server: SmtpServer) -> None:
    workspace_id = await make_workspace(runtime)
    await queue_acknowledgement(
        runtime, workspace_id, business_name="Acme\r\nBcc: x@y.example\nX-Injected: 1"
    )

    await run_jobs(runtime)

    received = await smtp_server.wait_for(1)
    parsed = received[0].parse()
    assert received[0].rcpt_tos == ["client@example.org"]
    assert "Bcc" not in parsed
    assert "X-Injected" not in parsed
    assert parsed["Subject"] == (
        "Nous avons bien reçu votre demande \u2013 Acme Bcc: x@y.example X-Injected: 1"
    )


async def test_outage_retries_then_sends_once(
    runtime: Runtime, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)
    smtp_server.stop()

    assert await run_jobs(runtime) == 1

    job = await send_job(runtime, queued.id)
    assert job.status == "pending"
    assert job.attempts == 1
    assert job.last_error is not None
    assert "SMTP failed" in job.last_error
    assert job.run_at > clock.now()
    message = await load_message(runtime, queued.id)
    assert message.status == "queued"
    assert message.attempts == 1
    assert message.last_error is not None
    # Not due until the backoff delay has passed.
    assert await run_jobs(runtime) == 0

    clock.advance(seconds=1)
    assert await run_jobs(runtime) == 1
    assert (await send_job(runtime, queued.id)).attempts == 2

    smtp_server.start()
    clock.advance(seconds=1)
    assert await run_jobs(runtime) == 1

    received = await smtp_server.wait_for(1)
    assert len(received) == 1
    assert received[0].parse()["Message-ID"] == queued.message_id
    message = await load_message(runtime, queued.id)
    assert message.status == "sent"
    assert message.attempts == 3
    assert message.last_error is None
    job = await send_job(runtime, queued.id)
    assert job.status == "succeeded"
    assert job.attempts == 3


async def test_redelivered_job_sends_nothing(runtime: Runtime, smtp_server: SmtpServer) -> None:
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)
    await run_jobs(runtime)
    # A second job for the same message, as after a worker lost its lease.
    async with unit_of_work(runtime) as uow:
        uow.enqueue("email.send", {"email_id": str(queued.id)})

    assert await run_jobs(runtime) == 1

    assert len(smtp_server.messages) == 1
    assert (await load_message(runtime, queued.id)).attempts == 1


async def test_rejected_recipient_is_dead(runtime: Runtime, smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 Mailbox unavailable"
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)

    assert await run_jobs(runtime) == 1

    job = await send_job(runtime, queued.id)
    assert job.status == "dead"
    assert job.attempts == 1
    message = await load_message(runtime, queued.id)
    assert message.status == "failed"
    assert message.last_error == "SMTP reply 550 5.1.1 Mailbox unavailable"
    assert smtp_server.messages == []


async def test_temporary_reply_retries(runtime: Runtime, smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "451 4.3.0 Try again later"
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)

    await run_jobs(runtime)

    job = await send_job(runtime, queued.id)
    assert job.status == "pending"
    message = await load_message(runtime, queued.id)
    assert message.status == "queued"
    assert message.last_error == "SMTP reply 451 4.3.0 Try again later"


async def test_last_attempt_marks_failed(runtime: Runtime, smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "451 4.3.0 Try again later"
    workspace_id = await make_workspace(runtime)
    queued = await queue_acknowledgement(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        await uow.session.execute(sa.update(Job).values(max_attempts=1))

    await run_jobs(runtime)

    assert (await send_job(runtime, queued.id)).status == "dead"
    message = await load_message(runtime, queued.id)
    assert message.status == "failed"
    assert message.last_error == "SMTP reply 451 4.3.0 Try again later"


async def test_invalid_recipient_is_dead(runtime: Runtime, smtp_server: SmtpServer) -> None:
    async with unit_of_work(runtime) as uow:
        queued = await service.queue_email(
            uow,
            kind="test",
            to="not an address",
            subject="Hello",
            text="Hello",
            html="<p>Hello</p>",
            workspace_id=None,
        )

    await run_jobs(runtime)

    assert (await send_job(runtime, queued.id)).status == "dead"
    message = await load_message(runtime, queued.id)
    assert message.status == "failed"
    assert message.last_error is not None
    assert message.last_error.startswith("invalid To address")
    assert smtp_server.messages == []


async def test_smtp_mode_logs_no_link(runtime: Runtime) -> None:
    with structlog.testing.capture_logs() as logs:
        async with unit_of_work(runtime) as uow:
            await service.send_password_reset_email(
                uow, to="ada@example.com", full_name="Ada", token="secret-token"
            )

    assert [entry["event"] for entry in logs] == ["email.queued"]
    assert "secret-token" not in repr(logs)


async def test_batch_fails_only_bad_message(runtime: Runtime, smtp_server: SmtpServer) -> None:
    workspace_id = await make_workspace(runtime)
    async with unit_of_work(runtime) as uow:
        queued = [
            await service.queue_email(
                uow,
                kind="notice",
                to=to,
                subject="Opening hours",
                text="We open at nine.",
                html="<p>We open at nine.</p>",
                workspace_id=workspace_id,
            )
            for to in ("first@example.org", "not an address", "third@example.org")
        ]

    # The three jobs run as one batch: one read, three sends, one transaction.
    assert await run_jobs(runtime) == 3

    received = await smtp_server.wait_for(2)
    assert sorted(message.rcpt_tos[0] for message in received) == [
        "first@example.org",
        "third@example.org",
    ]
    statuses = [(await load_message(runtime, message.id)).status for message in queued]
    assert statuses == ["sent", "failed", "sent"]
    jobs = [(await send_job(runtime, message.id)).status for message in queued]
    assert jobs == ["succeeded", "dead", "succeeded"]
    assert [(await load_message(runtime, message.id)).attempts for message in queued] == [1, 1, 1]
