"""Website chat visitors: their tokens, details, conversations and messages.

Every load of a visitor's conversation goes through ``get_visitor_conversation``, which
raises the same NotFound for another visitor's or another workspace's ids as for absent
ones. Visitors write messages through the conversation service, as staff do. The chat's
settings are in ``chat_settings`` and the visitors' files in ``chat_uploads``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.normalize import InvalidValue, normalize_email
from frontdesk.contacts.service import match_or_create_contact
from frontdesk.conversations import service
from frontdesk.conversations.attachments import attachment_dict
from frontdesk.conversations.chat_uploads import visitor_uploads
from frontdesk.conversations.models import (
    ChatSettings,
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
)
from frontdesk.conversations.visitors import (
    InvalidVisitorToken,
    decode_visitor_token,
    issue_visitor_token,
)
from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import NotFound, Unauthorized, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork

log = structlog.get_logger()

MAX_VISITOR_NAME_CHARS = 200


def visitor_dict(visitor: ChatVisitor) -> dict[str, Any]:
    return {"id": str(visitor.id), "name": visitor.name, "email": visitor.email}


def check_visitor_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_VISITOR_NAME_CHARS or not name.isprintable():
        raise ValidationFailed(
            "name",
            f"Use at most {MAX_VISITOR_NAME_CHARS} printable characters.",
            "invalid",
        )
    return name or None


def check_visitor_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    try:
        return normalize_email(email)
    except InvalidValue as exc:
        raise ValidationFailed(
            "email", "Enter a valid email address, like name@example.com.", exc.code
        ) from exc


async def create_visitor(
    uow: UnitOfWork, settings: ChatSettings, *, name: str | None, email: str | None
) -> tuple[ChatVisitor, str]:
    """Create a visitor and return it with its token."""
    checked_name = check_visitor_name(name)
    checked_email = check_visitor_email(email)
    now = uow.now()
    visitor = ChatVisitor(
        id=uuid7(),
        workspace_id=settings.workspace_id,
        name=checked_name,
        email=None,
        created_at=now,
        last_seen_at=now,
    )
    uow.session.add(visitor)
    await uow.session.flush()
    if checked_email is not None:
        await _link_email(uow, visitor, checked_email)
    token = issue_visitor_token(
        uow.rt.secrets.secret_key,
        workspace_id=settings.workspace_id,
        visitor_id=visitor.id,
        now=now,
    )
    log.info("chat.visitor_created", workspace_id=str(settings.workspace_id))
    return visitor, token


async def authenticate_visitor(
    uow: UnitOfWork, settings: ChatSettings, token: str | None
) -> ChatVisitor:
    """Return the visitor a token names, or raise 401 for a bad, revoked or foreign token."""
    if not token:
        raise Unauthorized(
            "Send the visitor token from POST /chat/{key}/visitors as "
            "'Authorization: Bearer <token>'."
        )
    invalid = Unauthorized(
        "The visitor token is invalid or revoked; get a new one with POST /chat/{key}/visitors."
    )
    try:
        claims = decode_visitor_token(uow.rt.secrets.secret_key, token)
    except InvalidVisitorToken as exc:
        raise invalid from exc
    if claims.workspace_id != settings.workspace_id:
        raise invalid
    visitor = await uow.session.get(ChatVisitor, claims.visitor_id)
    if visitor is None or visitor.workspace_id != settings.workspace_id or visitor.revoked_at:
        raise invalid
    return visitor


def touch_visitor(uow: UnitOfWork, visitor: ChatVisitor) -> None:
    """Record that the visitor was active, at most once a minute to spare writes."""
    now = uow.now()
    if (now - visitor.last_seen_at).total_seconds() >= 60:
        visitor.last_seen_at = now


async def update_visitor(
    uow: UnitOfWork, visitor: ChatVisitor, changes: dict[str, str | None]
) -> ChatVisitor:
    """Change the visitor's name or email. A new email links the visitor to a contact."""
    if "name" in changes:
        visitor.name = check_visitor_name(changes["name"])
    if "email" in changes:
        email = check_visitor_email(changes["email"])
        if email is None:
            visitor.email = None
        elif email != visitor.email:
            await _link_email(uow, visitor, email)
    touch_visitor(uow, visitor)
    await uow.session.flush()
    return visitor


async def _link_email(uow: UnitOfWork, visitor: ChatVisitor, email: str) -> None:
    """Store the email and point the visitor and its conversations at the matching contact."""
    contact = await match_or_create_contact(
        uow, workspace_id=visitor.workspace_id, email=email, phone=None, name=visitor.name
    )
    visitor.email = email
    visitor.contact_id = contact.id
    conversations = await uow.session.scalars(
        sa.select(Conversation).where(
            Conversation.visitor_id == visitor.id, Conversation.workspace_id == visitor.workspace_id
        )
    )
    now = uow.now()
    for conversation in conversations:
        if conversation.contact_id == contact.id:
            continue
        conversation.contact_id = contact.id
        conversation.updated_at = now
        uow.record_event(
            "conversation.updated",
            service.conversation_dict(conversation),
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
        )
    await uow.session.flush()


