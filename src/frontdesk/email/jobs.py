"""The ``email.send`` job: deliver one queued message over SMTP or into the local outbox.

The job runs in three steps so that no database transaction stays open while the SMTP server
is talking (on SQLite an open write transaction blocks every other writer):

1. a short transaction counts the attempt and reads the message;
2. the message goes to the SMTP server, with no transaction open;
3. the worker's transaction marks the message sent, together with the job.

A process that dies between steps 2 and 3 sends the message again on the next attempt, with
the same Message-ID, which lets receiving systems discard the duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.jobs import PermanentFailure, job_handler
from frontdesk.core.models import Job
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.email.service import SEND_JOB
from frontdesk.email.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    build_mime,
    send_smtp,
)
from frontdesk.runtime import Runtime

log = structlog.get_logger()


@dataclass(frozen=True)
class _Attempt:
    email_id: uuid.UUID
    kind: str
    mime: MimeMessage | None
    build_error: PermanentDeliveryError | None
    # The job's attempt count and limit; None when the job row was not found.
    job_attempts: int | None
    job_max_attempts: int | None


async def _start_attempt(rt: Runtime, email_id: uuid.UUID) -> _Attempt | None:
    """Count an attempt and build the MIME message; None when there is nothing to send."""
    async with unit_of_work(rt) as uow:
        message = await uow.session.get(EmailMessage, email_id)
        if message is None:
            log.warning("email.missing", email_id=str(email_id))
            return None
        if message.status == "sent":
            return None
        message.attempts += 1
        # A failed message sent again (a dead job retried by an admin) is queued again.
        message.status = "queued"
        job = (
            await uow.session.execute(
                sa.select(Job.attempts, Job.max_attempts).where(
                    Job.name == SEND_JOB,
                    Job.status == "running",
                    Job.payload["email_id"].as_string() == str(email_id),
                )
            )
        ).first()
        mime: MimeMessage | None = None
        build_error: PermanentDeliveryError | None = None
        try:
            mime = build_mime(message)
        except PermanentDeliveryError as exc:
            build_error = exc
        return _Attempt(
            email_id=email_id,
            kind=message.kind,
            mime=mime,
            build_error=build_error,
            job_attempts=job.attempts if job else None,
            job_max_attempts=job.max_attempts if job else None,
        )


async def _record_failure(rt: Runtime, email_id: uuid.UUID, reason: str, *, final: bool) -> None:
    """Store the failure on the message in its own transaction, which survives the job's rollback."""
    async with unit_of_work(rt) as uow:
        values: dict[str, Any] = {"last_error": reason[:2000]}
        if final:
            values["status"] = "failed"
        await uow.session.execute(
            sa.update(EmailMessage).where(EmailMessage.id == email_id).values(**values)
        )


async def _fail(uow: UnitOfWork, attempt: _Attempt, error: DeliveryError) -> None:
    """Record ``error`` on the message, then raise what makes the worker retry or give up."""
    permanent = isinstance(error, PermanentDeliveryError)
    exhausted = (
        attempt.job_attempts is not None
        and attempt.job_max_attempts is not None
        and attempt.job_attempts >= attempt.job_max_attempts
    )
    await _record_failure(uow.rt, attempt.email_id, error.reason, final=permanent or exhausted)
    log.warning(
        "email.failed",
        email_id=str(attempt.email_id),
        kind=attempt.kind,
        permanent=permanent,
        error=str(error),
    )
    if permanent:
        raise PermanentFailure(str(error)) from error
    raise error


@job_handler(SEND_JOB)
async def send_email(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Deliver the message ``payload["email_id"]``; a message already sent is skipped."""
    email_id = uuid.UUID(payload["email_id"])
    attempt = await _start_attempt(uow.rt, email_id)
    if attempt is None:
        return
    if attempt.build_error is not None:
        await _fail(uow, attempt, attempt.build_error)
    assert attempt.mime is not None

    settings = uow.settings
    transport = "outbox" if settings.uses_outbox else "smtp"
    if transport == "smtp":
        try:
            await send_smtp(settings, attempt.mime)
        except (PermanentDeliveryError, TemporaryDeliveryError) as exc:
            await _fail(uow, attempt, exc)

    message = await uow.session.get(EmailMessage, email_id)
    if message is None:
        return
    message.status = "sent"
    message.transport = transport
    message.sent_at = uow.now()
    message.last_error = None
    log.info("email.sent", email_id=str(email_id), kind=attempt.kind, transport=transport)
