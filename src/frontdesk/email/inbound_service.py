"""Turning a received email into an enquiry, a reply on an enquiry, or a suppression.

Every source (raw upload, provider inbound webhooks, IMAP polling) ends in ``receive``:

1. A Message-ID already received by the workspace is a duplicate and changes nothing, so a
   provider's retry or a mailbox polled twice is harmless.
2. A bounce or complaint report suppresses the affected addresses.
3. Threading: the message joins an enquiry when one of its In-Reply-To or References ids is
   a message of that enquiry (one Frontdesk sent, or one received earlier), or when it was
   sent to the enquiry's reply address (``local+r<token>@domain``). It joins only when the
   sender is the enquiry's contact, or a member of the workspace writing from their own
   mail client. Anyone else starts a new enquiry, so a forwarded thread cannot be used to
   write into someone else's enquiry. A reply whose subject was changed still
   joins its enquiry: the headers name the message it replies to, and people change subjects
   without changing topics more often than the reverse.
4. Automatic mail (auto-replies, mailing lists, messages from this system's own addresses)
   never starts an enquiry and is never answered.
5. Anything else from a new sender or on a new topic creates (or matches) the contact and a
   new enquiry with source ``email``. No acknowledgement is sent, so two auto-responders
   cannot loop.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.models import Contact
from frontdesk.contacts.service import match_or_create_contact
from frontdesk.conversations import service as conversations
from frontdesk.conversations.attachments import resolve_attachments
from frontdesk.conversations.formatting import fit_email_text
from frontdesk.core.errors import ProblemError
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.inbound import (
    DeliveryReport,
    ParsedEmail,
    is_automatic,
    parse_report,
    split_reply,
)
from frontdesk.email.models import EmailMessage, InboundEmail
from frontdesk.email.service import workspace_provider_setting
from frontdesk.email.suppressions import suppress
from frontdesk.enquiries.models import Enquiry, EnquiryActivity
from frontdesk.enquiries.service import create_enquiry
from frontdesk.storage import service as storage
from frontdesk.storage.uploads import upload_object
from frontdesk.workspaces.models import Membership

log = structlog.get_logger()

INBOUND_BUCKET = "email-inbound"
_REPLY_TOKEN = re.compile(r"\+r([0-9a-f]{44})@", re.IGNORECASE)
_TOKEN_LABEL = b"frontdesk enquiry reply address v1"


@dataclass(frozen=True)
class InboundResult:
    inbound: InboundEmail
    enquiry_id: uuid.UUID | None


def _bracketed(message_id: str) -> str:
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _fingerprint(parsed: ParsedEmail, raw: bytes | None) -> str:
    """Return a stand-in Message-ID for a message without one, so a resent copy is a duplicate."""
    if raw is not None:
        digest = hashlib.sha256(raw).hexdigest()
    else:
        parts = [parsed.from_address or "", parsed.subject, str(parsed.date), parsed.text]
        digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()
    return f"<sha256-{digest}@no-message-id.invalid>"


def reply_token(secret_key: bytes, enquiry_id: uuid.UUID) -> str:
    """Return the token of an enquiry's reply address: its id, signed and shortened."""
    key = hmac.new(secret_key, _TOKEN_LABEL, hashlib.sha256).digest()
    signature = hmac.new(key, enquiry_id.bytes, hashlib.sha256).hexdigest()[:12]
    return f"{enquiry_id.hex}{signature}"


def reply_address(from_address: str, secret_key: bytes, enquiry_id: uuid.UUID) -> str:
    """Return ``local+r<token>@domain`` for the address ``local@domain``."""
    local, _, domain = from_address.rpartition("@")
    return f"{local}+r{reply_token(secret_key, enquiry_id)}@{domain}"


def _enquiry_of_token(secret_key: bytes, token: str) -> uuid.UUID | None:
    if len(token) != 44:
        return None
    try:
        enquiry_id = uuid.UUID(hex=token[:32])
    except ValueError:
        return None
    return enquiry_id if hmac.compare_digest(reply_token(secret_key, enquiry_id), token) else None


async def _threaded_enquiry(
    uow: UnitOfWork, workspace_id: uuid.UUID, parsed: ParsedEmail
) -> Enquiry | None:
    """Find the enquiry the message replies to, by its headers or by its reply address."""
    ids = [_bracketed(item) for item in [*parsed.in_reply_to, *parsed.references]]
    enquiry_id: uuid.UUID | None = None
    if ids:
        enquiry_id = await uow.session.scalar(
            sa.select(EmailMessage.enquiry_id)
            .where(
                EmailMessage.workspace_id == workspace_id,
                EmailMessage.message_id.in_(ids),
                EmailMessage.enquiry_id.is_not(None),
            )
            .limit(1)
        )
        if enquiry_id is None:
            enquiry_id = await uow.session.scalar(
                sa.select(InboundEmail.enquiry_id)
                .where(
                    InboundEmail.workspace_id == workspace_id,
                    InboundEmail.message_id.in_(ids),
                    InboundEmail.enquiry_id.is_not(None),
                )
                .limit(1)
            )
    if enquiry_id is None:
        recipients = " ".join(address for _name, address in [*parsed.to, *parsed.cc])
        for match in _REPLY_TOKEN.finditer(recipients + " "):
            enquiry_id = _enquiry_of_token(uow.rt.secrets.secret_key, match.group(1))
            if enquiry_id is not None:
                break
    if enquiry_id is None:
        return None
    enquiry: Enquiry | None = await uow.session.scalar(
        sa.select(Enquiry).where(Enquiry.id == enquiry_id, Enquiry.workspace_id == workspace_id)
    )
    return enquiry


