"""A workspace's mailbox polled over IMAP: settings, the poll job and its schedule.

The ``email.mailbox.schedule`` periodic task queues one ``email.mailbox.poll`` job per
workspace with a mailbox. A poll job reads new messages after the stored position and
hands each to ``inbound_service.receive`` in its own transaction. The position is stored
after the poll, or after the last message handled when the connection drops. A message
handled twice (after a crash) is a duplicate by Message-ID and changes nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import ValidationError

from frontdesk.core.errors import FieldError, NotFound, ValidationFailed
from frontdesk.core.jobs import job_handler, periodic
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.email.imap import (
    ImapError,
    ImapSettings,
    ImapTemporaryError,
    MailboxState,
    check_connection,
    current_state,
    poll_mailbox,
)
from frontdesk.email.inbound import parse_message
from frontdesk.email.inbound_service import receive
from frontdesk.email.models import EmailMailbox
from frontdesk.email.provider_settings import MASK, ProviderError, host_is_private
from frontdesk.email.schemas import MailboxIn, MailboxOut

log = structlog.get_logger()

POLL_JOB = "email.mailbox.poll"
SCHEDULE_JOB = "email.mailbox.schedule"


def _associated_data(workspace_id: uuid.UUID) -> bytes:
    return f"email-mailbox:{workspace_id}".encode()


def decrypt_settings(uow: UnitOfWork, mailbox: EmailMailbox) -> ImapSettings:
    plaintext = uow.rt.cipher.decrypt_text(
        mailbox.settings_encrypted, associated_data=_associated_data(mailbox.workspace_id)
    )
    return ImapSettings.model_validate(json.loads(plaintext))


def view(uow: UnitOfWork, mailbox: EmailMailbox) -> MailboxOut:
    settings = decrypt_settings(uow, mailbox)
    shown = settings.model_dump(mode="json", exclude={"password"})
    return MailboxOut(
        settings={**shown, "password": MASK},
        uidvalidity=mailbox.uidvalidity,
        last_uid=mailbox.last_uid,
        last_polled_at=mailbox.last_polled_at,
        last_error=mailbox.last_error,
        updated_at=mailbox.updated_at,
    )


async def get_mailbox(uow: UnitOfWork, workspace_id: uuid.UUID) -> EmailMailbox:
    mailbox = await uow.session.get(EmailMailbox, workspace_id)
    if mailbox is None:
        raise NotFound(
            "This workspace polls no mailbox; set one with PUT /api/v1/email/mailbox.",
            code="mailbox_not_set",
        )
    return mailbox


async def _checked_settings(
    uow: UnitOfWork, workspace_id: uuid.UUID, raw: dict[str, Any]
) -> ImapSettings:
    values = dict(raw)
    existing = await uow.session.get(EmailMailbox, workspace_id)
    if existing is not None and values.get("password") in (None, MASK):
        values["password"] = decrypt_settings(uow, existing).password.get_secret_value()
    try:
        settings = ImapSettings.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed.many(
            [
                FieldError(
                    field="settings." + ".".join(str(part) for part in error["loc"]),
                    message=error["msg"],
                    code=str(error["type"]),
                )
                for error in exc.errors()
            ]
        ) from exc
    if not uow.settings.email_providers_allow_private_networks and await host_is_private(
        settings.host
    ):
        raise ValidationFailed(
            "settings.host",
            f"'{settings.host}' is a private or loopback address, which this instance does not "
            "allow; use the mail server's public host.",
            "private_host",
        )
    return settings


def _unreachable(exc: ImapError) -> ProviderError:
    return ProviderError(f"The mailbox could not be used: {exc}", code="mailbox_unreachable")


async def put_mailbox(uow: UnitOfWork, *, workspace_id: uuid.UUID, data: MailboxIn) -> EmailMailbox:
    """Check the settings by logging in, then store them and the starting position."""
    settings = await _checked_settings(uow, workspace_id, data.settings)
    try:
        state = (
            MailboxState(uidvalidity=None, last_uid=0)
            if data.import_existing
            else await current_state(settings)
        )
        if data.import_existing:
            await check_connection(settings)
    except ImapError as exc:
        raise _unreachable(exc) from exc
    now = uow.now()
    stored = {**settings.model_dump(mode="json"), "password": settings.password.get_secret_value()}
    encrypted = uow.rt.cipher.encrypt_text(
        json.dumps(stored), associated_data=_associated_data(workspace_id)
    )
    mailbox = await uow.session.get(EmailMailbox, workspace_id)
    if mailbox is None:
        mailbox = EmailMailbox(workspace_id=workspace_id, created_at=now)
        uow.session.add(mailbox)
    mailbox.settings_encrypted = encrypted
    mailbox.uidvalidity = state.uidvalidity
    mailbox.last_uid = state.last_uid
    mailbox.last_error = None
    mailbox.updated_at = now
    await uow.session.flush()
    log.info("email.mailbox_set", workspace_id=str(workspace_id), last_uid=state.last_uid)
    return mailbox


async def check_mailbox(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> int:
    settings = decrypt_settings(uow, await get_mailbox(uow, workspace_id))
    await uow.session.rollback()
    try:
        return await check_connection(settings)
    except ImapError as exc:
        raise _unreachable(exc) from exc


async def poll(uow: UnitOfWork, workspace_id: uuid.UUID) -> int:
    """Poll the workspace's mailbox once; return how many messages were handled."""
    mailbox = await uow.session.get(EmailMailbox, workspace_id)
    if mailbox is None:
        return 0
    settings = decrypt_settings(uow, mailbox)
    state = MailboxState(uidvalidity=mailbox.uidvalidity, last_uid=mailbox.last_uid)
    # Each message commits on its own; no transaction stays open while the server talks.
    await uow.session.rollback()
    handled = 0

    async def handle(uid: int, raw: bytes) -> None:
        nonlocal handled
        async with unit_of_work(uow.rt) as message_uow:
            await receive(
                message_uow,
                workspace_id=workspace_id,
                parsed=parse_message(raw),
                raw=raw,
                source="imap",
            )
        handled += 1

    error: str | None = None
    try:
        state = await poll_mailbox(settings, state, handle)
    except ImapTemporaryError as exc:
        state = exc.state or state
        error = str(exc)
    except ImapError as exc:
        error = str(exc)
    async with unit_of_work(uow.rt) as save:
        await save.session.execute(
            sa.update(EmailMailbox)
            .where(EmailMailbox.workspace_id == workspace_id)
            .values(
                uidvalidity=state.uidvalidity,
                last_uid=state.last_uid,
                last_polled_at=save.now(),
                last_error=error,
            )
        )
    if error:
        log.warning("email.mailbox_poll_failed", workspace_id=str(workspace_id), error=error)
    log.info("email.mailbox_polled", workspace_id=str(workspace_id), handled=handled)
    return handled


@job_handler(POLL_JOB)
async def poll_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await poll(uow, uuid.UUID(payload["workspace_id"]))


@periodic(SCHEDULE_JOB, every_seconds=120)
async def schedule_polls(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Queue a poll of every workspace's mailbox, each as its own job."""
    workspace_ids = await uow.session.scalars(sa.select(EmailMailbox.workspace_id))
    for workspace_id in workspace_ids:
        uow.enqueue(POLL_JOB, {"workspace_id": str(workspace_id)}, workspace_id=workspace_id)
