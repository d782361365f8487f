"""Queue outgoing email: each function writes an ``EmailMessage`` and enqueues ``email.send``.

The message row and its job are written in the caller's transaction, so an email exists if
and only if the change that caused it committed. The ``email.send`` job (``email/jobs.py``)
delivers it over SMTP or, without SMTP, leaves it in the local outbox.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
import structlog

from frontdesk.config import Environment, Settings
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import composer
from frontdesk.email.composer import RenderedEmail, single_line
from frontdesk.email.mime import parse_address
from frontdesk.email.models import EmailMessage, EmailProviderSetting
from frontdesk.email.template_service import render_replacement
from frontdesk.email.tracking import add_tracking, unsubscribe_url
from frontdesk.workspaces.models import Workspace

log = structlog.get_logger()

SEND_JOB = "email.send"
ACKNOWLEDGEMENT_KIND = "enquiry_acknowledgement"


class EmailSettingsError(ValueError):
    """The email settings cannot work in this environment."""


def check_email_settings(settings: Settings) -> None:
    """Raise ``EmailSettingsError`` when production has no SMTP server.

    The local outbox only keeps messages in the database, so in production nobody would
    receive verification links, password resets or acknowledgements.
    """
    if settings.env == Environment.production and not settings.smtp_host:
        raise EmailSettingsError(
            "FRONTDESK_SMTP_HOST is not set, but FRONTDESK_ENV is production: the local outbox "
            "delivers no email. Set FRONTDESK_SMTP_HOST (and FRONTDESK_SMTP_PORT, "
            "FRONTDESK_SMTP_USERNAME, FRONTDESK_SMTP_PASSWORD, FRONTDESK_SMTP_SECURITY) to your "
            "mail server, or run with FRONTDESK_ENV=development."
        )


def message_id_domain(settings: Settings) -> str:
    """Return the domain of the From address, else the public URL's host."""
    _name, address = parseaddr(settings.email_from)
    _local, at, domain = address.rpartition("@")
    domain = domain.strip().strip("[]")
    if at and domain:
        return domain
    return urlsplit(settings.resolved_public_url).hostname or "localhost"


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.resolved_public_url}/{path}?token={quote(token, safe='')}"


def _log_development_link(uow: UnitOfWork, message: EmailMessage, link: str) -> None:
    # The one place where a token reaches the log: without SMTP in development, the log is how
    # a person running Frontdesk locally follows verification, reset and invitation links.
    # check_email_settings stops production from starting without SMTP, so this never runs there.
    if uow.settings.uses_outbox and uow.settings.env == Environment.development:
        log.info("email.outbox_link", email_id=str(message.id), kind=message.kind, link=link)


PROVIDER_CACHE_KEY = "email_provider_settings"


def sender_domain(from_address: str) -> str:
    """Return the domain of a stored From address, which ends the workspace's Message-IDs."""
    return parse_address(from_address, "from_address").address.rsplit("@", 1)[1]


# A Message-ID in the <local@domain> form, without spaces or line breaks.
MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


async def workspace_provider_setting(
    uow: UnitOfWork, workspace_id: uuid.UUID
) -> EmailProviderSetting | None:
    """Return the workspace's provider row, read once per unit of work.

    A request that queues several emails (one per member) reads the row once; a missing row
    is cached too. Changing the settings clears the cache of that unit of work.
    """
    cache: dict[uuid.UUID, EmailProviderSetting | None] = uow.session.info.setdefault(
        PROVIDER_CACHE_KEY, {}
    )
    if workspace_id not in cache:
        cache[workspace_id] = await uow.session.get(EmailProviderSetting, workspace_id)
    return cache[workspace_id]


