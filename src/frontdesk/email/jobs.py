"""The ``email.send`` job: deliver one queued message over SMTP or into the local outbox.

The job runs in three steps so that no database transaction stays open while the SMTP server
is talking (on SQLite an open write transaction blocks every other writer):

1. a read-only transaction reads the message, checks the suppression list and reads the
   workspace's provider settings and the attachments;
2. the message goes to the workspace's provider, or else to the instance's SMTP server, with
   no transaction open;
3. the worker's transaction marks the message sent and counts the attempt, together with
   the job; a failure is recorded and counted in a transaction of its own.

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

from frontdesk.config import Settings
from frontdesk.core.jobs import JobContext, PermanentFailure, RetryLater, batch_job_handler
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.email.mime import Attachment, OutgoingEmail
from frontdesk.email.mime import build_mime as build_full_mime
from frontdesk.email.models import EmailMessage
from frontdesk.email.provider_settings import WorkspaceProvider, find_provider
from frontdesk.email.service import SEND_JOB
from frontdesk.email.suppressions import find_suppression
from frontdesk.email.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    build_mime,
    send_smtp,
)
from frontdesk.runtime import Runtime
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.service import blob_path

log = structlog.get_logger()

# Messages that one task sends in a row, sharing its transactions.
SEND_BATCH = 20


# Headers that OutgoingEmail carries in its own fields, not in ``headers``.
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "subject", "message-id"})


@dataclass(frozen=True)
class _Attempt:
    email_id: uuid.UUID
    kind: str
    # The message's attempt count before this attempt.
    attempts: int
    mime: MimeMessage | None
    build_error: PermanentDeliveryError | None
    # The workspace's own provider and the message for it; None sends as the instance does.
    provider: WorkspaceProvider | None
    outgoing: OutgoingEmail | None
    # The job's attempt count and limit; None when the job row was not found.
    job_attempts: int | None
    job_max_attempts: int | None


async def _start_attempts(rt: Runtime, jobs: list[JobContext]) -> list[_Attempt | None]:
    """Read the messages of ``jobs`` and build what to send, in one read-only transaction.

    On SQLite the read engine takes no write lock, so concurrent batches do not wait for
    each other here. None in the result means there is nothing to send for that job.
    """
    async with rt.read_sessionmaker() as session:
        uow = UnitOfWork(rt, session)
        ids = [uuid.UUID(job.payload["email_id"]) for job in jobs]
        rows = await session.scalars(sa.select(EmailMessage).where(EmailMessage.id.in_(ids)))
        messages = {message.id: message for message in rows}
        providers: dict[uuid.UUID, WorkspaceProvider | None] = {}
        attempts: list[_Attempt | None] = []
        for job, email_id in zip(jobs, ids, strict=True):
            message = messages.get(email_id)
            if message is None:
                log.warning("email.missing", email_id=str(email_id))
                attempts.append(None)
                continue
            attempts.append(await _start_attempt(uow, message, job, providers))
        return attempts


async def _start_attempt(
    uow: UnitOfWork,
    message: EmailMessage,
    job: JobContext,
    providers: dict[uuid.UUID, WorkspaceProvider | None],
) -> _Attempt | None:
    """Build what to send for one message; None when it is sent already or suppressed."""
    email_id = message.id
    if message.status == "sent":
        return None
    if message.workspace_id is not None:
        suppression = await find_suppression(
            uow, workspace_id=message.workspace_id, address=message.to_address
        )
        if suppression is not None:
            await _mark_suppressed(uow.rt, email_id, suppression.reason)
            log.info(
                "email.suppressed",
                email_id=str(email_id),
                kind=message.kind,
                reason=suppression.reason,
            )
            return None
    provider: WorkspaceProvider | None = None
    if message.workspace_id is not None:
        if message.workspace_id not in providers:
            providers[message.workspace_id] = await find_provider(uow, message.workspace_id)
        provider = providers[message.workspace_id]
    mime: MimeMessage | None = None
    outgoing: OutgoingEmail | None = None
    build_error: PermanentDeliveryError | None = None
    try:
        if provider is None and (not message.attachments or uow.settings.uses_outbox):
            # The outbox sends nothing, so its attachments are not read.
            mime = build_mime(message)
        else:
            files = await load_attachments(uow, message)
            outgoing = outgoing_email(message, files)
            if provider is None:
                mime = build_full_mime(outgoing)
                outgoing = None
    except PermanentDeliveryError as exc:
        build_error = exc
    return _Attempt(
        email_id=email_id,
        kind=message.kind,
        attempts=message.attempts,
        mime=mime,
        build_error=build_error,
        provider=provider,
        outgoing=outgoing,
        job_attempts=job.attempts,
        job_max_attempts=job.max_attempts,
    )


async def _mark_suppressed(rt: Runtime, email_id: uuid.UUID, reason: str) -> None:
    async with unit_of_work(rt) as uow:
        await uow.session.execute(
            sa.update(EmailMessage)
            .where(EmailMessage.id == email_id)
            .values(status="suppressed", suppressed_reason=reason)
        )


async def _record_failure(rt: Runtime, email_id: uuid.UUID, reason: str, *, final: bool) -> None:
    """Store the failure on the message in its own transaction, which survives the job's rollback."""
    async with unit_of_work(rt) as uow:
        values: dict[str, Any] = {
            "last_error": reason[:2000],
            "attempts": EmailMessage.attempts + 1,
            # A failed message sent again (a dead job retried by an admin) is queued again.
            "status": "failed" if final else "queued",
        }
        await uow.session.execute(
            sa.update(EmailMessage).where(EmailMessage.id == email_id).values(**values)
        )


