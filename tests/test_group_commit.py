"""Group commit: units of work that wait together share one transaction, and a failing unit
loses nothing of the others."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from factories import Staff, count_rows, events_named, owner
from frontdesk.conversations import service
from frontdesk.conversations.models import ConversationMessage, ConversationParticipant
from frontdesk.core.errors import NotFound, ValidationFailed
from frontdesk.core.group_commit import GroupCommit, Rejection
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.runtime import Runtime

API = "/api/v1/conversations"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


async def _conversation(client: httpx.AsyncClient, staff: Staff) -> uuid.UUID:
    response = await client.post(API, json={"channel": "chat"}, headers=staff.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


@pytest.fixture
async def chat(client: httpx.AsyncClient) -> tuple[Staff, uuid.UUID]:
    """An owner of a new workspace and a chat conversation in it."""
    staff = await owner(client)
    return staff, await _conversation(client, staff)


def _send(staff: Staff, conversation_id: uuid.UUID, text: str, *, fail: bool = False) -> Any:
    """A unit that posts ``text`` as the staff member and, with ``fail``, then raises."""

    async def unit(uow: UnitOfWork) -> ConversationMessage:
        message, _created = await service.post_message(
            uow,
            service.ConversationRef(workspace_id=staff.workspace_id, id=conversation_id),
            author=service.Author(type="member", id=staff.user_id, name="Agent"),
            body=text,
            client_message_id=text,
        )
        if fail:
            raise ValidationFailed("body", "Rejected after writing.", "rejected")
        return message

    return unit


async def _stored(runtime: Runtime, conversation_id: uuid.UUID) -> list[tuple[int, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(ConversationMessage.seq, ConversationMessage.body)
            .where(ConversationMessage.conversation_id == conversation_id)
            .order_by(ConversationMessage.seq)
        )
        return [(seq, body) for seq, body in rows]


async def test_units_waiting_together_share_one_transaction(
    chat: tuple[Staff, uuid.UUID], runtime: Runtime
) -> None:
    staff, conversation_id = chat
    before = runtime.group_commit.transactions

    messages = await asyncio.gather(
        *(runtime.group_commit.run(_send(staff, conversation_id, f"m{n}")) for n in range(5))
    )

    assert runtime.group_commit.transactions - before == 1
    # Each unit saw the numbers the units before it took.
    assert [message.seq for message in messages] == [1, 2, 3, 4, 5]
    assert await _stored(runtime, conversation_id) == [(n + 1, f"m{n}") for n in range(5)]
    events = await events_named(runtime, "conversation.message.created")
    positions = [event.position for event in events]
    assert len(positions) == 5
    assert positions == sorted(positions)
    async with runtime.sessionmaker() as session:
        sender = await session.get(
            ConversationParticipant, (conversation_id, "member", str(staff.user_id))
        )
    assert sender is not None
    assert (sender.last_read_seq, sender.last_delivered_seq) == (5, 5)


async def test_failing_unit_loses_nothing_of_the_others(
    chat: tuple[Staff, uuid.UUID], runtime: Runtime
) -> None:
    staff, conversation_id = chat
    before = runtime.group_commit.transactions

    outcomes = await asyncio.gather(
        runtime.group_commit.run(_send(staff, conversation_id, "first")),
        runtime.group_commit.run(_send(staff, conversation_id, "rejected", fail=True)),
        runtime.group_commit.run(_send(staff, conversation_id, "third")),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], ValidationFailed)
    assert outcomes[1].errors[0].code == "rejected"
    # The group rolled back, then each unit ran in a transaction of its own.
    assert runtime.group_commit.transactions - before == 4
    # The failed unit's message and number were rolled back with it.
    assert await _stored(runtime, conversation_id) == [(1, "first"), (2, "third")]
    assert len(await events_named(runtime, "conversation.message.created")) == 2


async def test_group_size_is_bounded(chat: tuple[Staff, uuid.UUID], runtime: Runtime) -> None:
    staff, conversation_id = chat
    group_commit = GroupCommit(runtime, max_group_size=2)

    await asyncio.gather(
        *(group_commit.run(_send(staff, conversation_id, f"m{n}")) for n in range(5))
    )

    assert (group_commit.transactions, group_commit.units) == (3, 5)
    assert len(await _stored(runtime, conversation_id)) == 5


async def test_cancelled_caller_does_not_cancel_its_unit(
    chat: tuple[Staff, uuid.UUID], runtime: Runtime
) -> None:
    staff, conversation_id = chat

    caller = asyncio.create_task(runtime.group_commit.run(_send(staff, conversation_id, "kept")))
    await asyncio.sleep(0)
    caller.cancel()
    await runtime.group_commit.close()

    assert caller.cancelled()
    assert await _stored(runtime, conversation_id) == [(1, "kept")]


async def test_agents_posting_at_once_each_get_their_message(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    conversation_ids = [await _conversation(client, staff) for _ in range(3)]
    units_before = runtime.group_commit.units

    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/{conversation_id}/messages",
                json={"body": f"to {index % 3}"},
                headers=staff.headers,
            )
            for index, conversation_id in enumerate(conversation_ids * 2)
        ),
        client.post(f"{API}/{uuid.uuid4()}/messages", json={"body": "lost"}, headers=staff.headers),
        client.post(
            f"{API}/{conversation_ids[0]}/messages", json={"body": " "}, headers=staff.headers
        ),
    )

    assert [response.status_code for response in responses] == [201] * 6 + [404, 422]
    assert responses[-1].json()["errors"][0]["code"] == "empty_message"
    # The empty message was rejected before it joined a group; the unknown conversation is
    # found out only by the statement that numbers the message.
    assert runtime.group_commit.units - units_before == 7
    for index, conversation_id in enumerate(conversation_ids):
        assert await _stored(runtime, conversation_id) == [(1, f"to {index}"), (2, f"to {index}")]
    assert await count_rows(runtime, ConversationMessage) == 6


async def test_rejection_keeps_the_group_running(
    chat: tuple[Staff, uuid.UUID], runtime: Runtime
) -> None:
    staff, conversation_id = chat
    before = runtime.group_commit.transactions

    async def reject(_uow: UnitOfWork) -> Rejection:
        return Rejection(NotFound("No such conversation."))

    outcomes = await asyncio.gather(
        runtime.group_commit.run(_send(staff, conversation_id, "first")),
        runtime.group_commit.run(reject),
        runtime.group_commit.run(_send(staff, conversation_id, "third")),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], NotFound)
    # No rollback and no rerun: one transaction for the three units.
    assert runtime.group_commit.transactions - before == 1
    assert await _stored(runtime, conversation_id) == [(1, "first"), (2, "third")]


async def test_concurrent_resend_stored_once(
    chat: tuple[Staff, uuid.UUID], runtime: Runtime
) -> None:
    staff, conversation_id = chat
    target = service.ConversationRef(workspace_id=staff.workspace_id, id=conversation_id)
    author = service.Author(type="member", id=staff.user_id, name="Agent")
    stored_first = asyncio.Event()
    release_first = asyncio.Event()

    async def send(uow: UnitOfWork) -> tuple[ConversationMessage, bool]:
        return await service.post_message(
            uow, target, author=author, body="hello", client_message_id="resent"
        )

    async def first_copy() -> ConversationMessage:
        async with unit_of_work(runtime) as uow:
            message, created = await send(uow)
            assert created
            stored_first.set()
            # The transaction keeps the conversation's row lock (SQLite: the write lock).
            await release_first.wait()
        return message

    first = asyncio.create_task(first_copy())
    await stored_first.wait()
    before = runtime.group_commit.transactions
    second = asyncio.create_task(runtime.group_commit.run(send))
    await asyncio.sleep(0.2)
    assert not second.done()
    release_first.set()

    message = await first
    repeated, created = await second
    assert repeated.id == message.id
    assert created is False
    assert await _stored(runtime, conversation_id) == [(1, "hello")]
    # On PostgreSQL the second copy's INSERT fails on the unique client id once the first
    # commits, and the unit runs again in a transaction of its own, which finds the first.
    # On SQLite the second transaction starts only after the first committed.
    reruns = 1 if runtime.settings.is_sqlite else 2
    assert runtime.group_commit.transactions - before == reruns