async def queue_email(
    uow: UnitOfWork,
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    workspace_id: uuid.UUID | None,
    reply_to: str | None = None,
    enquiry_id: uuid.UUID | None = None,
    auto_submitted: bool = True,
    category: str = "transactional",
    attachments: list[dict[str, Any]] | None = None,
    in_reply_to: str | None = None,
) -> EmailMessage:
    """Store a message with its final headers and enqueue its send job in this transaction.

    A ``bulk`` message of a workspace carries List-Unsubscribe with one-click unsubscribe
    (RFC 8058); transactional messages do not.
    """
    settings = uow.settings
    now = uow.now()
    email_id = uuid7()

    to_address = single_line(to)
    reply_to_address = single_line(reply_to) if reply_to else None
    subject = single_line(subject, max_length=composer.MAX_SUBJECT_LENGTH)
    from_address = single_line(settings.email_from)
    domain = message_id_domain(settings)
    # A workspace with its own provider sends from its own address and domain.
    provider = await workspace_provider_setting(uow, workspace_id) if workspace_id else None
    if provider is not None:
        from_address = provider.from_address
        domain = sender_domain(provider.from_address)

    # Fixed here so that every delivery attempt sends the same Message-ID and Date; receivers
    # use the Message-ID to discard a duplicate after a retry.
    headers: dict[str, Any] = {
        "From": from_address,
        "To": to_address,
        "Subject": subject,
        "Date": format_datetime(now),
        "Message-ID": f"<{email_id}@{domain}>",
    }
    if reply_to_address:
        headers["Reply-To"] = reply_to_address
    if auto_submitted:
        # RFC 3834 section 2: responders should not auto-reply (vacation notices) to a message
        # whose Auto-Submitted is not "no". Microsoft Exchange reads X-Auto-Response-Suppress.
        headers["Auto-Submitted"] = "auto-generated"
        headers["X-Auto-Response-Suppress"] = "All"

    if in_reply_to is not None and MESSAGE_ID.fullmatch(in_reply_to):
        # Threading headers of a reply; ids that are not plain <local@domain> are left out.
        headers["In-Reply-To"] = in_reply_to
        headers["References"] = in_reply_to
    if category == "bulk" and workspace_id is not None:
        link = unsubscribe_url(settings.resolved_public_url, uow.rt.secrets.secret_key, email_id)
        headers["List-Unsubscribe"] = f"<{link}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    track_opens = bool(provider and provider.track_opens)
    track_clicks = bool(provider and provider.track_clicks)
    if track_opens or track_clicks:
        html = add_tracking(
            html,
            public_url=settings.resolved_public_url,
            secret_key=uow.rt.secrets.secret_key,
            email_id=email_id,
            opens=track_opens,
            clicks=track_clicks,
        )

    message = EmailMessage(
        id=email_id,
        workspace_id=workspace_id,
        kind=kind,
        message_id=headers["Message-ID"],
        from_address=from_address,
        to_address=to_address,
        reply_to=reply_to_address,
        subject=subject,
        text_body=text,
        html_body=html,
        headers=headers,
        status="queued",
        attempts=0,
        enquiry_id=enquiry_id,
        created_at=now,
        track_opens=track_opens,
        track_clicks=track_clicks,
        category=category,
        attachments=attachments or [],
    )
    uow.session.add(message)
    uow.enqueue(SEND_JOB, {"email_id": str(email_id)}, workspace_id=workspace_id)
    log.info("email.queued", email_id=str(email_id), kind=kind)
    return message


async def _queue_rendered(
    uow: UnitOfWork,
    rendered: RenderedEmail,
    *,
    kind: str,
    to: str,
    workspace_id: uuid.UUID | None,
    reply_to: str | None = None,
    enquiry_id: uuid.UUID | None = None,
    auto_submitted: bool = True,
) -> EmailMessage:
    return await queue_email(
        uow,
        kind=kind,
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        workspace_id=workspace_id,
        reply_to=reply_to,
        enquiry_id=enquiry_id,
        auto_submitted=auto_submitted,
    )


async def send_verification_email(
    uow: UnitOfWork, *, to: str, full_name: str, token: str
) -> EmailMessage:
    link = _link(uow.settings, "verify-email", token)
    rendered = composer.compose_verification(
        full_name=full_name,
        link=link,
        valid_seconds=uow.settings.verification_token_ttl_seconds,
    )
    message = await _queue_rendered(uow, rendered, kind="verification", to=to, workspace_id=None)
    _log_development_link(uow, message, link)
    return message


async def send_password_reset_email(
    uow: UnitOfWork, *, to: str, full_name: str, token: str
) -> EmailMessage:
    link = _link(uow.settings, "reset-password", token)
    rendered = composer.compose_password_reset(
        full_name=full_name, link=link, valid_seconds=uow.settings.reset_token_ttl_seconds
    )
    message = await _queue_rendered(uow, rendered, kind="password_reset", to=to, workspace_id=None)
    _log_development_link(uow, message, link)
    return message


