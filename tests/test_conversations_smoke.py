"""First checks of the conversation service: numbering, dedupe, read positions, history."""

from __future__ import annotations

import uuid

import pytest

from factories import Staff, owner
from frontdesk.conversations import service
from frontdesk.core.errors import NotFound
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime


async def test_messages_are_numbered_deduplicated_and_read(client, runtime: Runtime) -> None:
    staff = await owner(client)
    member = service.Author(type="member", id=staff.user_id, name="Ana")
    async with unit_of_work(runtime) as uow:
        conversation = await service.create_conversation(
            uow, workspace_id=staff.workspace_id, channel="chat"
        )
        first, created = await service.post_message(
            uow, conversation, author=member, body="**hi**", client_message_id="c1"
        )
        again, created_again = await service.post_message(
            uow, conversation, author=member, body="**hi**", client_message_id="c1"
        )
        note, _ = await service.post_message(
            uow, conversation, author=member, kind="note", body="n"
        )
        conversation_id = conversation.id
    assert created and not created_again and again.id == first.id
    assert (first.seq, note.seq) == (1, 2)
    assert first.body_html == "<p><strong>hi</strong></p>"
    async with unit_of_work(runtime) as uow:
        conversation = await service.get_conversation(
            uow, workspace_id=staff.workspace_id, conversation_id=conversation_id
        )
        page = await service.history(uow, conversation, limit=1)
        assert [m.seq for m in page.items] == [2] and page.has_before and not page.has_after
        page = await service.history(uow, conversation, after=0, limit=5, staff=False)
        assert [m.seq for m in page.items] == [1]
        participant = await service.mark_read(
            uow, conversation, participant_type="member", participant_key="x", seq=99
        )
        assert participant.last_read_seq == 2
        participant = await service.mark_read(
            uow, conversation, participant_type="member", participant_key="x", seq=1
        )
        assert participant.last_read_seq == 2
        counts = await service.unread_counts(uow, [conversation.id], user_id=staff.user_id)
        assert counts == {conversation.id: 0}


async def _chat_ref(runtime: Runtime, workspace_id: uuid.UUID) -> service.ConversationRef:
    """Create a chat conversation in the workspace and return its reference."""
    async with unit_of_work(runtime) as uow:
        conversation = await service.create_conversation(
            uow, workspace_id=workspace_id, channel="chat"
        )
    return service.ConversationRef(workspace_id=workspace_id, id=conversation.id)


def _member(staff: Staff) -> service.Author:
    return service.Author(type="member", id=staff.user_id, name="Ana")


async def test_post_by_ref_loads_numbers_and_deduplicates(client, runtime: Runtime) -> None:
    staff = await owner(client)
    ref = await _chat_ref(runtime, staff.workspace_id)

    async with unit_of_work(runtime) as uow:
        first, created = await service.post_message(
            uow, ref, author=_member(staff), body="hi", client_message_id="c1"
        )
    async with unit_of_work(runtime) as uow:
        again, created_again = await service.post_message(
            uow, ref, author=_member(staff), body="hi", client_message_id="c1"
        )
        second, _ = await service.post_message(uow, ref, author=_member(staff), body="more")

    assert created
    assert not created_again
    assert again.id == first.id
    assert (first.seq, second.seq) == (1, 2)


async def test_post_by_ref_updates_loaded_conversation(client, runtime: Runtime) -> None:
    staff = await owner(client)
    ref = await _chat_ref(runtime, staff.workspace_id)

    async with unit_of_work(runtime) as uow:
        loaded = await service.get_conversation(
            uow, workspace_id=staff.workspace_id, conversation_id=ref.id
        )
        message, _ = await service.post_message(uow, ref, author=_member(staff), body="hi")

        assert message.seq == 1
        assert loaded.last_seq == 1
        assert loaded.last_message_at is not None


async def test_post_by_ref_other_workspace_not_found(client, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    theirs = await _chat_ref(runtime, other.workspace_id)
    ref = service.ConversationRef(workspace_id=staff.workspace_id, id=theirs.id)

    for client_message_id in (None, "c1"):
        with pytest.raises(NotFound):
            async with unit_of_work(runtime) as uow:
                await service.post_message(
                    uow, ref, author=_member(staff), body="hi", client_message_id=client_message_id
                )

    async with unit_of_work(runtime) as uow:
        stored = await service.get_conversation(
            uow, workspace_id=other.workspace_id, conversation_id=theirs.id
        )
        assert stored.last_seq == 0
