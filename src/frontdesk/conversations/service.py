"""Conversation use cases shared by the staff API, the visitor API and the realtime gateway.

Messages are numbered 1, 2, 3... in their conversation by ``seq``, taken from the
conversation row in the same transaction, so two writers never get the same number. Read
positions are ``seq`` values. Every change records a staff event and, when the website
visitor may see it, a visitor event shaped for customers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from frontdesk.conversations.formatting import MAX_BODY_CHARS, render_markdown
from frontdesk.conversations.models import (
    Conversation,
    ConversationMessage,
    ConversationParticipant,
)
from frontdesk.core.errors import NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry

CHANNELS = ("chat", "email", "instagram", "form")
STATUSES = ("open", "pending", "resolved", "snoozed")
MAX_CLIENT_MESSAGE_ID_CHARS = 100
MAX_ATTACHMENTS_PER_MESSAGE = 10

AuthorType = Literal["member", "visitor", "contact", "system"]


@dataclass(frozen=True)
class Author:
    """Who writes a message: a member (user id), a visitor (visitor id), the contact or the system."""

    type: AuthorType
    id: uuid.UUID | None = None
    name: str | None = None

    @property
    def key(self) -> str:
        return str(self.id) if self.id is not None else ""


SYSTEM = Author(type="system")


# Views


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """The conversation as the staff API returns it (without per-member fields)."""
    return {
        "id": str(conversation.id),
        "channel": conversation.channel,
        "status": conversation.status,
        "snoozed_until": _iso(conversation.snoozed_until),
        "contact_id": _str_or_none(conversation.contact_id),
        "enquiry_id": _str_or_none(conversation.enquiry_id),
        "visitor_id": _str_or_none(conversation.visitor_id),
        "assignee_id": _str_or_none(conversation.assignee_id),
        "subject": conversation.subject,
        "last_seq": conversation.last_seq,
        "last_message_at": _iso(conversation.last_message_at),
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def message_dict(message: ConversationMessage) -> dict[str, Any]:
    """The message as staff see it: notes, system messages and deletion marks included."""
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "kind": message.kind,
        "author": {
            "type": message.author_type,
            "id": message.author_key or None,
            "name": message.data.get("author_name"),
        },
        "body": message.body,
        "body_html": message.body_html,
        "attachments": message.attachments,
        "data": {k: v for k, v in message.data.items() if k != "author_name"},
        "client_message_id": message.client_message_id,
        "created_at": message.created_at.isoformat(),
        "edited_at": _iso(message.edited_at),
        "deleted_at": _iso(message.deleted_at),
    }


def visitor_message_dict(message: ConversationMessage) -> dict[str, Any]:
    """The message as the website visitor sees it: no staff ids, no history."""
    own = message.author_type == "visitor"
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "author": {
            "type": "visitor" if own else "staff",
            "name": None if own else message.data.get("author_name"),
        },
        "body": message.body,
        "body_html": message.body_html,
        "attachments": [
            {k: v for k, v in item.items() if k != "bucket_id"} for item in message.attachments
        ],
        "client_message_id": message.client_message_id if own else None,
        "created_at": message.created_at.isoformat(),
        "edited_at": _iso(message.edited_at),
        "deleted": message.deleted_at is not None,
    }


def visible_to_visitor(message: ConversationMessage) -> bool:
    return message.kind == "message"


# Reading


async def get_conversation(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    """Return the workspace's conversation; another workspace's id is not found."""
    conversation = await uow.session.get(Conversation, conversation_id)
    if conversation is None or conversation.workspace_id != workspace_id:
        raise NotFound("No such conversation in this workspace.")
    return conversation


async def get_message(
    uow: UnitOfWork, conversation: Conversation, message_id: uuid.UUID
) -> ConversationMessage:
    message = await uow.session.get(ConversationMessage, message_id)
    if message is None or message.conversation_id != conversation.id:
        raise NotFound("No such message in this conversation.")
    return message


# Writing


async def create_conversation(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    channel: str,
    contact_id: uuid.UUID | None = None,
    enquiry_id: uuid.UUID | None = None,
    visitor_id: uuid.UUID | None = None,
    subject: str | None = None,
) -> Conversation:
    if channel not in CHANNELS:
        raise ValidationFailed(
            "channel", f"Unknown channel; use one of {', '.join(CHANNELS)}.", "invalid_channel"
        )
    now = uow.now()
    conversation = Conversation(
        id=uuid7(),
        workspace_id=workspace_id,
        channel=channel,
        status="open",
        contact_id=contact_id,
        enquiry_id=enquiry_id,
        visitor_id=visitor_id,
        subject=subject,
        last_seq=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(conversation)
    if visitor_id is not None:
        await ensure_participant(uow, conversation, "visitor", str(visitor_id))
    await uow.session.flush()
    uow.record_event(
        "conversation.created",
        conversation_dict(conversation),
        workspace_id=workspace_id,
        conversation_id=conversation.id,
    )
    return conversation


async def conversation_for_enquiry(uow: UnitOfWork, enquiry: Enquiry) -> Conversation:
    """Return the enquiry's conversation, creating it on first use.

    An enquiry that arrived by email gets an email conversation; any other gets a form one.
    Concurrent callers are serialized by locking the enquiry row (a no-op on SQLite, whose
    write transactions already run one at a time).
    """
    await uow.session.execute(
        sa.select(Enquiry.id).where(Enquiry.id == enquiry.id).with_for_update()
    )
    existing = await uow.session.scalar(
        sa.select(Conversation)
        .where(Conversation.enquiry_id == enquiry.id)
        .order_by(Conversation.created_at)
        .limit(1)
    )
    if existing is not None:
        return existing
    return await create_conversation(
        uow,
        workspace_id=enquiry.workspace_id,
        channel="email" if enquiry.source == "email" else "form",
        contact_id=enquiry.contact_id,
        enquiry_id=enquiry.id,
        subject=enquiry.subject,
    )


async def ensure_participant(
    uow: UnitOfWork, conversation: Conversation, participant_type: str, participant_key: str
) -> ConversationParticipant:
    participant = await uow.session.get(
        ConversationParticipant, (conversation.id, participant_type, participant_key)
    )
    if participant is None:
        participant = ConversationParticipant(
            conversation_id=conversation.id,
            participant_type=participant_type,
            participant_key=participant_key,
            workspace_id=conversation.workspace_id,
            last_read_seq=0,
            last_delivered_seq=0,
            last_emailed_seq=0,
            joined_at=uow.now(),
        )
        uow.session.add(participant)
    return participant


async def _next_seq(uow: UnitOfWork, conversation: Conversation) -> int:
    """Take the next message number; the row update serializes concurrent writers."""
    seq = await uow.session.scalar(
        sa.update(Conversation)
        .where(Conversation.id == conversation.id)
        .values(last_seq=Conversation.last_seq + 1)
        .returning(Conversation.last_seq)
    )
    if seq is None:
        raise NotFound("No such conversation in this workspace.")
    conversation.last_seq = seq
    return int(seq)


def check_body(body: str, *, field: str = "body") -> str:
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed(
            field, f"A message has at most {MAX_BODY_CHARS} characters.", "too_long"
        )
    if "\x00" in body:
        raise ValidationFailed(field, "A message cannot contain NUL characters.", "invalid")
    return body


def check_client_message_id(value: str | None, *, field: str = "client_message_id") -> None:
    if value is None:
        return
    if not value or len(value) > MAX_CLIENT_MESSAGE_ID_CHARS or not value.isprintable():
        raise ValidationFailed(
            field,
            f"Use 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} printable characters, for example a UUID.",
            "invalid",
        )


async def _find_by_client_id(
    uow: UnitOfWork, conversation: Conversation, author: Author, client_message_id: str
) -> ConversationMessage | None:
    return await uow.session.scalar(
        sa.select(ConversationMessage).where(
            ConversationMessage.conversation_id == conversation.id,
            ConversationMessage.author_type == author.type,
            ConversationMessage.author_key == author.key,
            ConversationMessage.client_message_id == client_message_id,
        )
    )


async def post_message(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    author: Author,
    kind: str = "message",
    body: str = "",
    attachments: Sequence[dict[str, Any]] = (),
    client_message_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[ConversationMessage, bool]:
    """Store a message and record its events; returns the message and whether it is new.

    A message whose ``client_message_id`` the same author already used in this conversation
    is not stored again: the stored one is returned with False.
    """
    if kind == "note" and author.type != "member":
        raise ValidationFailed("kind", "Only members write internal notes.", "invalid_kind")
    if kind == "system" and author.type != "system":
        raise ValidationFailed("kind", "Use kind message or note.", "invalid_kind")
    check_body(body)
    check_client_message_id(client_message_id)
    if kind != "system" and not body.strip() and not attachments:
        raise ValidationFailed("body", "Write some text or attach a file.", "empty_message")
    if len(attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise ValidationFailed(
            "attachments",
            f"A message has at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments.",
            "too_many",
        )
    if client_message_id is not None:
        existing = await _find_by_client_id(uow, conversation, author, client_message_id)
        if existing is not None:
            return existing, False

    now = uow.now()
    message_data = dict(data or {})
    if author.name:
        message_data["author_name"] = author.name
    try:
        async with uow.session.begin_nested():
            seq = await _next_seq(uow, conversation)
            message = ConversationMessage(
                id=uuid7(),
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                seq=seq,
                kind=kind,
                author_type=author.type,
                author_key=author.key,
                author_user_id=author.id if author.type == "member" else None,
                body=body,
                body_html=render_markdown(body),
                attachments=list(attachments),
                data=message_data,
                client_message_id=client_message_id,
                created_at=now,
            )
            uow.session.add(message)
            await uow.session.flush()
    except IntegrityError:
        # The same client id was stored by a concurrent request between the check and the
        # insert; the savepoint undid this attempt.
        if client_message_id is None:
            raise
        await uow.session.refresh(conversation)
        existing = await _find_by_client_id(uow, conversation, author, client_message_id)
        if existing is None:
            raise
        return existing, False

    if kind == "message":
        conversation.last_message_at = now
        if author.type in ("visitor", "contact") and conversation.status in ("resolved", "snoozed"):
            conversation.status = "open"
            conversation.snoozed_until = None
    conversation.updated_at = now
    if author.type in ("member", "visitor"):
        participant_type = "member" if author.type == "member" else "visitor"
        participant = await ensure_participant(uow, conversation, participant_type, author.key)
        if kind == "message":
            _advance(participant, seq, now)
    record_message_event(uow, conversation, message, "conversation.message.created")
    return message, True


def record_message_event(
    uow: UnitOfWork, conversation: Conversation, message: ConversationMessage, name: str
) -> None:
    uow.record_event(
        name,
        {"message": message_dict(message), "conversation": conversation_dict(conversation)},
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
    )
    if visible_to_visitor(message) and conversation.visitor_id is not None:
        uow.record_event(
            name,
            {"message": visitor_message_dict(message)},
            workspace_id=conversation.workspace_id,
            audience="visitor",
            conversation_id=conversation.id,
        )


def _advance(participant: ConversationParticipant, seq: int, now: datetime) -> bool:
    moved = False
    if seq > participant.last_read_seq:
        participant.last_read_seq = seq
        participant.read_at = now
        moved = True
    if seq > participant.last_delivered_seq:
        participant.last_delivered_seq = seq
        moved = True
    return moved


def read_state_dict(
    conversation: Conversation, participant: ConversationParticipant
) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation.id),
        "participant": {"type": participant.participant_type, "id": participant.participant_key},
        "last_read_seq": participant.last_read_seq,
        "last_delivered_seq": participant.last_delivered_seq,
        "read_at": _iso(participant.read_at),
    }


async def mark_read(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    participant_type: Literal["member", "visitor"],
    participant_key: str,
    seq: int,
) -> ConversationParticipant:
    """Move a participant's read position forward to ``seq``; never backwards, idempotent.

    A position past the newest message is clamped to it. Events are recorded only when the
    position moved: "conversation.read" for staff and, for a member's read of a visitor's
    conversation, a visitor event that shows the visitor their messages were read.
    """
    if seq < 0:
        raise ValidationFailed("seq", "Use a message seq of 0 or more.", "invalid")
    participant = await ensure_participant(uow, conversation, participant_type, participant_key)
    target = min(seq, conversation.last_seq)
    if not _advance(participant, target, uow.now()):
        return participant
    state = read_state_dict(conversation, participant)
    uow.record_event(
        "conversation.read",
        state,
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
    )
    if conversation.visitor_id is not None:
        visitor_state = dict(state)
        if participant_type == "member":
            visitor_state["participant"] = {"type": "staff", "id": None}
        uow.record_event(
            "conversation.read",
            visitor_state,
            workspace_id=conversation.workspace_id,
            audience="visitor",
            conversation_id=conversation.id,
        )
    return participant


# History


@dataclass(frozen=True)
class HistoryPage:
    items: list[ConversationMessage]
    # Whether older (lower seq) and newer (higher seq) messages exist beyond this page.
    has_before: bool
    has_after: bool


async def history(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    before: int | None = None,
    after: int | None = None,
    around: int | None = None,
    limit: int = 50,
    staff: bool = True,
) -> HistoryPage:
    """Read a page of messages in ascending ``seq``.

    ``before`` reads the ``limit`` messages just below that seq, ``after`` those just above
    it, and ``around`` a page centred on that seq (included). With none of them, the newest
    page. Visitors (``staff=False``) see only messages of kind "message".
    """
    base = sa.select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation.id
    )
    if not staff:
        base = base.where(ConversationMessage.kind == "message")
    seq = ConversationMessage.seq

    async def older(below: int, count: int) -> tuple[list[ConversationMessage], bool]:
        rows = list(
            await uow.session.scalars(base.where(seq < below).order_by(seq.desc()).limit(count + 1))
        )
        return list(reversed(rows[:count])), len(rows) > count

    async def newer(above: int, count: int) -> tuple[list[ConversationMessage], bool]:
        rows = list(
            await uow.session.scalars(base.where(seq > above).order_by(seq).limit(count + 1))
        )
        return rows[:count], len(rows) > count

    if after is not None:
        items, has_after = await newer(after, limit)
        has_before = await _exists(uow, base.where(seq <= after))
        return HistoryPage(items, has_before, has_after)
    if around is not None:
        half = max(limit // 2, 1)
        head, has_before = await older(around, half)
        tail, has_after = await newer(around - 1, limit - len(head))
        return HistoryPage(head + tail, has_before, has_after)
    below = before if before is not None else conversation.last_seq + 1
    items, has_before = await older(below, limit)
    has_after = before is not None and await _exists(uow, base.where(seq >= before))
    return HistoryPage(items, has_before, has_after)


async def _exists(uow: UnitOfWork, statement: sa.Select[Any]) -> bool:
    return bool(await uow.session.scalar(sa.select(statement.limit(1).exists())))


async def unread_counts(
    uow: UnitOfWork, conversation_ids: Sequence[uuid.UUID], *, user_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    """Count, per conversation, the messages newer than the member's read position.

    Notes and system messages count too, except the member's own messages.
    """
    if not conversation_ids:
        return {}
    participant = aliased(ConversationParticipant)
    read_seq = sa.func.coalesce(participant.last_read_seq, 0)
    statement = (
        sa.select(ConversationMessage.conversation_id, sa.func.count())
        .select_from(ConversationMessage)
        .outerjoin(
            participant,
            sa.and_(
                participant.conversation_id == ConversationMessage.conversation_id,
                participant.participant_type == "member",
                participant.participant_key == str(user_id),
            ),
        )
        .where(
            ConversationMessage.conversation_id.in_(conversation_ids),
            ConversationMessage.seq > read_seq,
            ConversationMessage.author_key != str(user_id),
            ConversationMessage.kind != "system",
        )
        .group_by(ConversationMessage.conversation_id)
    )
    counts = {row[0]: int(row[1]) for row in await uow.session.execute(statement)}
    return {conversation_id: counts.get(conversation_id, 0) for conversation_id in conversation_ids}
