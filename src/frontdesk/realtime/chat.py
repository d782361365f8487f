"""Chat frames that read or write the database: subscribe, send and read.

Every frame is authorized against the database when it arrives: a member reaches the
conversations of the connection's workspace, a visitor only their own, and anything else
looks like a conversation that does not exist. Service errors become error frames; the
connection stays open.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.conversations import chat_service, service
from frontdesk.conversations.attachments import resolve_attachments
from frontdesk.conversations.models import (
    ChatSettings,
    ChatVisitor,
    Conversation,
    ConversationParticipant,
)
from frontdesk.core.errors import NotFound, ValidationFailed
from frontdesk.core.group_commit import Rejection
from frontdesk.core.origins import normalize_origin
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.realtime.connection import Connection
from frontdesk.realtime.protocol import (
    CloseCode,
    ReadFrame,
    Rejected,
    SendFrame,
    encode,
    error_frame,
)
from frontdesk.runtime import Runtime


async def find_visitor(session: AsyncSession, connection: Connection) -> ChatVisitor | None:
    """Return the connection's visitor while it exists, belongs to the workspace and is active."""
    visitor = await session.get(ChatVisitor, connection.visitor_id)
    if visitor is None or visitor.workspace_id != connection.workspace_id:
        return None
    if visitor.revoked_at is not None:
        return None
    return visitor


async def visitor_rejection_reason(
    session: AsyncSession, connection: Connection, *, public_url: str
) -> str | None:
    """Return why the workspace's chat rejects this visitor socket, or None when it accepts it.

    The chat rejects the socket when it is turned off. It also rejects a socket that a
    browser opened from a page whose origin the chat settings do not allow. The rule is the
    visitor API's: the allowed origins, Frontdesk's public URL and Frontdesk's own host. Settings not created
    yet mean the defaults: on, for every origin. Clients that send no Origin are not browsers
    and are not checked.
    """
    settings = await session.get(ChatSettings, connection.workspace_id)
    if settings is None:
        return None
    if not settings.enabled:
        return "chat disabled"
    origin = connection.websocket.headers.get("origin")
    if origin is None or not settings.allowed_origins:
        return None
    own_url = connection.websocket.url
    http_scheme = "https" if own_url.scheme == "wss" else "http"
    accepted = set(settings.allowed_origins)
    for candidate in (public_url, f"{http_scheme}://{own_url.netloc}"):
        try:
            accepted.add(normalize_origin(candidate))
        except ValueError:
            continue
    try:
        allowed = normalize_origin(origin) in accepted
    except ValueError:
        allowed = False
    return None if allowed else "origin not allowed"


async def get_active_visitor(session: AsyncSession, connection: Connection) -> ChatVisitor:
    """Return the visitor; raises Rejected (4003) when the visitor was revoked or deleted."""
    visitor = await find_visitor(session, connection)
    if visitor is None:
        raise Rejected(CloseCode.SESSION_ENDED, "visitor revoked")
    return visitor


async def visitor_conversation_ids(session: AsyncSession, connection: Connection) -> set[uuid.UUID]:
    rows = await session.scalars(
        sa.select(Conversation.id).where(
            Conversation.workspace_id == connection.workspace_id,
            Conversation.visitor_id == connection.visitor_id,
        )
    )
    return set(rows)


async def get_conversation_for(
    session: AsyncSession, connection: Connection, conversation_id: uuid.UUID
) -> Conversation:
    """Return the conversation when the connection may use it; raises NotFound otherwise."""
    if connection.is_visitor:
        await get_active_visitor(session, connection)
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.workspace_id != connection.workspace_id:
        raise NotFound("No such conversation.")
    if connection.is_visitor:
        if conversation.visitor_id != connection.visitor_id:
            raise NotFound("No such conversation.")
        connection.visitor_conversations.add(conversation.id)
    return conversation


async def subscription_state(
    session: AsyncSession, connection: Connection, conversation: Conversation
) -> dict[str, Any]:
    """Return the subscribed frame without the typing list: last seq and read positions.

    Members see every participant. A visitor sees their own position and one "staff" entry
    holding the furthest position of any member, as the visitor's read events show it.
    """
    participants = list(
        await session.scalars(
            sa.select(ConversationParticipant)
            .where(ConversationParticipant.conversation_id == conversation.id)
            .order_by(
                ConversationParticipant.participant_type, ConversationParticipant.participant_key
            )
        )
    )
    read: list[dict[str, Any]] = []
    if connection.is_visitor:
        members = [p for p in participants if p.participant_type == "member"]
        if members:
            read.append(
                {
                    "participant": {"type": "staff", "id": None},
                    "last_read_seq": max(p.last_read_seq for p in members),
                    "last_delivered_seq": max(p.last_delivered_seq for p in members),
                }
            )
        read.extend(
            _read_entry(p)
            for p in participants
            if p.participant_type == "visitor" and p.participant_key == str(connection.visitor_id)
        )
    else:
        read.extend(_read_entry(p) for p in participants)
    return {
        "type": "subscribed",
        "conversation_id": str(conversation.id),
        "last_seq": conversation.last_seq,
        "read": read,
    }


