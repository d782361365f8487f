"""The email service writes one message row and one send job per email."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from conftest import make_settings, run_jobs
from frontdesk.app import create_app
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email import service
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Workspace


async def make_workspace(runtime: Runtime, name: str = "Atelier Nord") -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        workspace = Workspace(name=name, created_at=now, updated_at=now, settings={})
        uow.session.add(workspace)
        await uow.session.flush()
        return workspace.id


async def jobs_for(runtime: Runtime, email_id: uuid.UUID) -> list[Job]:
    async with runtime.sessionmaker() as session:
        jobs = (await session.scalars(sa.select(Job).where(Job.name == "email.send"))).all()
    return [job for job in jobs if job.payload == {"email_id": str(email_id)}]


async def test_verification_row_and_job(runtime: Runtime) -> None:
    async with unit_of_work(runtime) as uow:
        message = await service.send_verification_email(
            uow, to="ada@example.com", full_name="Ada <Lovelace>", token="tok/en+1"
        )
    assert message.kind == "verification"
    assert message.workspace_id is None
    assert message.to_address == "ada@example.com"
    assert message.status == "queued"
    assert "http://frontdesk.test/verify-email?token=tok%2Fen%2B1" in message.text_body
    assert "http://frontdesk.test/verify-email?token=tok%2Fen%2B1" in message.html_body
    assert "Ada &lt;Lovelace&gt;" in message.html_body
    assert "Ada <Lovelace>" in message.text_body
    assert message.message_id == f"<{message.id}@localhost>"
    assert message.headers["Message-ID"] == message.message_id
    assert message.headers["Auto-Submitted"] == "auto-generated"
    jobs = await jobs_for(runtime, message.id)
    assert len(jobs) == 1
    assert jobs[0].status == "pending"
    assert jobs[0].workspace_id is None


async def last_message(runtime: Runtime) -> EmailMessage:
    async with runtime.sessionmaker() as session:
        message = await session.scalar(
            sa.select(EmailMessage).order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
        )
    assert message is not None
    return message


async def make_enquiry(runtime: Runtime, workspace_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        enquiry = Enquiry(
            workspace_id=workspace_id,
            source="form",
            status="new",
            answers={},
            consent={},
            source_details={},
            search_text="",
            created_at=now,
            updated_at=now,
        )
        uow.session.add(enquiry)
        await uow.session.flush()
        return enquiry.id


async def acknowledge(
    runtime: Runtime,
    workspace_id: uuid.UUID,
    *,
    to: str = "client@example.org",
    language: str = "en",
    business_name: str = "Atelier Nord",
    contact_name: str | None = "Camille",
    reply_to: str | None = "hello@atelier.example",
) -> bool:
    async with unit_of_work(runtime) as uow:
        return await service.send_enquiry_acknowledgement(
            uow,
            workspace_id=workspace_id,
            enquiry_id=await make_enquiry_in(uow, workspace_id),
            to=to,
            contact_name=contact_name,
            business_name=business_name,
            reply_to=reply_to,
            form_name="Contact <form>",
            language=language,
        )


async def make_enquiry_in(uow: Any, workspace_id: uuid.UUID) -> uuid.UUID:
    now = uow.now()
    enquiry = Enquiry(
        workspace_id=workspace_id,
        source="form",
        status="new",
        answers={},
        consent={},
        source_details={},
        search_text="",
        created_at=now,
        updated_at=now,
    )
    uow.session.add(enquiry)
    await uow.session.flush()
    return enquiry.id


async def test_password_reset_row(runtime: Runtime) -> None:
    async with unit_of_work(runtime) as uow:
        message = await service.send_password_reset_email(
            uow, to="ada@example.com", full_name="Ada", token="reset-token"
        )

    assert message.kind == "password_reset"
    assert message.workspace_id is None
    assert "http://frontdesk.test/reset-password?token=reset-token" in message.text_body
    assert "1 hour" in message.text_body
    assert message.subject == "Reset your Frontdesk password"
    assert len(await jobs_for(runtime, message.id)) == 1


async def test_invitation_row(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)
    async with unit_of_work(runtime) as uow:
        message = await service.send_invitation_email(
            uow,
            to="new@example.com",
            workspace_id=workspace_id,
            workspace_name="Atelier <Nord>",
            inviter_name="Ada\r\nBcc: x@y.example",
            role="agent",
            token="invite-token",
        )

    assert message.kind == "invitation"
    assert message.workspace_id == workspace_id
    assert "http://frontdesk.test/accept-invitation?token=invite-token" in message.html_body
    assert "Atelier &lt;Nord&gt;" in message.html_body
    assert message.subject == "Ada Bcc: x@y.example invited you to Atelier <Nord> on Frontdesk"
    # A person sends an invitation, so it is not marked as automatic.
    assert "Auto-Submitted" not in message.headers
    jobs = await jobs_for(runtime, message.id)
    assert len(jobs) == 1
    assert jobs[0].workspace_id == workspace_id


async def test_acknowledgement_row(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)

    assert await acknowledge(runtime, workspace_id) is True

    message = await last_message(runtime)
    assert message.kind == "enquiry_acknowledgement"
    assert message.workspace_id == workspace_id
    assert message.enquiry_id is not None
    assert message.reply_to == "hello@atelier.example"
    assert message.headers["Reply-To"] == "hello@atelier.example"
    assert message.subject == "We received your enquiry \u2013 Atelier Nord"
    assert "Hello Camille," in message.text_body
    assert "Contact <form>" in message.text_body
    assert "Contact &lt;form&gt;" in message.html_body
    assert "reply to this email" in message.text_body
    jobs = await jobs_for(runtime, message.id)
    assert len(jobs) == 1
    assert jobs[0].workspace_id == workspace_id


async def test_acknowledgement_without_reply_to(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)

    await acknowledge(runtime, workspace_id, reply_to=None, contact_name=None)

    message = await last_message(runtime)
    assert message.reply_to is None
    assert "Reply-To" not in message.headers
    assert message.text_body.startswith("Hello,\n")
    assert "reply to this email" not in message.text_body


async def test_acknowledgement_languages(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)
    expected = {
        "en": "We received your enquiry",
        "fr": "Nous avons bien reçu votre demande",
        "de": "Wir haben Ihre Anfrage erhalten",
        "es": "Hemos recibido su consulta",
        "nl": "We hebben uw aanvraag ontvangen",
        "pt-BR": "Recebemos o seu pedido",
        "it": "Abbiamo ricevuto la sua richiesta",
        "xx": "We received your enquiry",
    }

    for index, (language, start) in enumerate(expected.items()):
        await acknowledge(runtime, workspace_id, to=f"c{index}@example.org", language=language)
        message = await last_message(runtime)
        assert message.subject.startswith(start), language
        assert message.html_body.startswith("<!DOCTYPE html>")


async def test_acknowledgement_daily_limit(runtime: Runtime, clock: FrozenClock) -> None:
    workspace_id = await make_workspace(runtime)
    other_workspace = await make_workspace(runtime, "Other")

    results = [await acknowledge(runtime, workspace_id) for _ in range(3)]
    fourth = await acknowledge(runtime, workspace_id, to="CLIENT@Example.org")
    elsewhere = await acknowledge(runtime, other_workspace)
    someone_else = await acknowledge(runtime, workspace_id, to="other@example.org")

    assert results == [True, True, True]
    assert fourth is False
    assert elsewhere is True
    assert someone_else is True
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.workspace_id == workspace_id)
        )
    assert count == 4

    clock.advance(hours=23)
    assert await acknowledge(runtime, workspace_id) is False
    clock.advance(hours=1, seconds=1)
    assert await acknowledge(runtime, workspace_id) is True


async def test_staff_emails_escape_answers(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)
    async with unit_of_work(runtime) as uow:
        enquiry_id = await make_enquiry_in(uow, workspace_id)
        enquiry = {
            "id": str(enquiry_id),
            "subject": "Quote\r\nBcc: x@y.example",
            "answers": {"message": "<script>alert(1)</script>", "budget": 500, "ok": True},
            "contact": {"name": "Camille <c>", "email": "c@example.org", "phone": None},
        }
        created = await service.send_new_enquiry_email(
            uow, workspace_id=workspace_id, enquiry=enquiry, to="a@example.com", recipient_name="A"
        )
        assigned = await service.send_enquiry_assigned_email(
            uow, workspace_id=workspace_id, enquiry=enquiry, to="b@example.com", recipient_name="B"
        )

    assert created.kind == "new_enquiry"
    assert assigned.kind == "enquiry_assigned"
    for message in (created, assigned):
        assert message.enquiry_id == enquiry_id
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html_body
        assert "<script>" not in message.html_body
        assert "message: <script>alert(1)</script>" in message.text_body
        assert "budget: 500" in message.text_body
        assert "ok: yes" in message.text_body
        assert str(enquiry_id) in message.text_body
        assert str(enquiry_id) in message.html_body
        assert "Atelier Nord" in message.text_body
        assert "\n" not in message.subject
        assert "\r" not in message.subject
    assert created.subject == "New enquiry from Camille <c> in Atelier Nord"
    assert assigned.subject == "Enquiry from Camille <c> was assigned to you"
    assert len(await jobs_for(runtime, created.id)) == 1
    assert len(await jobs_for(runtime, assigned.id)) == 1


async def test_outbox_job_marks_sent(runtime: Runtime, clock: FrozenClock) -> None:
    async with unit_of_work(runtime) as uow:
        message = await service.send_verification_email(
            uow, to="ada@example.com", full_name="Ada", token="abc"
        )

    assert await run_jobs(runtime) == 1

    async with runtime.sessionmaker() as session:
        stored = await session.get(EmailMessage, message.id)
    assert stored is not None
    assert stored.status == "sent"
    assert stored.transport == "outbox"
    assert stored.attempts == 1
    assert stored.sent_at == clock.now()
    jobs = await jobs_for(runtime, message.id)
    assert jobs[0].status == "succeeded"


async def test_development_outbox_logs_link(runtime: Runtime) -> None:
    with structlog.testing.capture_logs() as logs:
        async with unit_of_work(runtime) as uow:
            message = await service.send_verification_email(
                uow, to="ada@example.com", full_name="Ada", token="dev-token"
            )

    links = [entry for entry in logs if entry["event"] == "email.outbox_link"]
    assert len(links) == 1
    assert links[0]["link"] == "http://frontdesk.test/verify-email?token=dev-token"
    assert links[0]["email_id"] == str(message.id)
    assert links[0]["log_level"] == "info"
    assert "ada@example.com" not in repr(logs)


async def test_acknowledgement_logs_no_address(runtime: Runtime) -> None:
    workspace_id = await make_workspace(runtime)

    with structlog.testing.capture_logs() as logs:
        await acknowledge(runtime, workspace_id)
        await run_jobs(runtime)

    assert "client@example.org" not in repr(logs)
    assert "email.sent" in [entry["event"] for entry in logs]


def test_message_id_domain() -> None:
    settings = make_settings("sqlite+aiosqlite://", Path("unused"))
    custom = make_settings(
        "sqlite+aiosqlite://", Path("unused"), email_from="Studio <hello@mail.studio.example>"
    )
    bare = make_settings(
        "sqlite+aiosqlite://",
        Path("unused"),
        email_from="frontdesk",
        public_url="https://fd.example",
    )

    assert service.message_id_domain(settings) == "localhost"
    assert service.message_id_domain(custom) == "mail.studio.example"
    assert service.message_id_domain(bare) == "fd.example"


def test_production_requires_smtp(tmp_path: Path) -> None:
    production = make_settings("sqlite+aiosqlite://", tmp_path, env="production")
    with_smtp = make_settings(
        "sqlite+aiosqlite://", tmp_path, env="production", smtp_host="127.0.0.1"
    )
    development = make_settings("sqlite+aiosqlite://", tmp_path)

    with pytest.raises(service.EmailSettingsError, match="FRONTDESK_SMTP_HOST"):
        service.check_email_settings(production)
    with pytest.raises(service.EmailSettingsError):
        create_app(production, run_worker=False)
    service.check_email_settings(with_smtp)
    service.check_email_settings(development)