async def _member_id(uow: UnitOfWork, workspace_id: uuid.UUID, address: str) -> uuid.UUID | None:
    from frontdesk.auth.models import User

    result: uuid.UUID | None = await uow.session.scalar(
        sa.select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id, User.email == address.lower())
    )
    return result


async def _contact_email(uow: UnitOfWork, enquiry: Enquiry) -> str | None:
    if enquiry.contact_id is None:
        return None
    result: str | None = await uow.session.scalar(
        sa.select(Contact.email).where(Contact.id == enquiry.contact_id)
    )
    return result


async def _own_addresses(uow: UnitOfWork, workspace_id: uuid.UUID) -> list[str]:
    """Return the bare addresses this workspace sends from, lower-cased."""
    formatted = [uow.settings.email_from]
    setting = await workspace_provider_setting(uow, workspace_id)
    if setting is not None:
        formatted.append(setting.from_address)
    return [parseaddr(value)[1].lower() for value in formatted if parseaddr(value)[1]]


async def _apply_report(
    uow: UnitOfWork, workspace_id: uuid.UUID, report: DeliveryReport, report_id: str | None
) -> None:
    """Suppress the addresses of a hard bounce or complaint about a message this workspace sent.

    Anyone can send a message that looks like a bounce. So a report counts only when it
    names the Message-ID of one of the workspace's sent messages and the address that
    message went to. Other reports are stored but change nothing.
    """
    if report.original_message_id is None:
        log.info("email.inbound_report_unmatched", reason="no original message id")
        return
    sent = await uow.session.scalar(
        sa.select(EmailMessage).where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.message_id == _bracketed(report.original_message_id),
        )
    )
    if sent is None:
        log.info("email.inbound_report_unmatched", reason="not a message of this workspace")
        return
    reason = "complaint" if report.kind == "complaint" else "hard_bounce"
    for address in report.addresses:
        if address.lower() != sent.to_address.lower():
            continue
        await suppress(
            uow,
            workspace_id=workspace_id,
            address=address,
            reason=reason,
            source="inbound",
            detail=f"{report.source} report {report_id or ''}".strip(),
            email_id=sent.id,
        )


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _store_file(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    inbound_id: uuid.UUID,
    name: str,
    content_type: str,
    data: bytes,
    defects: list[str],
) -> uuid.UUID | None:
    """Store one file of the message; a file the storage refuses becomes a defect."""
    bucket = await storage.system_bucket(uow, workspace_id, INBOUND_BUCKET)
    try:
        stored, _bucket = await upload_object(
            uow,
            workspace_id=workspace_id,
            bucket_id=bucket.id,
            key=f"{inbound_id}/{name}",
            overwrite=False,
            claimed_type=content_type,
            chunks=_one_chunk(data),
            owner_id=None,
        )
    except ProblemError as exc:
        defects.append(f"file {name!r} not stored: {exc.detail}")
        log.warning("email.inbound_file_not_stored", inbound_id=str(inbound_id), code=exc.code)
        return None
    return stored.id


async def _record_activity(
    uow: UnitOfWork, enquiry: Enquiry, kind: str, actor_id: uuid.UUID | None, data: dict[str, Any]
) -> None:
    now = uow.now()
    uow.session.add(
        EnquiryActivity(
            id=uuid7(),
            workspace_id=enquiry.workspace_id,
            enquiry_id=enquiry.id,
            type=kind,
            actor_id=actor_id,
            data=data,
            created_at=now,
        )
    )
    enquiry.updated_at = now
    uow.record_event(
        "enquiry.email_received",
        {"enquiry_id": str(enquiry.id), **data},
        workspace_id=enquiry.workspace_id,
    )


async def _add_to_conversation(
    uow: UnitOfWork, enquiry: Enquiry, inbound: InboundEmail, staff_id: uuid.UUID | None
) -> None:
    """Post the email's new text and files as a message of the enquiry's conversation."""
    conversation = await conversations.conversation_for_enquiry(uow, enquiry)
    object_ids = [uuid.UUID(item["object_id"]) for item in inbound.attachments]
    files = await resolve_attachments(uow, workspace_id=enquiry.workspace_id, object_ids=object_ids)
    body = inbound.text
    body = fit_email_text(body)
    author = (
        conversations.Author(type="member", id=staff_id, name=inbound.from_name)
        if staff_id is not None
        else conversations.Author(type="contact", name=inbound.from_name)
    )
    if not body.strip() and not files:
        body = "(empty email)"
    await conversations.post_message(
        uow,
        conversation,
        author=author,
        body=body,
        attachments=files,
        data={"inbound_email_id": str(inbound.id), "subject": inbound.subject[:300]},
    )