async def send_invitation_email(
    uow: UnitOfWork,
    *,
    to: str,
    workspace_id: uuid.UUID,
    workspace_name: str,
    inviter_name: str,
    role: str,
    token: str,
) -> EmailMessage:
    link = _link(uow.settings, "accept-invitation", token)
    rendered = composer.compose_invitation(
        workspace_name=workspace_name,
        inviter_name=inviter_name,
        role=role,
        link=link,
        valid_seconds=uow.settings.invitation_ttl_seconds,
    )
    # A person sends an invitation, so it is not marked Auto-Submitted.
    message = await _queue_rendered(
        uow,
        rendered,
        kind="invitation",
        to=to,
        workspace_id=workspace_id,
        auto_submitted=False,
    )
    _log_development_link(uow, message, link)
    return message


async def count_recent_acknowledgements(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, to: str
) -> int:
    """Count the acknowledgements from this workspace to ``to`` in the last 24 hours."""
    since = uow.now() - timedelta(hours=24)
    count = await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(EmailMessage)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.kind == ACKNOWLEDGEMENT_KIND,
            sa.func.lower(EmailMessage.to_address) == single_line(to).lower(),
            EmailMessage.created_at > since,
        )
    )
    return int(count or 0)


async def send_enquiry_acknowledgement(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry_id: uuid.UUID,
    to: str,
    contact_name: str | None,
    business_name: str,
    reply_to: str | None,
    form_name: str,
    language: str,
) -> bool:
    """Queue the acknowledgement of a submitted enquiry, in the form's language.

    Returns False and queues nothing when the recipient already got
    ``acknowledgements_per_recipient_per_day`` acknowledgements from this workspace in the
    last 24 hours, so a form cannot be used to flood someone's mailbox.
    """
    limit = uow.settings.acknowledgements_per_recipient_per_day
    # NOTE: two submissions committing at the same moment can both pass this count, so the
    # limit may be exceeded by the number of concurrent submissions.
    sent = await count_recent_acknowledgements(uow, workspace_id=workspace_id, to=to)
    if sent >= limit:
        log.info(
            "email.acknowledgement_skipped",
            workspace_id=str(workspace_id),
            enquiry_id=str(enquiry_id),
            reason="daily_limit",
        )
        return False
    rendered = await render_replacement(
        uow,
        workspace_id=workspace_id,
        key=ACKNOWLEDGEMENT_KIND,
        language=language,
        values={
            "contact_name": contact_name,
            "business_name": business_name,
            "form_name": form_name,
            "can_reply": bool(reply_to),
        },
    ) or composer.compose_acknowledgement(
        language=language,
        business_name=business_name,
        form_name=form_name,
        contact_name=contact_name,
        can_reply=bool(reply_to),
    )
    await _queue_rendered(
        uow,
        rendered,
        kind=ACKNOWLEDGEMENT_KIND,
        to=to,
        workspace_id=workspace_id,
        reply_to=reply_to,
        enquiry_id=enquiry_id,
    )
    return True


async def _workspace_name(uow: UnitOfWork, workspace_id: uuid.UUID) -> str:
    name = await uow.session.scalar(sa.select(Workspace.name).where(Workspace.id == workspace_id))
    return name or "your workspace"


def _enquiry_id(enquiry: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(enquiry["id"]))
    except (KeyError, ValueError):
        return None


async def send_new_enquiry_email(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry: dict[str, Any],
    to: str,
    recipient_name: str,
    workspace_name: str | None = None,
) -> EmailMessage:
    """Queue the new-enquiry email to a member who turned it on in their preferences.

    Callers that email many members pass ``workspace_name`` to save a query per email.
    """
    rendered = composer.compose_new_enquiry(
        enquiry=enquiry,
        recipient_name=recipient_name,
        workspace_name=workspace_name or await _workspace_name(uow, workspace_id),
    )
    return await _queue_rendered(
        uow,
        rendered,
        kind="new_enquiry",
        to=to,
        workspace_id=workspace_id,
        enquiry_id=_enquiry_id(enquiry),
    )


async def send_enquiry_assigned_email(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry: dict[str, Any],
    to: str,
    recipient_name: str,
    workspace_name: str | None = None,
) -> EmailMessage:
    """Queue the email telling a member that an enquiry was assigned to them."""
    rendered = composer.compose_enquiry_assigned(
        enquiry=enquiry,
        recipient_name=recipient_name,
        workspace_name=workspace_name or await _workspace_name(uow, workspace_id),
    )
    return await _queue_rendered(
        uow,
        rendered,
        kind="enquiry_assigned",
        to=to,
        workspace_id=workspace_id,
        enquiry_id=_enquiry_id(enquiry),
    )
