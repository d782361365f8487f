"""Email fallback: staff replies that a chat visitor has not read go to the email they left.

When a member posts a message in a chat conversation whose visitor left an email address,
``schedule_email_fallback`` enqueues the ``chat.email_fallback`` job to run after
``chat_email_fallback_delay_seconds``. The job emails the staff messages that the visitor
has neither read nor received by email yet, and moves the visitor's ``last_emailed_seq``
past them, so each message is emailed at most once even when jobs run twice or together.
"""

from __future__ import annotations

import html
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.conversations.models import (
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
)
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.service import queue_email
from frontdesk.workspaces.models import Workspace

log = structlog.get_logger()

EMAIL_FALLBACK_JOB = "chat.email_fallback"
EMAIL_KIND = "chat_reply"
# Messages per email; later ones follow in the email of a later message's job.
MAX_MESSAGES_PER_EMAIL = 50


async def schedule_email_fallback(
    uow: UnitOfWork, conversation: Conversation, message: ConversationMessage
) -> None:
    """Enqueue the fallback for a member's message, when the chat's visitor left an email."""
    if conversation.channel != "chat" or conversation.visitor_id is None:
        return
    if message.kind != "message" or message.author_type != "member":
        return
    visitor = await uow.session.get(ChatVisitor, conversation.visitor_id)
    if visitor is None or not visitor.email or visitor.revoked_at is not None:
        return
    uow.enqueue(
        EMAIL_FALLBACK_JOB,
        {"conversation_id": str(conversation.id), "seq": message.seq},
        run_at=uow.now() + timedelta(seconds=uow.settings.chat_email_fallback_delay_seconds),
        workspace_id=conversation.workspace_id,
    )


def compose_text(workspace_name: str, messages: list[ConversationMessage]) -> str:
    """Write the plain-text email: each message with its author, then how to reply."""
    parts = [f"You have a new reply from {workspace_name} in the website chat.", ""]
    for message in messages:
        author = message.data.get("author_name") or workspace_name
        parts.append(f"{author} wrote:")
        parts.append(message.body.strip())
        for attachment in message.attachments:
            parts.append(f"[Attachment: {attachment.get('filename', 'file')}]")
        parts.append("")
    parts.append("To answer, reply in the chat on our website; replies to this email are not read.")
    return "\n".join(parts) + "\n"


def text_as_html(text: str) -> str:
    """Return the plain text as escaped HTML paragraphs.

    The SMTP transport always sends an HTML alternative, so an empty one would show as a
    blank message in clients that prefer HTML.
    """
    paragraphs = [part for part in text.strip().split("\n\n") if part.strip()]
    return "".join(
        "<p>" + html.escape(paragraph).replace("\n", "<br>\n") + "</p>\n"
        for paragraph in paragraphs
    )


@job_handler(EMAIL_FALLBACK_JOB)
async def send_email_fallback(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Email the visitor the staff messages they have not read, unless they read in time.

    The visitor's participant row is locked first (FOR UPDATE on PostgreSQL; SQLite has one
    writer at a time), so two runs cannot both see the same ``last_emailed_seq``.
    """
    conversation_id = uuid.UUID(payload["conversation_id"])
    seq = int(payload["seq"])
    conversation = await uow.session.get(Conversation, conversation_id)
    if conversation is None or conversation.visitor_id is None:
        return
    participant = await uow.session.get(
        ConversationParticipant,
        (conversation.id, "visitor", str(conversation.visitor_id)),
        with_for_update=True,
        populate_existing=True,
    )
    if participant is None:
        return
    floor = max(participant.last_read_seq, participant.last_emailed_seq)
    if floor >= seq:
        log.info(
            "chat.email_fallback_skipped",
            conversation_id=str(conversation.id),
            reason="read" if participant.last_read_seq >= seq else "emailed",
        )
        return
    visitor = await uow.session.get(ChatVisitor, conversation.visitor_id)
    if visitor is None or not visitor.email or visitor.revoked_at is not None:
        return

    messages = list(
        await uow.session.scalars(
            sa.select(ConversationMessage)
            .where(
                ConversationMessage.conversation_id == conversation.id,
                ConversationMessage.seq > floor,
                ConversationMessage.kind == "message",
                ConversationMessage.author_type == "member",
                ConversationMessage.deleted_at.is_(None),
            )
            .order_by(ConversationMessage.seq)
            .limit(MAX_MESSAGES_PER_EMAIL)
        )
    )
    if not messages:
        return
    workspace_name = await uow.session.scalar(
        sa.select(Workspace.name).where(Workspace.id == conversation.workspace_id)
    )
    name = workspace_name or "the team"
    text = compose_text(name, messages)
    await queue_email(
        uow,
        kind=EMAIL_KIND,
        to=visitor.email,
        subject=f"New reply from {name}",
        text=text,
        html=text_as_html(text),
        workspace_id=conversation.workspace_id,
    )
    participant.last_emailed_seq = messages[-1].seq
    log.info(
        "chat.email_fallback_queued",
        conversation_id=str(conversation.id),
        messages=len(messages),
        last_seq=messages[-1].seq,
    )