# --- Conversations ----------------------------------------------------------------------------


async def _read_positions(
    uow: UnitOfWork, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Return, per conversation, the visitor's read seq and the highest read seq of staff."""
    positions = {conversation_id: (0, 0) for conversation_id in conversation_ids}
    if not conversation_ids:
        return positions
    rows = await uow.session.execute(
        sa.select(
            ConversationParticipant.conversation_id,
            ConversationParticipant.participant_type,
            sa.func.max(ConversationParticipant.last_read_seq),
        )
        .where(ConversationParticipant.conversation_id.in_(conversation_ids))
        .group_by(ConversationParticipant.conversation_id, ConversationParticipant.participant_type)
    )
    for conversation_id, participant_type, seq in rows:
        visitor_seq, staff_seq = positions[conversation_id]
        if participant_type == "visitor":
            visitor_seq = int(seq or 0)
        elif participant_type == "member":
            staff_seq = int(seq or 0)
        positions[conversation_id] = (visitor_seq, staff_seq)
    return positions


def visitor_conversation_dict(
    conversation: Conversation, positions: tuple[int, int]
) -> dict[str, Any]:
    visitor_read_seq, staff_read_seq = positions
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "last_seq": conversation.last_seq,
        "visitor_read_seq": visitor_read_seq,
        "staff_read_seq": staff_read_seq,
        "last_message_at": (
            iso_utc(conversation.last_message_at) if conversation.last_message_at else None
        ),
        "created_at": iso_utc(conversation.created_at),
    }


async def describe_conversations(
    uow: UnitOfWork, conversations: Sequence[Conversation]
) -> list[dict[str, Any]]:
    positions = await _read_positions(uow, [conversation.id for conversation in conversations])
    return [
        visitor_conversation_dict(conversation, positions[conversation.id])
        for conversation in conversations
    ]


async def list_visitor_conversations(
    uow: UnitOfWork, visitor: ChatVisitor, *, limit: int, cursor: str | None
) -> tuple[list[Conversation], str | None]:
    """Return one page of the visitor's conversations, newest first, and the next cursor."""
    statement = sa.select(Conversation).where(
        Conversation.visitor_id == visitor.id,
        Conversation.workspace_id == visitor.workspace_id,
    )
    return await fetch_newest_first(
        uow.session, statement, Conversation, cursor=cursor, limit=limit
    )


async def start_conversation(uow: UnitOfWork, visitor: ChatVisitor) -> tuple[Conversation, bool]:
    """Return the visitor's newest conversation that is not resolved, or start a new one.

    The visitor's row is locked first (FOR UPDATE on PostgreSQL; SQLite has one writer at a
    time), so two concurrent starts of one visitor return the same new conversation.
    """
    await uow.session.execute(
        sa.select(ChatVisitor.id).where(ChatVisitor.id == visitor.id).with_for_update()
    )
    latest = await uow.session.scalar(
        sa.select(Conversation)
        .where(
            Conversation.visitor_id == visitor.id,
            Conversation.workspace_id == visitor.workspace_id,
            Conversation.status != "resolved",
        )
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(1)
    )
    touch_visitor(uow, visitor)
    if latest is not None:
        return latest, False
    conversation = await service.create_conversation(
        uow,
        workspace_id=visitor.workspace_id,
        channel="chat",
        contact_id=visitor.contact_id,
        visitor_id=visitor.id,
    )
    log.info("chat.conversation_started", conversation_id=str(conversation.id))
    return conversation, True


async def get_visitor_conversation(
    uow: UnitOfWork, visitor: ChatVisitor, conversation_id: uuid.UUID
) -> Conversation:
    """Return the visitor's own conversation. Any other id raises the same NotFound."""
    conversation = await uow.session.get(Conversation, conversation_id)
    if (
        conversation is None
        or conversation.workspace_id != visitor.workspace_id
        or conversation.visitor_id != visitor.id
    ):
        raise NotFound("No such conversation for this visitor.")
    return conversation


async def send_visitor_message(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    conversation: Conversation,
    *,
    body: str,
    client_message_id: str | None,
    upload_ids: Sequence[uuid.UUID],
) -> tuple[ConversationMessage, bool]:
    """Post the visitor's message with their uploads; returns it and whether it is new.

    Each upload records the first message that carried it, so the sweep keeps it.
    """
    uploads = await visitor_uploads(uow, visitor, upload_ids)
    message, created = await service.post_message(
        uow,
        conversation,
        author=service.Author(type="visitor", id=visitor.id, name=visitor.name),
        kind="message",
        body=body,
        attachments=[attachment_dict(stored) for stored in uploads],
        client_message_id=client_message_id,
    )
    for stored in uploads:
        if "message_id" not in stored.user_metadata:
            stored.user_metadata = {**stored.user_metadata, "message_id": str(message.id)}
    touch_visitor(uow, visitor)
    await uow.session.flush()
    return message, created