async def receive(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    parsed: ParsedEmail,
    raw: bytes | None,
    source: str,
) -> InboundResult:
    """Store a received message and apply it (see the module docstring for the rules)."""
    message_id = _bracketed(parsed.message_id) if parsed.message_id else _fingerprint(parsed, raw)
    if message_id is not None:
        existing = await uow.session.scalar(
            sa.select(InboundEmail).where(
                InboundEmail.workspace_id == workspace_id, InboundEmail.message_id == message_id
            )
        )
        if existing is not None:
            log.info("email.inbound_duplicate", inbound_id=str(existing.id))
            return InboundResult(inbound=existing, enquiry_id=existing.enquiry_id)

    inbound_id = uuid7()
    parts = split_reply(parsed.text)
    defects = list(parsed.defects)
    inbound = InboundEmail(
        id=inbound_id,
        workspace_id=workspace_id,
        source=source,
        message_id=message_id[:1000] if message_id else None,
        from_address=(parsed.from_address or None) and parsed.from_address.lower()[:320],
        from_name=parsed.from_name[:300] or None,
        subject=parsed.subject,
        text=parts.new_text,
        quoted=parts.quoted,
        signature=parts.signature,
        sent_at=parsed.date,
        action="created_enquiry",
        automatic_reason=None,
        report_kind=None,
        defects=defects,
        attachments=[],
        created_at=uow.now(),
    )

    report = parse_report(parsed)
    automatic = is_automatic(parsed, own_addresses=await _own_addresses(uow, workspace_id))
    enquiry = await _threaded_enquiry(uow, workspace_id, parsed)
    sender = inbound.from_address
    staff_id = await _member_id(uow, workspace_id, sender) if sender else None
    if enquiry is not None and sender is not None and staff_id is None:
        contact_email = await _contact_email(uow, enquiry)
        if contact_email is None or contact_email.lower() != sender:
            log.info("email.inbound_thread_refused", enquiry_id=str(enquiry.id))
            enquiry = None

    if report is not None:
        inbound.action = "report"
        inbound.report_kind = report.kind
        if report.kind in ("hard", "complaint"):
            await _apply_report(uow, workspace_id, report, message_id)
        enquiry = None
    elif enquiry is not None:
        inbound.action = "staff_reply" if staff_id else "threaded"
        inbound.automatic_reason = automatic
    elif automatic is not None:
        inbound.action = "automatic"
        inbound.automatic_reason = automatic

    uow.session.add(inbound)
    await uow.session.flush()

    if raw is not None:
        inbound.raw_object_id = await _store_file(
            uow, workspace_id, inbound_id, "message.eml", "message/rfc822", raw, defects
        )
    for index, attachment in enumerate(parsed.attachments):
        object_id = await _store_file(
            uow,
            workspace_id,
            inbound_id,
            f"{index + 1}-{attachment.filename}",
            attachment.content_type,
            attachment.data,
            defects,
        )
        if object_id is not None:
            inbound.attachments = [
                *inbound.attachments,
                {
                    "object_id": str(object_id),
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "size": len(attachment.data),
                    "content_id": attachment.content_id,
                    "inline": attachment.inline,
                },
            ]
    inbound.defects = defects

    if inbound.action == "created_enquiry":
        contact = await match_or_create_contact(
            uow,
            workspace_id=workspace_id,
            email=sender,
            phone=None,
            name=parsed.from_name[:200] or None,
        )
        created, _data = await create_enquiry(
            uow,
            workspace_id=workspace_id,
            contact=contact,
            source="email",
            source_details={"inbound_email_id": str(inbound_id), "message_id": message_id},
            answers={"message": parts.new_text[:20_000]},
            subject=(parsed.subject or "(no subject)")[:300],
        )
        inbound.enquiry_id = created.id
        inbound.contact_id = contact.id
        await _add_to_conversation(uow, created, inbound, staff_id)
    elif inbound.action in ("threaded", "staff_reply") and enquiry is not None:
        inbound.enquiry_id = enquiry.id
        inbound.contact_id = enquiry.contact_id
        await _record_activity(
            uow,
            enquiry,
            "email_received" if inbound.action == "threaded" else "email_sent_by_staff",
            staff_id,
            {"inbound_email_id": str(inbound_id), "subject": parsed.subject[:300]},
        )
        await _add_to_conversation(uow, enquiry, inbound, staff_id)
    await uow.session.flush()
    log.info(
        "email.inbound_received",
        inbound_id=str(inbound_id),
        workspace_id=str(workspace_id),
        source=source,
        action=inbound.action,
        enquiry_id=str(inbound.enquiry_id) if inbound.enquiry_id else None,
    )
    return InboundResult(inbound=inbound, enquiry_id=inbound.enquiry_id)
