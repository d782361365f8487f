"""First checks of the conversation service: numbering, dedupe, read positions, history."""

from __future__ import annotations

from factories import owner
from frontdesk.conversations import service
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
