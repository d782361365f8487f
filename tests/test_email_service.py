"""The email service writes one message row and one send job per email."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email import service
from frontdesk.email.models import EmailMessage
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
