"""Staff conversation API: inbox list, changes, snooze wake-up, messages, reads, enquiries."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import Staff, count_rows, cursor_listener, events_named, member, owner
from frontdesk.contacts.models import Contact
from frontdesk.conversations import service
from frontdesk.conversations.jobs import WAKE_JOB
from frontdesk.conversations.models import (
    ChatVisitor,
    Conversation,
    ConversationMessage,
    MessageRevision,
)
from frontdesk.core.clock import FrozenClock, iso_utc
from frontdesk.core.jobs import schedule_periodic
from frontdesk.core.models import Event, Job
from frontdesk.core.uow import unit_of_work
from frontdesk.enquiries.service import create_enquiry
from frontdesk.runtime import Runtime
from frontdesk.storage.scanning import ObjectScan

API = "/api/v1/conversations"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


# --- Helpers --------------------------------------------------------------------------------


async def _create(client: httpx.AsyncClient, staff: Staff, **body: Any) -> dict[str, Any]:
    response = await client.post(API, json={"channel": "chat", **body}, headers=staff.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _post(
    client: httpx.AsyncClient, staff: Staff, conversation_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"{API}/{conversation_id}/messages", json=body, headers=staff.headers)


async def _message(
    client: httpx.AsyncClient, staff: Staff, conversation_id: str, text: str, **body: Any
) -> dict[str, Any]:
    response = await _post(client, staff, conversation_id, body=text, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _get(client: httpx.AsyncClient, staff: Staff, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=staff.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _patch(
    client: httpx.AsyncClient, staff: Staff, conversation_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(f"{API}/{conversation_id}", json=body, headers=staff.headers)


def _fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [error["field"] for error in response.json()["errors"]]


async def _contact(runtime: Runtime, workspace_id: uuid.UUID, **values: Any) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        contact = Contact(
            workspace_id=workspace_id,
            name=values.get("name", "Camille"),
            email=values.get("email", "camille@example.org"),
            created_at=uow.now(),
            updated_at=uow.now(),
        )
        uow.session.add(contact)
        await uow.session.flush()
        return contact.id


async def _visitor_conversation(runtime: Runtime, workspace_id: uuid.UUID) -> str:
    """A chat conversation with a website visitor who wrote one message."""
    async with unit_of_work(runtime) as uow:
        visitor = ChatVisitor(
            workspace_id=workspace_id,
            name="Visiting Vera",
            created_at=uow.now(),
            last_seen_at=uow.now(),
        )
        uow.session.add(visitor)
        await uow.session.flush()
        conversation = await service.create_conversation(
            uow, workspace_id=workspace_id, channel="chat", visitor_id=visitor.id
        )
        await service.post_message(
            uow,
            conversation,
            author=service.Author(type="visitor", id=visitor.id, name="Visiting Vera"),
            body="Hello there",
            client_message_id="v1",
        )
        return str(conversation.id)


async def _snapshot(runtime: Runtime) -> tuple[int, int, int, int]:
    return (
        await count_rows(runtime, Conversation),
        await count_rows(runtime, ConversationMessage),
        await count_rows(runtime, MessageRevision),
        await count_rows(runtime, Event),
    )


# --- Creating and reading -------------------------------------------------------------------


async def test_create_and_get_conversation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    contact_id = await _contact(runtime, staff.workspace_id)

    created = await _create(
        client, staff, channel="email", contact_id=str(contact_id), subject="  Wedding  "
    )

    assert created["channel"] == "email"
    assert created["status"] == "open"
    assert created["contact_id"] == str(contact_id)
    assert created["subject"] == "Wedding"
    assert created["unread_count"] == 0
    assert created["participants"] == []
    detail = await _get(client, staff, f"{API}/{created['id']}")
    assert detail["id"] == created["id"]
    assert [event.data["id"] for event in await events_named(runtime, "conversation.created")] == [
        created["id"]
    ]


async def test_create_rejects_other_workspace_ids(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    other = await owner(client)
    their_contact = await _contact(runtime, other.workspace_id)
    async with unit_of_work(runtime) as uow:
        enquiry, _ = await create_enquiry(
            uow,
            workspace_id=other.workspace_id,
            contact=None,
            source="manual",
            source_details={},
            answers={"message": "hi"},
        )
        their_enquiry = enquiry.id
    before = await _snapshot(runtime)

    by_contact = await client.post(
        API, json={"channel": "chat", "contact_id": str(their_contact)}, headers=staff.headers
    )
    by_enquiry = await client.post(
        API, json={"channel": "chat", "enquiry_id": str(their_enquiry)}, headers=staff.headers
    )
    bad_channel = await client.post(API, json={"channel": "fax"}, headers=staff.headers)

    assert by_contact.status_code == 422
    assert _fields(by_contact) == ["contact_id"]
    assert by_enquiry.status_code == 422
    assert _fields(by_enquiry) == ["enquiry_id"]
    assert bad_channel.status_code == 422
    assert _fields(bad_channel) == ["channel"]
    assert await _snapshot(runtime) == before


async def test_create_with_enquiry_takes_its_contact(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/enquiries",
        json={"message": "Call me", "contact": {"name": "Ada", "email": "ada@example.com"}},
        headers=staff.headers,
    )
    enquiry = response.json()

    created = await _create(client, staff, channel="form", enquiry_id=enquiry["id"])

    assert created["enquiry_id"] == enquiry["id"]
    assert created["contact_id"] == enquiry["contact"]["id"]


async def test_other_workspace_ids_are_not_found(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    other = await owner(client)
    theirs = await _create(client, other)
    message = await _message(client, other, theirs["id"], "private")
    conversation_path = f"{API}/{theirs['id']}"
    message_path = f"{conversation_path}/messages/{message['id']}"
    before = await _snapshot(runtime)

    responses = [
        await client.get(conversation_path, headers=staff.headers),
        await client.patch(conversation_path, json={"status": "resolved"}, headers=staff.headers),
        await client.get(f"{conversation_path}/messages", headers=staff.headers),
        await _post(client, staff, theirs["id"], body="hi"),
        await client.patch(message_path, json={"body": "x"}, headers=staff.headers),
        await client.delete(message_path, headers=staff.headers),
        await client.get(f"{message_path}/revisions", headers=staff.headers),
        await client.post(f"{conversation_path}/read", json={"seq": 1}, headers=staff.headers),
    ]

    assert [response.status_code for response in responses] == [404] * len(responses)
    assert await _snapshot(runtime) == before
    listed = await _get(client, staff, API)
    assert listed["items"] == []


async def test_message_of_another_conversation_is_not_found(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    first = await _create(client, staff)
    second = await _create(client, staff)
    message = await _message(client, staff, first["id"], "hello")

    response = await client.patch(
        f"{API}/{second['id']}/messages/{message['id']}", json={"body": "x"}, headers=staff.headers
    )

    assert response.status_code == 404


# --- The inbox list -------------------------------------------------------------------------


async def test_list_newest_activity_first_with_cursor(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    staff = await owner(client)
    ids = []
    for _ in range(5):
        ids.append((await _create(client, staff))["id"])
        clock.advance(seconds=1)
    # A message moves the oldest conversation to the top.
    await _message(client, staff, ids[0], "bump")
    # Two conversations created at the same instant are ordered by id.
    same_time = [(await _create(client, staff))["id"] for _ in range(2)]
    clock.advance(seconds=1)

    seen: list[str] = []
    cursor = None
    # Bounded, so that a cursor that repeats a page fails instead of looping.
    for _ in range(20):
        # One per page, so that the two created at the same instant fall on two pages.
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await _get(client, staff, API, **params)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    expected_top = sorted(same_time, reverse=True)
    assert seen[:2] == expected_top
    assert seen[2] == ids[0]
    assert seen[3:] == list(reversed(ids[1:]))


async def test_list_filters(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    contact_id = await _contact(runtime, staff.workspace_id)
    mine = await _create(client, staff, channel="email", contact_id=str(contact_id))
    theirs = await _create(client, staff)
    unassigned = await _create(client, staff, channel="form")
    await _patch(client, staff, mine["id"], assignee_id=str(staff.user_id), status="pending")
    await _patch(client, staff, theirs["id"], assignee_id=str(agent.user_id))

    async def ids(**params: Any) -> set[str]:
        page = await _get(client, staff, API, **params)
        return {item["id"] for item in page["items"]}

    assert await ids(assignee="me") == {mine["id"]}
    assert await ids(assignee="none") == {unassigned["id"]}
    assert await ids(assignee=str(agent.user_id)) == {theirs["id"]}
    assert await ids(status="pending") == {mine["id"]}
    assert await ids(status="open,pending") == {mine["id"], theirs["id"], unassigned["id"]}
    assert await ids(channel="form") == {unassigned["id"]}
    assert await ids(contact_id=str(contact_id)) == {mine["id"]}

    bad_status = await client.get(API, params={"status": "closed"}, headers=staff.headers)
    bad_assignee = await client.get(API, params={"assignee": "you"}, headers=staff.headers)
    bad_channel = await client.get(API, params={"channel": "fax"}, headers=staff.headers)
    assert _fields(bad_status) == ["status"]
    assert _fields(bad_assignee) == ["assignee"]
    assert _fields(bad_channel) == ["channel"]


async def test_unread_counts_and_totals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    quiet = await _create(client, staff)
    busy = await _create(client, staff)
    await _message(client, agent, busy["id"], "one")
    await _message(client, agent, busy["id"], "two", kind="note")
    # The owner's own message is not unread for the owner.
    await _message(client, staff, quiet["id"], "mine")

    page = await _get(client, staff, API)
    counts = {item["id"]: item["unread_count"] for item in page["items"]}
    assert counts == {busy["id"]: 2, quiet["id"]: 0}
    unread_only = await _get(client, staff, API, unread="true")
    assert [item["id"] for item in unread_only["items"]] == [busy["id"]]
    assert await _get(client, staff, f"{API}/unread") == {"total": 2, "conversations": 1}
    # For the agent, the owner's message is unread and their own are not.
    assert await _get(client, agent, f"{API}/unread") == {"total": 1, "conversations": 1}

    response = await client.post(f"{API}/{busy['id']}/read", json={"seq": 1}, headers=staff.headers)
    assert response.status_code == 200, response.text
    assert response.json()["last_read_seq"] == 1
    assert await _get(client, staff, f"{API}/unread") == {"total": 1, "conversations": 1}
    back = await client.post(f"{API}/{busy['id']}/read", json={"seq": 0}, headers=staff.headers)
    assert back.json()["last_read_seq"] == 1
    detail = await _get(client, staff, f"{API}/{busy['id']}")
    assert detail["unread_count"] == 1
    readers = {p["id"]: p for p in detail["participants"]}
    assert readers[str(staff.user_id)]["last_read_seq"] == 1
    assert readers[str(agent.user_id)]["last_read_seq"] == 1
    assert readers[str(agent.user_id)]["name"] == "Test Agent"

    negative = await client.post(
        f"{API}/{busy['id']}/read", json={"seq": -1}, headers=staff.headers
    )
    assert negative.status_code == 422
    assert _fields(negative) == ["seq"]


# --- Changing a conversation ----------------------------------------------------------------


async def _system_messages(
    client: httpx.AsyncClient, staff: Staff, conversation_id: str
) -> list[Any]:
    page = await _get(client, staff, f"{API}/{conversation_id}/messages")
    return [item["data"] for item in page["items"] if item["kind"] == "system"]


async def test_assign_and_status_record_system_messages(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    conversation = await _create(client, staff)
    cid = conversation["id"]

    assigned = await _patch(client, staff, cid, assignee_id=str(agent.user_id), status="pending")
    unassigned = await _patch(client, staff, cid, assignee_id=None)
    renamed = await _patch(client, staff, cid, subject="New subject")
    unchanged = await _patch(client, staff, cid, status="pending")

    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee_id"] == str(agent.user_id)
    assert assigned.json()["status"] == "pending"
    assert unassigned.json()["assignee_id"] is None
    assert renamed.json()["subject"] == "New subject"
    assert unchanged.status_code == 200
    by = str(staff.user_id)
    assert await _system_messages(client, staff, cid) == [
        {"event": "assigned", "from": None, "to": str(agent.user_id), "by": by},
        {
            "event": "status_changed",
            "from": "open",
            "to": "pending",
            "snoozed_until": None,
            "by": by,
        },
        {"event": "unassigned", "from": str(agent.user_id), "to": None, "by": by},
    ]
    updates = await events_named(runtime, "conversation.updated")
    assert [event.data["subject"] for event in updates] == [None, None, "New subject"]
    assert all(event.audience == "staff" for event in updates)
    # System messages never reach the visitor audience.
    created = await events_named(runtime, "conversation.message.created")
    assert {event.audience for event in created} == {"staff"}


async def test_assignee_must_be_member(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    stranger = await owner(client)
    conversation = await _create(client, staff)
    before = await _snapshot(runtime)

    response = await _patch(
        client, staff, conversation["id"], assignee_id=str(stranger.user_id), status="resolved"
    )

    assert response.status_code == 422
    assert _fields(response) == ["assignee_id"]
    assert await _snapshot(runtime) == before
    detail = await _get(client, staff, f"{API}/{conversation['id']}")
    assert detail["status"] == "open"


async def test_snooze_rules(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)
    cid = conversation["id"]
    future = (clock.now() + timedelta(hours=2)).isoformat()
    past = (clock.now() - timedelta(seconds=1)).isoformat()
    before = await _snapshot(runtime)

    without_time = await _patch(client, staff, cid, status="snoozed")
    in_past = await _patch(client, staff, cid, status="snoozed", snoozed_until=past)
    not_snoozing = await _patch(client, staff, cid, snoozed_until=future)
    null_status = await _patch(client, staff, cid, status=None)

    assert [_fields(r) for r in (without_time, in_past, not_snoozing, null_status)] == [
        ["snoozed_until"],
        ["snoozed_until"],
        ["snoozed_until"],
        ["status"],
    ]
    assert await _snapshot(runtime) == before

    snoozed = await _patch(client, staff, cid, status="snoozed", snoozed_until=future)
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["status"] == "snoozed"
    assert snoozed.json()["snoozed_until"] == iso_utc(clock.now() + timedelta(hours=2))
    # A naive time is UTC.
    naive = (clock.now() + timedelta(hours=3)).replace(tzinfo=None).isoformat()
    moved = await _patch(client, staff, cid, snoozed_until=naive)
    assert moved.json()["snoozed_until"] == naive + "Z"
    reopened = await _patch(client, staff, cid, status="open")
    assert reopened.json()["status"] == "open"
    assert reopened.json()["snoozed_until"] is None


async def test_wake_job_reopens_due_conversations(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    soon = await _create(client, staff)
    later = await _create(client, staff)
    # Minutes, so that the access tokens stay valid.
    for conversation, minutes in ((soon, 5), (later, 30)):
        until = (clock.now() + timedelta(minutes=minutes)).isoformat()
        response = await _patch(
            client, staff, conversation["id"], status="snoozed", snoozed_until=until
        )
        assert response.status_code == 200, response.text
    clock.advance(minutes=10)

    async with unit_of_work(runtime) as uow:
        await schedule_periodic(uow)
    assert await count_rows(runtime, Job, Job.name == WAKE_JOB) == 1
    await run_jobs(runtime)

    woken = await _get(client, staff, f"{API}/{soon['id']}")
    still = await _get(client, staff, f"{API}/{later['id']}")
    assert woken["status"] == "open"
    assert woken["snoozed_until"] is None
    assert still["status"] == "snoozed"
    assert (await _system_messages(client, staff, soon["id"]))[-1] == {
        "event": "status_changed",
        "from": "snoozed",
        "to": "open",
        "snoozed_until": None,
        "by": None,
    }
    updates = await events_named(runtime, "conversation.updated")
    assert updates[-1].data["id"] == soon["id"]
    assert updates[-1].data["status"] == "open"


# --- Messages -------------------------------------------------------------------------------


async def test_concurrent_resends_store_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    cid = (await _create(client, staff))["id"]

    responses = await asyncio.gather(
        *(_post(client, staff, cid, body=f"try {n}", client_message_id="same") for n in range(6))
    )

    assert sorted(r.status_code for r in responses) == [200] * 5 + [201], [
        r.text for r in responses
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    stored = await count_rows(
        runtime, ConversationMessage, ConversationMessage.conversation_id == uuid.UUID(cid)
    )
    assert stored == 1
    again = await _post(client, staff, cid, body="next")
    assert again.json()["seq"] == 2


async def test_post_message_note_and_dedupe(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client, full_name="Olga Owner")
    conversation = await _create(client, staff)
    cid = conversation["id"]

    first = await _post(client, staff, cid, body="**Hi**", client_message_id="c-1")
    again = await _post(client, staff, cid, body="**Hi**", client_message_id="c-1")
    note = await _post(client, staff, cid, body="internal", kind="note")

    assert first.status_code == 201, first.text
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["body_html"] == "<p><strong>Hi</strong></p>"
    assert first.json()["author"] == {
        "type": "member",
        "id": str(staff.user_id),
        "name": "Olga Owner",
    }
    assert note.status_code == 201
    assert note.json()["kind"] == "note"
    assert await count_rows(runtime, ConversationMessage) == 2


async def test_post_message_removes_control_characters(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)

    response = await _post(client, staff, conversation["id"], body="a\u0007b\u001bc\r\nd\te")

    assert response.status_code == 201, response.text
    assert response.json()["body"] == "abc\nd\te"


async def test_post_message_rejects_bad_input(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)
    cid = conversation["id"]
    before = await _snapshot(runtime)

    cases = {
        "body": await _post(client, staff, cid, body="   "),
        "kind": await _post(client, staff, cid, body="x", kind="system"),
        "client_message_id": await _post(client, staff, cid, body="x", client_message_id=""),
        "attachments.0": await _post(client, staff, cid, body="x", attachments=[str(uuid.uuid4())]),
        "extra": await _post(client, staff, cid, body="x", extra=1),
    }
    # Zero-width space and byte order mark: nothing a reader would see.
    invisible = await _post(client, staff, cid, body="\u200b\ufeff ")

    for name, response in cases.items():
        assert response.status_code == 422, f"{name}: {response.text}"
        assert name in _fields(response), f"{name}: {response.text}"
    assert invisible.status_code == 422, invisible.text
    assert invisible.json()["errors"][0]["code"] == "empty_message"
    assert await _snapshot(runtime) == before


async def _upload(client: httpx.AsyncClient, staff: Staff, name: str = "notes.txt") -> str:
    response = await client.post(
        "/api/v1/storage/buckets",
        json={"name": f"b-{uuid.uuid4().hex[:10]}"},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    bucket_id = response.json()["id"]
    response = await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/objects",
        params={"key": f"files/{name}"},
        content=b"hello, world",
        headers=staff.headers | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.text
    object_id: str = response.json()["id"]
    return object_id


async def _set_scan(runtime: Runtime, staff: Staff, object_id: str, status: str) -> None:
    async with unit_of_work(runtime) as uow:
        uow.session.add(
            ObjectScan(
                object_id=uuid.UUID(object_id),
                workspace_id=staff.workspace_id,
                status=status,
                created_at=uow.now(),
            )
        )


async def test_attachments_resolved_and_scans_checked(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    other = await owner(client)
    conversation = await _create(client, staff)
    cid = conversation["id"]
    clean = await _upload(client, staff, "clean.txt")
    waiting = await _upload(client, staff, "waiting.txt")
    infected = await _upload(client, staff, "infected.txt")
    theirs = await _upload(client, other, "theirs.txt")
    await _set_scan(runtime, staff, waiting, "quarantined")
    await _set_scan(runtime, staff, infected, "infected")
    before = await _snapshot(runtime)

    scanned = await _post(client, staff, cid, body="files", attachments=[clean, waiting, infected])
    foreign = await _post(client, staff, cid, body="files", attachments=[theirs])

    assert scanned.status_code == 422
    assert _fields(scanned) == ["attachments.1", "attachments.2"]
    codes = [error["code"] for error in scanned.json()["errors"]]
    assert codes == ["object_quarantined", "object_infected"]
    assert _fields(foreign) == ["attachments.0"]
    assert await _snapshot(runtime) == before

    posted = await _post(client, staff, cid, body="", attachments=[clean])
    assert posted.status_code == 201, posted.text
    [attachment] = posted.json()["attachments"]
    assert attachment["object_id"] == clean
    assert attachment["filename"] == "clean.txt"


async def test_history_both_ways_and_around(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)
    cid = conversation["id"]
    messages = [await _message(client, staff, cid, f"m{i}") for i in range(1, 8)]
    path = f"{API}/{cid}/messages"

    newest = await _get(client, staff, path, limit=3)
    older = await _get(client, staff, path, before=5, limit=3)
    newer = await _get(client, staff, path, after=2, limit=2)
    around_seq = await _get(client, staff, path, around=4, limit=3)
    around_id = await _get(client, staff, path, around=messages[3]["id"], limit=3)

    def seqs(page: dict[str, Any]) -> list[int]:
        return [item["seq"] for item in page["items"]]

    assert (seqs(newest), newest["has_before"], newest["has_after"]) == ([5, 6, 7], True, False)
    assert (seqs(older), older["has_before"], older["has_after"]) == ([2, 3, 4], True, True)
    assert (seqs(newer), newer["has_before"], newer["has_after"]) == ([3, 4], True, True)
    assert seqs(around_seq) == [3, 4, 5]
    assert seqs(around_id) == [3, 4, 5]
    only = await _get(client, staff, path, around=4, limit=1)
    assert (seqs(only), only["has_before"], only["has_after"]) == ([4], True, True)
    assert seqs(await _get(client, staff, path, around=4, limit=2)) == [4, 5]
    last = await _get(client, staff, path, around=7, limit=3)
    assert (seqs(last), last["has_before"], last["has_after"]) == ([5, 6, 7], True, False)
    first = await _get(client, staff, path, around=1, limit=3)
    assert (seqs(first), first["has_before"], first["has_after"]) == ([1, 2, 3], False, True)

    two = await client.get(path, params={"before": 3, "after": 1}, headers=staff.headers)
    bad_around = await client.get(path, params={"around": "x"}, headers=staff.headers)
    unknown = await client.get(path, params={"around": str(uuid.uuid4())}, headers=staff.headers)
    assert _fields(two) == ["after"]
    assert _fields(bad_around) == ["around"]
    assert _fields(unknown) == ["around"]
    for name in ("before", "after", "around"):
        huge = await client.get(path, params={name: 2**63}, headers=staff.headers)
        assert huge.status_code == 422, huge.text
        assert _fields(huge) == [name]


async def test_edit_keeps_revision_and_notifies(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)
    message = await _message(client, staff, conversation["id"], "first text")
    path = f"{API}/{conversation['id']}/messages/{message['id']}"

    edited = await client.patch(path, json={"body": "second *text*"}, headers=staff.headers)

    assert edited.status_code == 200, edited.text
    assert edited.json()["body"] == "second *text*"
    assert edited.json()["body_html"] == "<p>second <em>text</em></p>"
    assert edited.json()["edited_at"] is not None
    revisions = await _get(client, staff, f"{path}/revisions")
    assert [(r["action"], r["body"]) for r in revisions["items"]] == [("edited", "first text")]
    [event] = await events_named(runtime, "conversation.message.updated")
    assert event.data["message"]["body"] == "second *text*"
    assert event.audience == "staff"


async def test_edit_only_by_author(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    conversation = await _create(client, staff)
    message = await _message(client, staff, conversation["id"], "mine")
    path = f"{API}/{conversation['id']}/messages/{message['id']}"
    before = await _snapshot(runtime)

    by_other = await client.patch(path, json={"body": "theirs"}, headers=agent.headers)
    empty = await client.patch(path, json={"body": " "}, headers=staff.headers)
    too_long = await client.patch(path, json={"body": "x" * 10_001}, headers=staff.headers)

    assert by_other.status_code == 403
    assert _fields(empty) == ["body"]
    assert _fields(too_long) == ["body"]
    assert await _snapshot(runtime) == before


async def test_visitor_sees_edit_and_delete(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    cid = await _visitor_conversation(runtime, staff.workspace_id)
    reply = await _message(client, staff, cid, "Hello, how can I help?")
    note = await _message(client, staff, cid, "VIP visitor", kind="note")
    base = f"{API}/{cid}/messages"

    await client.patch(f"{base}/{reply['id']}", json={"body": "Hi!"}, headers=staff.headers)
    await client.patch(f"{base}/{note['id']}", json={"body": "VIP"}, headers=staff.headers)
    await client.delete(f"{base}/{reply['id']}", headers=staff.headers)

    updated = await events_named(runtime, "conversation.message.updated")
    visitor_updates = [e for e in updated if e.audience == "visitor"]
    assert len([e for e in updated if e.audience == "staff"]) == 2
    assert [e.data["message"]["body"] for e in visitor_updates] == ["Hi!"]
    assert "author" in visitor_updates[0].data["message"]
    assert "data" not in visitor_updates[0].data["message"]
    deleted = await events_named(runtime, "conversation.message.deleted")
    assert {e.audience for e in deleted} == {"staff", "visitor"}
    visitor_copy = next(e for e in deleted if e.audience == "visitor")
    assert visitor_copy.data["message"]["deleted"] is True
    assert visitor_copy.data["message"]["body"] == ""


async def test_delete_is_soft_and_keeps_revision(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    admin = await member(client, runtime, staff.workspace_id, role="admin")
    agent = await member(client, runtime, staff.workspace_id)
    conversation = await _create(client, staff)
    cid = conversation["id"]
    object_id = await _upload(client, staff)
    own = await _message(client, agent, cid, "agent text", attachments=[object_id])
    other = await _message(client, staff, cid, "owner text")
    base = f"{API}/{cid}/messages"

    refused = await client.delete(f"{base}/{other['id']}", headers=agent.headers)
    deleted = await client.delete(f"{base}/{own['id']}", headers=agent.headers)
    again = await client.delete(f"{base}/{own['id']}", headers=agent.headers)
    moderated = await client.delete(f"{base}/{other['id']}", headers=admin.headers)
    edit_deleted = await client.patch(
        f"{base}/{own['id']}", json={"body": "back"}, headers=agent.headers
    )

    assert refused.status_code == 403
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert (body["body"], body["body_html"], body["attachments"]) == ("", "", [])
    assert body["deleted_at"] is not None
    assert again.status_code == 200
    assert moderated.status_code == 200
    assert edit_deleted.status_code == 409
    revisions = await _get(client, staff, f"{base}/{own['id']}/revisions")
    [revision] = revisions["items"]
    assert revision["action"] == "deleted"
    assert revision["body"] == "agent text"
    assert revision["attachments"][0]["object_id"] == object_id
    assert revision["actor_id"] == str(agent.user_id)
    page = await _get(client, staff, base)
    assert [item["deleted_at"] is not None for item in page["items"]] == [True, True]


async def test_system_message_cannot_be_deleted(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff)
    await _patch(client, staff, conversation["id"], status="resolved")
    page = await _get(client, staff, f"{API}/{conversation['id']}/messages")
    [system] = page["items"]

    response = await client.delete(
        f"{API}/{conversation['id']}/messages/{system['id']}", headers=staff.headers
    )

    assert response.status_code == 403


# --- Enquiry conversations ------------------------------------------------------------------


async def test_enquiry_conversation_get_or_create(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    other = await owner(client)
    response = await client.post(
        "/api/v1/enquiries",
        json={"message": "Call me", "contact": {"name": "Ada", "email": "ada@example.com"}},
        headers=staff.headers,
    )
    enquiry = response.json()
    async with unit_of_work(runtime) as uow:
        emailed, _ = await create_enquiry(
            uow,
            workspace_id=staff.workspace_id,
            contact=None,
            source="email",
            source_details={},
            answers={"message": "by mail"},
            subject="Mail",
        )
        emailed_id = str(emailed.id)
    path = f"/api/v1/enquiries/{enquiry['id']}/conversation"

    created = await client.post(path, headers=staff.headers)
    existing = await client.post(path, headers=staff.headers)
    by_email = await client.post(
        f"/api/v1/enquiries/{emailed_id}/conversation", headers=staff.headers
    )
    foreign = await client.post(path, headers=other.headers)

    assert created.status_code == 201, created.text
    assert created.json()["channel"] == "form"
    assert created.json()["enquiry_id"] == enquiry["id"]
    assert created.json()["contact_id"] == enquiry["contact"]["id"]
    assert existing.status_code == 200
    assert existing.json()["id"] == created.json()["id"]
    assert by_email.json()["channel"] == "email"
    assert by_email.json()["subject"] == "Mail"
    assert foreign.status_code == 404
    assert await count_rows(runtime, Conversation) == 2


async def test_agent_role_is_enough(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)

    created = await _create(client, agent)
    listed = await _get(client, agent, API)

    assert [item["id"] for item in listed["items"]] == [created["id"]]
    unauthenticated = await client.get(API)
    assert unauthenticated.status_code == 401


async def test_unknown_conversation_is_not_found(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.get(f"{API}/{uuid.uuid4()}", headers=staff.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_conversation_rows_match_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    conversation = await _create(client, staff, subject="Stored")

    async with runtime.sessionmaker() as session:
        row = await session.scalar(
            sa.select(Conversation).where(Conversation.id == uuid.UUID(conversation["id"]))
        )

    assert row is not None
    assert row.workspace_id == staff.workspace_id
    assert row.subject == "Stored"


async def test_list_and_search_query_counts_are_fixed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The event publisher reads the events table after each commit; that is not the request.
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" not in statement:
            statements.append(statement)

    async def measure(path: str, **params: Any) -> int:
        statements.clear()
        with cursor_listener(runtime, count):
            response = await client.get(path, params=params, headers=staff.headers)
        assert response.status_code == 200, response.text
        return len(statements)

    async def add(total: int) -> None:
        for _ in range(total):
            conversation = await _create(client, staff)
            await _message(client, staff, conversation["id"], "estimate attached")

    await add(2)
    counts_with_two = (await measure(API), await measure(f"{API}/search", q="estimate"))
    await add(6)
    counts_with_eight = (await measure(API), await measure(f"{API}/search", q="estimate"))

    assert counts_with_eight == counts_with_two


async def test_invisible_subject_stored_as_null(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    created = await _create(client, staff, subject="\u200b ")
    renamed = await client.patch(
        f"{API}/{created['id']}", json={"subject": "  Wedding  "}, headers=staff.headers
    )
    cleared = await client.patch(
        f"{API}/{created['id']}", json={"subject": "\ufeff"}, headers=staff.headers
    )

    assert created["subject"] is None
    assert renamed.json()["subject"] == "Wedding"
    assert cleared.json()["subject"] is None


async def test_last_message_at_is_the_message_time(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = await owner(client)
    cid = (await _create(client, staff))["id"]
    # A clock that moves a microsecond on every reading, as a real one does.
    ticks = itertools.count(1)
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(microseconds=next(ticks)))

    message = await _message(client, staff, cid, "Hello")
    conversation = await _get(client, staff, f"{API}/{cid}")

    assert conversation["last_message_at"] == message["created_at"]