def _read_entry(participant: ConversationParticipant) -> dict[str, Any]:
    return {
        "participant": {"type": participant.participant_type, "id": participant.participant_key},
        "last_read_seq": participant.last_read_seq,
        "last_delivered_seq": participant.last_delivered_seq,
    }


async def send_message(runtime: Runtime, connection: Connection, frame: SendFrame) -> str:
    """Store the message and return the sent frame, or the error frame for the client."""

    async def store(uow: UnitOfWork) -> dict[str, Any] | Rejection:
        if connection.is_visitor:
            try:
                conversation = await get_conversation_for(
                    uow.session, connection, frame.conversation_id
                )
            except NotFound as exc:
                # Nothing is written yet, so the rest of the group goes on.
                return Rejection(exc)
            return await _send_as_visitor(uow, connection, conversation, frame)
        return await _send_as_member(uow, connection, frame)

    try:
        service.check_message(
            author=service.Author(type="visitor" if connection.is_visitor else "member"),
            kind=frame.kind,
            body=frame.body,
            attachments=frame.attachments,
            client_message_id=frame.client_message_id,
        )
        # Messages that several clients send at the same moment share one transaction.
        message_fields = await runtime.group_commit.run(store)
    except (ValidationFailed, NotFound) as exc:
        return problem_frame(
            exc,
            client_message_id=frame.client_message_id,
            conversation_id=str(frame.conversation_id),
        )
    return encode(
        {"type": "sent", "client_message_id": frame.client_message_id, "message": message_fields}
    )


async def _send_as_member(
    uow: UnitOfWork, connection: Connection, frame: SendFrame
) -> dict[str, Any] | Rejection:
    """Post the member's message. An error found before anything is written is returned as
    a ``Rejection``, so the rest of the group goes on."""
    # The member's name as the login check read it when the connection opened.
    name = connection.name
    try:
        attachments = await resolve_attachments(
            uow, workspace_id=connection.workspace_id, object_ids=frame.attachments
        )
    except ValidationFailed as exc:
        return Rejection(exc)
    try:
        message, _created = await service.post_message(
            uow,
            # The conversation is loaded, and checked to be in the member's workspace, by the
            # statement that numbers the message.
            service.ConversationRef(workspace_id=connection.workspace_id, id=frame.conversation_id),
            author=service.Author(type="member", id=connection.user_id, name=name),
            kind=frame.kind,
            body=frame.body,
            attachments=attachments,
            client_message_id=frame.client_message_id,
        )
    except NotFound:
        # The same error message that subscribe and read return for a conversation the member
        # cannot use.
        return Rejection(NotFound("No such conversation."))
    return service.message_dict(message)


async def _send_as_visitor(
    uow: UnitOfWork, connection: Connection, conversation: Conversation, frame: SendFrame
) -> dict[str, Any]:
    """Post through the visitor API's use case, so uploads are checked and marked alike.

    A visitor attaches only their own uploads: objects of the "chat-uploads" bucket whose
    user_metadata names the visitor.
    """
    visitor = await get_active_visitor(uow.session, connection)
    connection.name = visitor.name
    if frame.kind != "message":
        raise ValidationFailed("kind", "Only members write internal notes.", "invalid_kind")
    message, _created = await chat_service.send_visitor_message(
        uow,
        visitor,
        conversation,
        body=frame.body,
        client_message_id=frame.client_message_id,
        upload_ids=frame.attachments,
    )
    return service.visitor_message_dict(message)


async def mark_read(runtime: Runtime, connection: Connection, frame: ReadFrame) -> str | None:
    """Move the connection's read position; returns an error frame, or None on success."""
    try:
        async with unit_of_work(runtime) as uow:
            conversation = await get_conversation_for(
                uow.session, connection, frame.conversation_id
            )
            if connection.is_visitor:
                await service.mark_read(
                    uow,
                    conversation,
                    participant_type="visitor",
                    participant_key=str(connection.visitor_id),
                    seq=frame.seq,
                )
            else:
                await service.mark_read(
                    uow,
                    conversation,
                    participant_type="member",
                    participant_key=str(connection.user_id),
                    seq=frame.seq,
                )
    except (ValidationFailed, NotFound) as exc:
        return problem_frame(exc, conversation_id=str(frame.conversation_id))
    return None


def problem_frame(
    exc: ValidationFailed | NotFound,
    *,
    conversation_id: str,
    client_message_id: str | None = None,
) -> str:
    """Turn a service error into an error frame; a field error names its field."""
    extra: dict[str, Any] = {"conversation_id": conversation_id}
    if isinstance(exc, ValidationFailed) and exc.errors:
        first = exc.errors[0]
        if len(exc.errors) > 1:
            extra["errors"] = [error.model_dump() for error in exc.errors]
        return error_frame(
            first.code,
            first.message,
            field=first.field,
            client_message_id=client_message_id,
            **extra,
        )
    return error_frame(exc.code, exc.detail, client_message_id=client_message_id, **extra)