async def _failure(rt: Runtime, attempt: _Attempt, error: DeliveryError) -> Exception:
    """Record ``error`` on the message; return what makes the worker retry or give up."""
    permanent = isinstance(error, PermanentDeliveryError)
    exhausted = (
        attempt.job_attempts is not None
        and attempt.job_max_attempts is not None
        and attempt.job_attempts >= attempt.job_max_attempts
    )
    await _record_failure(rt, attempt.email_id, error.reason, final=permanent or exhausted)
    log.warning(
        "email.failed",
        email_id=str(attempt.email_id),
        kind=attempt.kind,
        permanent=permanent,
        error=str(error),
    )
    if permanent:
        return PermanentFailure(str(error))
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return RetryLater(str(error), delay_seconds=retry_after)
    return error


async def load_attachments(uow: UnitOfWork, message: EmailMessage) -> list[Attachment]:
    """Read the bytes of the message's attachments from storage.

    Raises PermanentDeliveryError when a file was deleted after the message was queued.
    """
    files: list[Attachment] = []
    for item in message.attachments:
        path = blob_path(message.workspace_id, uuid.UUID(item["object_id"]))  # type: ignore[arg-type]
        try:
            data = b"".join([chunk async for chunk in uow.rt.storage.read(path)])
        except BlobNotFound as exc:
            raise PermanentDeliveryError(
                f"the attachment {item['filename']!r} was deleted before the message was sent"
            ) from exc
        files.append(
            Attachment(
                filename=item["filename"],
                content_type=item["content_type"],
                data=data,
                content_id=item.get("content_id"),
            )
        )
    return files


def outgoing_email(
    message: EmailMessage, attachments: list[Attachment] | None = None
) -> OutgoingEmail:
    """Build the provider-neutral message from the stored one, with its fixed headers."""
    headers = {
        name: str(value)
        for name, value in message.headers.items()
        if name.lower() not in _ADDRESS_HEADERS and value
    }
    return OutgoingEmail(
        from_address=message.from_address,
        to=[message.to_address],
        reply_to=message.reply_to,
        subject=message.subject,
        text=message.text_body,
        html=message.html_body,
        message_id=message.message_id,
        idempotency_key=f"email-{message.id}",
        headers=headers,
        attachments=attachments or [],
    )


async def _send_with_provider(provider: WorkspaceProvider, outgoing: OutgoingEmail) -> str | None:
    adapter = provider.build()
    try:
        result = await adapter.send(outgoing)
    finally:
        await adapter.close()
    return result.provider_message_id


async def _deliver(settings: Settings, attempt: _Attempt) -> tuple[str, str | None]:
    """Send one message; return the transport and the provider's message id."""
    if attempt.build_error is not None:
        raise attempt.build_error
    if attempt.provider is not None:
        assert attempt.outgoing is not None
        return attempt.provider.kind, await _send_with_provider(attempt.provider, attempt.outgoing)
    assert attempt.mime is not None
    if settings.uses_outbox:
        return "outbox", None
    await send_smtp(settings, attempt.mime)
    return "smtp", None


@batch_job_handler(SEND_JOB, max_batch=SEND_BATCH)
async def send_emails(uow: UnitOfWork, jobs: list[JobContext]) -> dict[uuid.UUID, Exception]:
    """Deliver the messages of ``jobs``, one after another; messages already sent are skipped.

    The messages that went out are marked sent in the worker's transaction, together with
    their jobs. A failed one is recorded on its message and returned for the worker.
    """
    attempts = await _start_attempts(uow.rt, jobs)
    failures: dict[uuid.UUID, Exception] = {}
    sent: list[dict[str, Any]] = []
    for job, attempt in zip(jobs, attempts, strict=True):
        if attempt is None:
            continue
        try:
            transport, provider_message_id = await _deliver(uow.settings, attempt)
        except (PermanentDeliveryError, TemporaryDeliveryError) as exc:
            failures[job.id] = await _failure(uow.rt, attempt, exc)
            continue
        sent.append(
            {
                "id": attempt.email_id,
                "status": "sent",
                "attempts": attempt.attempts + 1,
                "transport": transport,
                "provider": attempt.provider.kind if attempt.provider else None,
                "provider_message_id": provider_message_id,
                "sent_at": uow.now(),
                "last_error": None,
            }
        )
        log.info(
            "email.sent", email_id=str(attempt.email_id), kind=attempt.kind, transport=transport
        )
    if sent:
        # One UPDATE by primary key for the whole batch.
        await uow.session.execute(sa.update(EmailMessage), sent)
    return failures
