"""Email about an enquiry lands in the enquiry's conversation, both ways."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa

from factories import owner
from frontdesk.conversations.models import Conversation, ConversationMessage
from frontdesk.runtime import Runtime
from test_email_inbound_api import mime, send_template_about, upload


async def thread(runtime: Runtime, enquiry_id: str) -> list[ConversationMessage]:
    async with runtime.sessionmaker() as session:
        conversations = list(
            await session.scalars(
                sa.select(Conversation).where(Conversation.enquiry_id == uuid.UUID(enquiry_id))
            )
        )
        assert len(conversations) == 1
        assert conversations[0].channel == "email"
        messages = await session.scalars(
            sa.select(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversations[0].id)
            .order_by(ConversationMessage.seq)
        )
        return list(messages)


async def test_new_email_starts_conversation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    received = await upload(client, staff, mime(body="Hello, are you free on 14 June?"))

    [message] = await thread(runtime, received["enquiry_id"])

    assert message.author_type == "contact"
    assert message.kind == "message"
    assert message.body == "Hello, are you free on 14 June?"
    assert message.data["inbound_email_id"] == received["id"]
    assert message.data["author_name"] == "Camille Martin"


async def test_sent_and_reply_join_conversation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    first = await upload(client, staff, mime())
    sent = await send_template_about(client, runtime, staff, first["enquiry_id"])
    await upload(
        client,
        staff,
        mime(body="Great, see you then.", In_Reply_To=sent.message_id),
    )

    messages = await thread(runtime, first["enquiry_id"])

    assert [m.author_type for m in messages] == ["contact", "member", "contact"]
    assert [m.seq for m in messages] == [1, 2, 3]
    assert messages[1].author_user_id == staff.user_id
    assert messages[1].data["email_id"] == str(sent.id)
    assert messages[2].body == "Great, see you then."


async def test_long_email_is_shortened(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    received = await upload(client, staff, mime(body="word " * 5000))

    [message] = await thread(runtime, received["enquiry_id"])

    assert len(message.body) <= 10_000
    assert message.body.endswith("[shortened: the full email is stored]")
