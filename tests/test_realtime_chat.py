"""Live chat on the realtime gateway, tested with real WebSocket clients against uvicorn.

Staff and website visitors connect to the same endpoint. These tests cover visitor
authentication, what each side may see, the chat frames (subscribe, send, read, typing,
presence) and their limits. tests/test_realtime.py runs the same frames across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from frontdesk.conversations import service
from frontdesk.conversations.chat_uploads import UPLOAD_BUCKET as VISITOR_UPLOAD_BUCKET
from frontdesk.conversations.models import ChatVisitor, Conversation, ConversationMessage
from frontdesk.conversations.visitors import issue_visitor_token
from frontdesk.core.uow import unit_of_work
from frontdesk.realtime.brokers import MAX_EPHEMERAL_BYTES, EphemeralTooLarge, MemoryBroker
from frontdesk.realtime.protocol import (
    MAX_REJECTED_SENDS,
    SEND_BURST,
    TYPING_EXPIRES_SECONDS,
    TYPING_THROTTLE_SECONDS,
)
from frontdesk.runtime import Runtime
from frontdesk.storage.models import Bucket, StoredObject
from test_realtime import (
    WAIT,
    Member,
    Server,
    add_member,
    close_code,
    enquiry,
    open_socket,
    realtime_settings,
    record,
    server,
)

# Fixtures imported from test_realtime; naming them here keeps linters from removing them.
__all__ = ["realtime_settings", "server"]

QUIET = 0.4


# Data helpers


@dataclass(frozen=True)
class Visitor:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str | None
    token: str


async def add_visitor(
    runtime: Runtime,
    workspace_id: uuid.UUID,
    *,
    name: str | None = "Camille",
    revoked: bool = False,
) -> Visitor:
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        visitor = ChatVisitor(
            workspace_id=workspace_id,
            name=name,
            revoked_at=now if revoked else None,
            created_at=now,
            last_seen_at=now,
        )
        uow.session.add(visitor)
        await uow.session.flush()
        visitor_id = visitor.id
    token = issue_visitor_token(
        runtime.secrets.secret_key,
        workspace_id=workspace_id,
        visitor_id=visitor_id,
        now=runtime.clock.now(),
    )
    return Visitor(id=visitor_id, workspace_id=workspace_id, name=name, token=token)


async def start_conversation(
    runtime: Runtime, workspace_id: uuid.UUID, visitor_id: uuid.UUID | None = None
) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        conversation = await service.create_conversation(
            uow, workspace_id=workspace_id, channel="chat", visitor_id=visitor_id
        )
        return conversation.id


async def post(
    runtime: Runtime,
    conversation_id: uuid.UUID,
    body: str,
    *,
    member: Member | None = None,
    kind: str = "message",
) -> int:
    """Post a message through the service (as the REST API does); return its seq."""
    author = (
        service.Author(type="member", id=member.user_id, name="Test Member")
        if member is not None
        else service.SYSTEM
    )
    async with unit_of_work(runtime) as uow:
        conversation = await uow.session.get(Conversation, conversation_id)
        assert conversation is not None
        message, _created = await service.post_message(
            uow, conversation, author=author, kind=kind, body=body
        )
        return message.seq


async def add_object(
    runtime: Runtime,
    workspace_id: uuid.UUID,
    *,
    bucket_name: str,
    metadata: dict[str, str] | None = None,
) -> uuid.UUID:
    """Store an object row (no bytes are needed to describe it as an attachment)."""
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        bucket = await uow.session.scalar(
            sa.select(Bucket).where(Bucket.workspace_id == workspace_id, Bucket.name == bucket_name)
        )
        if bucket is None:
            created = Bucket(
                workspace_id=workspace_id,
                name=bucket_name,
                visibility="private",
                created_at=now,
                updated_at=now,
            )
            uow.session.add(created)
            await uow.session.flush()
            bucket_id = created.id
        else:
            bucket_id = bucket.id
        data = os.urandom(16)
        stored = StoredObject(
            workspace_id=workspace_id,
            bucket_id=bucket_id,
            key=f"files/{uuid.uuid4().hex}.png",
            content_type="image/png",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            user_metadata=metadata or {},
            created_at=now,
            updated_at=now,
        )
        uow.session.add(stored)
        await uow.session.flush()
        return stored.id


# Client helpers


class Client:
    """A WebSocket client that keeps the frames it has read but not yet used."""

    def __init__(self, ws: ClientConnection, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready
        self.buffered: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """Return the first frame, buffered or new, for which ``match`` is true."""
        for index, frame in enumerate(self.buffered):
            if match(frame):
                return self.buffered.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                if match(frame):
                    return frame
                self.buffered.append(frame)

    async def frame(self, type_: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        return await self.next(
            lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items()),
            timeout,
        )

    async def event(self, name: str, timeout: float = WAIT) -> dict[str, Any]:
        return await self.next(lambda f: f.get("type") == "event" and f["event"] == name, timeout)

    async def no_frame(self, match: Callable[[dict[str, Any]], bool], wait: float = QUIET) -> None:
        """Fail when a frame for which ``match`` is true arrives within ``wait`` seconds."""
        try:
            frame = await self.next(match, wait)
        except TimeoutError:
            return
        pytest.fail(f"expected no such frame, received {frame!r}")

    async def collect_until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Return every frame, buffered or new, up to and including the first ``done`` one."""
        frames: list[dict[str, Any]] = []
        while self.buffered:
            frame = self.buffered.pop(0)
            frames.append(frame)
            if done(frame):
                return frames
        async with asyncio.timeout(WAIT):
            while True:
                frame = json.loads(await self.ws.recv())
                frames.append(frame)
                if done(frame):
                    return frames

    async def subscribe(self, conversation_id: uuid.UUID) -> dict[str, Any]:
        await self.send({"type": "subscribe", "conversation_id": str(conversation_id)})
        return await self.next(
            lambda f: (
                f.get("conversation_id") == str(conversation_id)
                and f.get("type") in ("subscribed", "error")
            )
        )

    async def send_message(
        self, conversation_id: uuid.UUID, body: str, **extra: Any
    ) -> dict[str, Any]:
        client_message_id = extra.pop("client_message_id", uuid.uuid4().hex)
        await self.send(
            {
                "type": "send",
                "conversation_id": str(conversation_id),
                "client_message_id": client_message_id,
                "body": body,
                **extra,
            }
        )
        return await self.next(
            lambda f: (
                f.get("type") in ("sent", "error")
                and f.get("client_message_id") == client_message_id
            )
        )

    async def drain(self) -> None:
        """Read and drop every frame that arrives without a pause of 10 ms."""
        self.buffered.clear()
        while True:
            try:
                await asyncio.wait_for(self.ws.recv(), 0.01)
            except TimeoutError:
                return

    async def close(self) -> None:
        await self.ws.close()


async def connect_client(server: Server | str, token: str, **auth: Any) -> Client:
    """Connect to a test server, or to a realtime URL, and authenticate."""
    if isinstance(server, str):
        ws = await connect(server, open_timeout=WAIT, proxy=None)
    else:
        ws = await open_socket(server)
    await ws.send(json.dumps({"type": "auth", "token": token, **auth}))
    ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert ready["type"] == "ready", ready
    return Client(ws, ready)


def is_message_event(body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: (
        f.get("type") == "event"
        and f["event"] == "conversation.message.created"
        and f["data"]["message"]["body"] == body
    )


# Visitor connections


async def test_visitor_ready_names_visitor(server: Server) -> None:
    member = await add_member(server.runtime)
    visitor = await add_visitor(server.runtime, member.workspace_id)

    client = await connect_client(server, visitor.token)

    assert client.ready["role"] == "visitor"
    assert client.ready["visitor_id"] == str(visitor.id)
    assert client.ready["workspace_id"] == str(member.workspace_id)
    assert "user_id" not in client.ready
    await client.send({"type": "ping"})
    assert await client.frame("pong")
    await client.close()


async def test_visitor_tokens_rejected(server: Server) -> None:
    member = await add_member(server.runtime)
    other = await add_member(server.runtime)
    revoked = await add_visitor(server.runtime, member.workspace_id, revoked=True)
    visitor = await add_visitor(server.runtime, member.workspace_id)
    key = server.runtime.secrets.secret_key
    now = server.clock.now()
    cases = {
        "revoked": revoked.token,
        "unknown visitor": issue_visitor_token(
            key, workspace_id=member.workspace_id, visitor_id=uuid.uuid4(), now=now
        ),
        "other workspace": issue_visitor_token(
            key, workspace_id=other.workspace_id, visitor_id=visitor.id, now=now
        ),
        "bad signature": visitor.token[:-4] + ("AAAA" if visitor.token[-4:] != "AAAA" else "BBBB"),
        "other key": issue_visitor_token(
            b"another-secret", workspace_id=member.workspace_id, visitor_id=visitor.id, now=now
        ),
    }
    for name, token in cases.items():
        ws = await open_socket(server)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert await close_code(ws) == 4003, name


async def test_revoked_visitor_closed_on_next_frame(server: Server) -> None:
    member = await add_member(server.runtime)
    visitor = await add_visitor(server.runtime, member.workspace_id)
    conversation = await start_conversation(server.runtime, member.workspace_id, visitor.id)
    client = await connect_client(server, visitor.token)
    assert (await client.subscribe(conversation))["type"] == "subscribed"

    async with unit_of_work(server.runtime) as uow:
        row = await uow.session.get(ChatVisitor, visitor.id)
        assert row is not None
        row.revoked_at = uow.now()
    await client.send(
        {
            "type": "send",
            "conversation_id": str(conversation),
            "client_message_id": "after-revoke",
            "body": "still here?",
        }
    )

    assert await close_code(client.ws) == 4003
    async with server.runtime.sessionmaker() as session:
        stored = await session.scalar(sa.select(sa.func.count()).select_from(ConversationMessage))
    assert stored == 0


async def test_revoking_visitor_closes_socket(server: Server) -> None:
    member = await add_member(server.runtime, role="admin")
    visitor = await add_visitor(server.runtime, member.workspace_id)
    client = await connect_client(server, visitor.token)
    headers = {"Authorization": f"Bearer {member.token}"}

    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        revoked = await http.post(f"/api/v1/chat/visitors/{visitor.id}/revoke", headers=headers)

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert await close_code(client.ws) == 4003
    ws = await open_socket(server)
    await ws.send(json.dumps({"type": "auth", "token": visitor.token}))
    assert await close_code(ws) == 4003


async def test_disabling_chat_closes_visitors(server: Server) -> None:
    member = await add_member(server.runtime, role="admin")
    visitor = await add_visitor(server.runtime, member.workspace_id)
    visitor_client = await connect_client(server, visitor.token)
    staff_client = await connect_client(server, member.token)
    headers = {"Authorization": f"Bearer {member.token}"}

    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        changed = await http.put("/api/v1/chat/settings", headers=headers, json={"enabled": False})

    assert changed.status_code == 200, changed.text
    assert await close_code(visitor_client.ws) == 4004
    ws = await open_socket(server)
    await ws.send(json.dumps({"type": "auth", "token": visitor.token}))
    assert await close_code(ws) == 4004
    await staff_client.send({"type": "ping"})
    assert (await staff_client.frame("pong"))["type"] == "pong"


async def test_visitor_socket_origin_checked(server: Server) -> None:
    member = await add_member(server.runtime, role="admin")
    visitor = await add_visitor(server.runtime, member.workspace_id)
    headers = {"Authorization": f"Bearer {member.token}"}
    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        changed = await http.put(
            "/api/v1/chat/settings",
            headers=headers,
            json={"allowed_origins": ["https://studio.example"]},
        )
    assert changed.status_code == 200, changed.text

    allowed = await open_socket(server, origin="https://studio.example")
    await allowed.send(json.dumps({"type": "auth", "token": visitor.token}))
    ready = json.loads(await asyncio.wait_for(allowed.recv(), WAIT))
    refused = await open_socket(server, origin="https://other.example")
    await refused.send(json.dumps({"type": "auth", "token": visitor.token}))

    assert ready["type"] == "ready"
    assert await close_code(refused) == 4004
    await allowed.close()


async def test_visitor_sees_only_own_messages(server: Server) -> None:
    """Live: no notes, no staff events, no other visitor's messages; new conversations join."""
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    stranger = await add_visitor(runtime, member.workspace_id, name="Other")
    mine = await start_conversation(runtime, member.workspace_id, visitor.id)
    theirs = await start_conversation(runtime, member.workspace_id, stranger.id)
    client = await connect_client(server, visitor.token)

    await post(runtime, mine, "hello from staff", member=member)
    await post(runtime, mine, "secret note", member=member, kind="note")
    await post(runtime, theirs, "for the other visitor", member=member)
    await record(
        runtime, "enquiry.created", enquiry("staff only"), workspace_id=member.workspace_id
    )
    later = await start_conversation(runtime, member.workspace_id, visitor.id)
    await post(runtime, later, "in a new conversation", member=member)
    await post(runtime, mine, "marker", member=member)
    frames = await client.collect_until(is_message_event("marker"))

    events = [f for f in frames if f["type"] == "event"]
    bodies = [f["data"]["message"]["body"] for f in events]
    assert bodies == ["hello from staff", "in a new conversation", "marker"]
    assert {f["event"] for f in events} == {"conversation.message.created"}
    first = events[0]["data"]
    assert set(first) == {"message"}
    assert first["message"]["author"] == {"type": "staff", "name": "Test Member"}
    assert "kind" not in first["message"]
    await client.close()


async def test_visitor_replay_filters(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    stranger = await add_visitor(runtime, member.workspace_id, name="Other")
    mine = await start_conversation(runtime, member.workspace_id, visitor.id)
    theirs = await start_conversation(runtime, member.workspace_id, stranger.id)
    client = await connect_client(server, visitor.token)
    seen = client.ready["last_event_id"]
    await client.close()

    await post(runtime, mine, "missed reply", member=member)
    await post(runtime, mine, "missed note", member=member, kind="note")
    await post(runtime, theirs, "not yours", member=member)
    await record(
        runtime, "enquiry.created", enquiry("staff only"), workspace_id=member.workspace_id
    )
    later = await start_conversation(runtime, member.workspace_id, visitor.id)
    await post(runtime, later, "missed in a new conversation", member=member)
    client = await connect_client(server, visitor.token, last_event_id=seen)
    await post(runtime, mine, "live marker", member=member)
    frames = await client.collect_until(is_message_event("live marker"))

    bodies = [f["data"]["message"]["body"] for f in frames if f["type"] == "event"]
    assert bodies == ["missed reply", "missed in a new conversation", "live marker"]
    await client.close()


async def test_staff_never_receive_visitor_copies(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)

    await post(runtime, conversation, "one", member=member)
    await post(runtime, conversation, "two", member=member)
    frames = await staff.collect_until(is_message_event("two"))

    created = [f for f in frames if f.get("event") == "conversation.message.created"]
    assert len(created) == 2
    assert all(set(f["data"]) == {"message", "conversation"} for f in created)
    assert all(f["data"]["message"]["kind"] == "message" for f in created)
    await staff.close()


# Subscribe


async def test_subscribe_authorization(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    outsider = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    stranger = await add_visitor(runtime, member.workspace_id, name="Other")
    mine = await start_conversation(runtime, member.workspace_id, visitor.id)
    theirs = await start_conversation(runtime, member.workspace_id, stranger.id)
    internal = await start_conversation(runtime, member.workspace_id)
    staff = await connect_client(server, member.token)
    other_staff = await connect_client(server, outsider.token)
    client = await connect_client(server, visitor.token)

    assert (await staff.subscribe(mine))["type"] == "subscribed"
    assert (await staff.subscribe(internal))["type"] == "subscribed"
    assert (await client.subscribe(mine))["type"] == "subscribed"
    denied = {
        "other workspace": await other_staff.subscribe(mine),
        "other visitor": await client.subscribe(theirs),
        "no visitor": await client.subscribe(internal),
        "unknown": await client.subscribe(uuid.uuid4()),
    }
    for name, frame in denied.items():
        assert frame["type"] == "error", name
        assert frame["code"] == "not_found", name
    await client.send({"type": "subscribe", "conversation_id": "not-a-uuid"})
    invalid = await client.frame("error")
    assert invalid["code"] == "invalid_frame"
    assert invalid["field"] == "conversation_id"
    for each in (staff, other_staff, client):
        await each.close()


async def test_subscribed_frame_state(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    await post(runtime, conversation, "first", member=member)
    await post(runtime, conversation, "second", member=member)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)

    for_staff = await staff.subscribe(conversation)
    for_visitor = await client.subscribe(conversation)

    assert for_staff["last_seq"] == 2
    assert for_staff["typing"] == []
    assert {"participant": {"type": "member", "id": str(member.user_id)},
            "last_read_seq": 2, "last_delivered_seq": 2} in for_staff["read"]  # fmt: skip
    assert {"participant": {"type": "visitor", "id": str(visitor.id)},
            "last_read_seq": 0, "last_delivered_seq": 0} in for_staff["read"]  # fmt: skip
    assert for_visitor["last_seq"] == 2
    assert for_visitor["read"] == [
        {"participant": {"type": "staff", "id": None}, "last_read_seq": 2, "last_delivered_seq": 2},
        {
            "participant": {"type": "visitor", "id": str(visitor.id)},
            "last_read_seq": 0,
            "last_delivered_seq": 0,
        },
    ]
    await staff.send({"type": "unsubscribe", "conversation_id": str(conversation)})
    assert await staff.frame("unsubscribed", conversation_id=str(conversation))
    await staff.close()
    await client.close()


# Send


async def test_send_reaches_other_side(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)

    sent = await staff.send_message(conversation, "How can we *help*?", client_message_id="s-1")
    arrived = await client.next(is_message_event("How can we *help*?"))
    reply = await client.send_message(conversation, "A quote, please.", client_message_id="v-1")
    echoed = await staff.next(is_message_event("A quote, please."))

    assert sent["type"] == "sent"
    assert sent["client_message_id"] == "s-1"
    assert sent["message"]["seq"] == 1
    assert sent["message"]["kind"] == "message"
    assert sent["message"]["author"] == {
        "type": "member",
        "id": str(member.user_id),
        "name": "Test Member",
    }
    assert sent["message"]["body_html"] == "<p>How can we <em>help</em>?</p>"
    assert arrived["data"]["message"]["id"] == sent["message"]["id"]
    assert arrived["data"]["message"]["author"] == {"type": "staff", "name": "Test Member"}
    assert reply["type"] == "sent"
    assert reply["message"]["seq"] == 2
    assert reply["message"]["author"] == {"type": "visitor", "name": None}
    assert reply["message"]["client_message_id"] == "v-1"
    assert echoed["data"]["message"]["author"] == {
        "type": "visitor",
        "id": str(visitor.id),
        "name": "Camille",
    }
    assert echoed["data"]["conversation"]["last_seq"] == 2
    await staff.close()
    await client.close()


async def test_resent_message_stored_once(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)

    first = await client.send_message(conversation, "Hello?", client_message_id="retry-1")
    again = await client.send_message(conversation, "Hello?", client_message_id="retry-1")
    await client.send_message(conversation, "marker", client_message_id="retry-2")
    frames = await staff.collect_until(is_message_event("marker"))

    assert again["type"] == "sent"
    assert again["message"]["id"] == first["message"]["id"]
    assert again["message"]["seq"] == 1
    created = [f for f in frames if f.get("event") == "conversation.message.created"]
    assert [f["data"]["message"]["seq"] for f in created] == [1, 2]
    await staff.close()
    await client.close()


async def test_notes_never_reach_visitor(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)

    note = await staff.send_message(conversation, "Check their order first", kind="note")
    await staff.send_message(conversation, "marker")
    frames = await client.collect_until(is_message_event("marker"))
    visitor_note = await client.send_message(conversation, "Can I?", kind="note")

    assert note["type"] == "sent"
    assert note["message"]["kind"] == "note"
    assert next(f for f in frames if f["type"] == "event")["data"]["message"]["seq"] == 2
    assert all("Check their order" not in json.dumps(f) for f in frames)
    assert visitor_note["type"] == "error"
    assert visitor_note["code"] == "invalid_kind"
    assert visitor_note["field"] == "kind"
    await staff.close()
    await client.close()


async def test_send_errors_keep_socket_open(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    stranger = await add_visitor(runtime, member.workspace_id, name="Other")
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    theirs = await start_conversation(runtime, member.workspace_id, stranger.id)
    client = await connect_client(server, visitor.token)

    too_long = await client.send_message(conversation, "x" * 10_001, client_message_id="long")
    empty = await client.send_message(conversation, "   ", client_message_id="empty")
    not_yours = await client.send_message(theirs, "hi", client_message_id="elsewhere")
    await client.send({"type": "send", "conversation_id": str(conversation), "body": "hi"})
    no_client_id = await client.frame("error")
    bad_id = await client.send_message(conversation, "hi", client_message_id="\x00")
    await client.send(
        {"type": "send", "conversation_id": str(conversation), "body": "hi", "client_message_id": 1}
    )
    number_id = await client.frame("error")
    await client.send(
        {
            "type": "send",
            "conversation_id": str(conversation),
            "client_message_id": "files",
            "attachments": [str(uuid.uuid4())] * 11,
        }
    )
    too_many = await client.frame("error")
    await client.send({"type": "read", "conversation_id": str(conversation), "seq": "x"})
    bad_seq = await client.frame("error")
    # The longest body fits in one frame even when every character is escaped in JSON.
    longest = await client.send_message(conversation, "é" * 10_000, client_message_id="max")
    # json.dumps writes the lone surrogate as the escape \ud800, as a client may.
    surrogate = await client.send_message(conversation, "hi \ud800", client_message_id="lone")
    # Nested deeper than Python's JSON parser goes, well under the frame size limit.
    await client.ws.send('{"type": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    too_deep = await client.frame("error")

    assert (too_long["code"], too_long["field"]) == ("too_long", "body")
    assert too_long["client_message_id"] == "long"
    assert (empty["code"], empty["field"]) == ("empty_message", "body")
    assert not_yours["code"] == "not_found"
    assert not_yours["client_message_id"] == "elsewhere"
    assert not_yours["conversation_id"] == str(theirs)
    assert too_long["conversation_id"] == str(conversation)
    assert (no_client_id["code"], no_client_id["field"]) == ("invalid_frame", "client_message_id")
    assert bad_id["field"] == "client_message_id"
    assert no_client_id["message"].startswith("client_message_id is required")
    assert number_id["field"] == "client_message_id"
    assert number_id["message"].startswith("client_message_id must be a string")
    assert number_id["conversation_id"] == str(conversation)
    assert (too_many["code"], too_many["field"]) == ("too_many", "attachments")
    assert too_many["conversation_id"] == str(conversation)
    assert (bad_seq["code"], bad_seq["field"]) == ("invalid_frame", "seq")
    assert bad_seq["conversation_id"] == str(conversation)
    assert longest["type"] == "sent"
    assert longest["message"]["seq"] == 1
    assert (surrogate["code"], surrogate["field"]) == ("invalid_frame", "body")
    assert "unpaired UTF-16 surrogate" in surrogate["message"]
    assert too_deep["code"] == "invalid_json"
    await client.send({"type": "ping"})
    assert await client.frame("pong")
    await client.close()


async def test_member_send_unknown_conversation(server: Server) -> None:
    member = await add_member(server.runtime)
    other = await add_member(server.runtime)
    theirs = await start_conversation(server.runtime, other.workspace_id, None)
    client = await connect_client(server, member.token)

    unknown = await client.send_message(uuid.uuid4(), "hi", client_message_id="unknown")
    elsewhere = await client.send_message(theirs, "hi", client_message_id="elsewhere")
    subscribed = await client.subscribe(theirs)

    for error in (unknown, elsewhere, subscribed):
        assert error["type"] == "error"
        assert error["code"] == "not_found"
        assert error["message"] == "No such conversation."
    await client.close()


async def test_attachments_visitor_uploads_only(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    stranger = await add_visitor(runtime, member.workspace_id, name="Other")
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    own = await add_object(
        runtime,
        member.workspace_id,
        bucket_name=VISITOR_UPLOAD_BUCKET,
        metadata={"visitor_id": str(visitor.id)},
    )
    foreign = await add_object(
        runtime,
        member.workspace_id,
        bucket_name=VISITOR_UPLOAD_BUCKET,
        metadata={"visitor_id": str(stranger.id)},
    )
    staff_file = await add_object(runtime, member.workspace_id, bucket_name="documents")
    elsewhere = await add_member(runtime)
    other_workspace_file = await add_object(runtime, elsewhere.workspace_id, bucket_name="docs")
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)

    accepted = await client.send_message(conversation, "photo", attachments=[str(own)])
    rejected = {
        "other visitor's upload": await client.send_message(
            conversation, "x", attachments=[str(foreign)]
        ),
        "staff file": await client.send_message(conversation, "x", attachments=[str(staff_file)]),
    }
    staff_sent = await staff.send_message(conversation, "doc", attachments=[str(staff_file)])
    staff_other = await staff.send_message(
        conversation, "x", attachments=[str(other_workspace_file)]
    )

    assert accepted["type"] == "sent"
    assert [a["object_id"] for a in accepted["message"]["attachments"]] == [str(own)]
    async with runtime.sessionmaker() as session:
        upload = await session.get(StoredObject, own)
        assert upload is not None
        # The mark that keeps the upload from the sweep of unsent uploads.
        assert upload.user_metadata["message_id"] == accepted["message"]["id"]
    for name, frame in rejected.items():
        assert frame["type"] == "error", name
        assert frame["code"] == "not_found", name
        assert frame["field"] == "attachments.0", name
    assert staff_sent["type"] == "sent"
    assert staff_sent["message"]["attachments"][0]["object_id"] == str(staff_file)
    assert staff_other["code"] == "not_found"
    assert staff_other["field"] == "attachments.0"
    await staff.close()
    await client.close()


async def test_send_rate_limit(server: Server) -> None:
    member = await add_member(server.runtime)
    conversation = await start_conversation(server.runtime, member.workspace_id)
    staff = await connect_client(server, member.token)

    # The frames go out back to back, so the bucket refills little while the server works
    # through them; several past the burst make the test hold on a slow machine.
    ids = [f"m{n}" for n in range(SEND_BURST + 5)]
    for client_message_id in ids:
        await staff.send(
            {
                "type": "send",
                "conversation_id": str(conversation),
                "client_message_id": client_message_id,
                "body": client_message_id,
            }
        )
    results = [
        await staff.next(
            lambda f, wanted=client_message_id: (
                f.get("type") in ("sent", "error") and f.get("client_message_id") == wanted
            )
        )
        for client_message_id in ids
    ]

    assert [r["type"] for r in results[:SEND_BURST]] == ["sent"] * SEND_BURST
    errors = [r for r in results if r["type"] == "error"]
    assert errors, "no send past the burst was rate limited"
    limited = errors[0]
    assert limited["code"] == "rate_limited"
    assert limited["conversation_id"] == str(conversation)
    assert 0 < limited["retry_after"] <= 1
    assert limited["client_message_id"]
    # Ignoring the errors closes the connection.
    # A few more than the maximum, in case the bucket refilled a token meanwhile.
    for n in range(MAX_REJECTED_SENDS + 3):
        await staff.send(
            {
                "type": "send",
                "conversation_id": str(conversation),
                "client_message_id": f"flood-{n}",
                "body": "flood",
            }
        )
    assert await close_code(staff.ws) == 4008


# Read positions


async def test_read_moves_forward_only(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)
    cid = str(conversation)
    for n in range(3):
        await client.send_message(conversation, f"question {n}")

    await staff.send({"type": "read", "conversation_id": cid, "seq": 2})
    staff_read = await client.event("conversation.read")
    await staff.send({"type": "read", "conversation_id": cid, "seq": 1})
    await staff.send({"type": "read", "conversation_id": cid, "seq": 99})
    clamped = await client.event("conversation.read")
    await staff.send_message(conversation, "answer")
    await client.send({"type": "read", "conversation_id": cid, "seq": 2})
    await client.send({"type": "read", "conversation_id": cid, "seq": 4})
    visitor_read = await staff.next(
        lambda f: (
            f.get("event") == "conversation.read" and f["data"]["participant"]["type"] == "visitor"
        )
    )

    assert staff_read["data"]["participant"] == {"type": "staff", "id": None}
    assert staff_read["data"]["last_read_seq"] == 2
    # The backwards read (1) recorded nothing, and 99 is clamped to the newest seq.
    assert clamped["data"]["last_read_seq"] == 3
    # The visitor's own messages had moved their position to 3, so 2 recorded nothing.
    assert visitor_read["data"]["last_read_seq"] == 4
    assert visitor_read["data"]["participant"] == {"type": "visitor", "id": str(visitor.id)}
    await client.send({"type": "read", "conversation_id": str(uuid.uuid4()), "seq": 1})
    assert (await client.frame("error"))["code"] == "not_found"
    await staff.close()
    await client.close()


# Typing


async def test_typing_reaches_other_side(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)
    await staff.subscribe(conversation)
    await client.subscribe(conversation)
    cid = str(conversation)

    await staff.send({"type": "typing", "conversation_id": cid, "state": "start"})
    staff_typing = await client.frame("typing")
    await client.send({"type": "typing", "conversation_id": cid, "state": "start"})
    visitor_typing = await staff.frame("typing")
    colleague = await connect_client(server, (await add_member(
        runtime, workspace_id=member.workspace_id)).token)  # fmt: skip
    joined = await colleague.subscribe(conversation)
    await client.close()
    stopped = await staff.frame("typing", state="stop")

    assert staff_typing == {
        "type": "typing",
        "conversation_id": cid,
        "state": "start",
        "participant": {"type": "staff", "name": "Test Member"},
        "expires_in": TYPING_EXPIRES_SECONDS,
    }
    visitor_participant = {"type": "visitor", "id": str(visitor.id), "name": "Camille"}
    assert visitor_typing["participant"] == visitor_participant
    assert visitor_typing["state"] == "start"
    staff_participant = {"type": "member", "id": str(member.user_id), "name": "Test Member"}
    assert joined["typing"] == [staff_participant, visitor_participant] or joined["typing"] == [
        visitor_participant,
        staff_participant,
    ]
    assert stopped["participant"] == visitor_participant
    assert "expires_in" not in stopped
    # The typist never gets its own frames back.
    await staff.no_frame(
        lambda f: f.get("type") == "typing" and f["participant"]["type"] == "member"
    )
    await staff.close()
    await colleague.close()


async def test_typing_throttled(server: Server) -> None:
    member = await add_member(server.runtime)
    visitor = await add_visitor(server.runtime, member.workspace_id)
    conversation = await start_conversation(server.runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)
    await staff.subscribe(conversation)
    await client.subscribe(conversation)
    start = {"type": "typing", "conversation_id": str(conversation), "state": "start"}

    for _ in range(5):
        await client.send(start)
    assert (await staff.frame("typing"))["state"] == "start"
    await staff.no_frame(lambda f: f.get("type") == "typing")
    await asyncio.sleep(TYPING_THROTTLE_SECONDS)
    await client.send(start)
    refreshed = await staff.frame("typing")
    await client.send({**start, "state": "stop"})
    stopped = await staff.frame("typing")
    # A stop with nothing to stop is dropped.
    await client.send({**start, "state": "stop"})

    assert refreshed["state"] == "start"
    assert stopped["state"] == "stop"
    await staff.no_frame(lambda f: f.get("type") == "typing")
    await staff.close()
    await client.close()


async def test_note_typing_hidden_from_visitor(server: Server) -> None:
    runtime = server.runtime
    member = await add_member(runtime)
    colleague = await add_member(runtime, workspace_id=member.workspace_id)
    visitor = await add_visitor(runtime, member.workspace_id)
    conversation = await start_conversation(runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    other = await connect_client(server, colleague.token)
    client = await connect_client(server, visitor.token)
    for each in (staff, other, client):
        await each.subscribe(conversation)
    typing = {"type": "typing", "conversation_id": str(conversation)}

    await staff.send({**typing, "state": "start", "kind": "note"})
    note_typing = await other.frame("typing")
    late_visitor = await connect_client(server, visitor.token)
    visitor_view = await late_visitor.subscribe(conversation)
    staff_view = await other.subscribe(conversation)
    await client.no_frame(lambda f: f.get("type") == "typing")
    # Switching to a message is forwarded at once, inside the throttle interval.
    await staff.send({**typing, "state": "start"})
    message_typing = await client.frame("typing")
    switched = await other.frame("typing", state="stop")
    await client.send({**typing, "state": "start", "kind": "note"})
    visitor_note = await client.frame("error")

    assert note_typing["kind"] == "note"
    assert note_typing["state"] == "start"
    assert visitor_view["typing"] == []
    assert staff_view["typing"] == [
        {"type": "member", "id": str(member.user_id), "name": "Test Member", "kind": "note"}
    ]
    assert message_typing["state"] == "start"
    assert "kind" not in message_typing
    assert switched["kind"] == "note"
    assert (visitor_note["code"], visitor_note["field"]) == ("invalid_kind", "kind")
    for each in (staff, other, client, late_visitor):
        await each.close()


async def test_typing_needs_subscription(server: Server) -> None:
    member = await add_member(server.runtime)
    conversation = await start_conversation(server.runtime, member.workspace_id)
    staff = await connect_client(server, member.token)

    await staff.send({"type": "typing", "conversation_id": str(conversation), "state": "start"})
    error = await staff.frame("error")

    assert error["code"] == "not_subscribed"
    assert error["conversation_id"] == str(conversation)
    await staff.close()


async def test_unsubscribe_stops_typing(server: Server) -> None:
    member = await add_member(server.runtime)
    visitor = await add_visitor(server.runtime, member.workspace_id)
    conversation = await start_conversation(server.runtime, member.workspace_id, visitor.id)
    staff = await connect_client(server, member.token)
    client = await connect_client(server, visitor.token)
    await staff.subscribe(conversation)
    await client.subscribe(conversation)

    await staff.send({"type": "typing", "conversation_id": str(conversation), "state": "start"})
    assert (await client.frame("typing"))["state"] == "start"
    await staff.send({"type": "unsubscribe", "conversation_id": str(conversation)})
    stopped = await client.frame("typing")

    assert stopped["state"] == "stop"
    assert stopped["participant"] == {"type": "staff", "name": "Test Member"}
    await staff.close()
    await client.close()


# Presence


@pytest.mark.parametrize(
    "realtime_settings",
    [{"realtime_presence_grace_seconds": 1.0, "realtime_presence_interval_seconds": 0.5}],
)
async def test_presence_with_grace(server: Server) -> None:
    runtime = server.runtime
    watcher = await add_member(runtime)
    colleague = await add_member(runtime, workspace_id=watcher.workspace_id)
    visitor = await add_visitor(runtime, watcher.workspace_id)
    staff = await connect_client(server, watcher.token)
    snapshot = await staff.frame("presence_snapshot")
    client = await connect_client(server, visitor.token)
    uid = str(colleague.user_id)

    other = await connect_client(server, colleague.token)
    online = await staff.frame("presence", user_id=uid)
    other_snapshot = await other.frame("presence_snapshot")
    await other.send({"type": "presence", "status": "away"})
    away = await staff.frame("presence", user_id=uid)
    await other.close()
    # A reconnect within the grace period announces no offline, only the status change.
    await asyncio.sleep(0.2)
    other = await connect_client(server, colleague.token)
    back = await staff.frame("presence", user_id=uid)
    await staff.no_frame(lambda f: f.get("type") == "presence", wait=1.2)
    await other.close()
    await staff.no_frame(lambda f: f.get("type") == "presence", wait=0.3)
    offline = await staff.frame("presence", user_id=uid, timeout=3)

    assert snapshot["users"] == [{"user_id": str(watcher.user_id), "status": "online"}]
    assert online["status"] == "online"
    assert {"user_id": uid, "status": "online"} in other_snapshot["users"]
    assert {"user_id": str(watcher.user_id), "status": "online"} in other_snapshot["users"]
    assert away["status"] == "away"
    assert back["status"] == "online"
    assert offline["status"] == "offline"
    await client.send({"type": "presence", "status": "away"})
    assert (await client.frame("error"))["code"] == "forbidden"
    await client.no_frame(lambda f: f.get("type") in ("presence", "presence_snapshot"), wait=0.1)
    await staff.close()
    await client.close()


async def test_presence_needs_all_connections_away(server: Server) -> None:
    watcher = await add_member(server.runtime)
    colleague = await add_member(server.runtime, workspace_id=watcher.workspace_id)
    device = await add_member(
        server.runtime, workspace_id=watcher.workspace_id, user_id=colleague.user_id
    )
    staff = await connect_client(server, watcher.token)
    uid = str(colleague.user_id)
    laptop = await connect_client(server, colleague.token)
    assert (await staff.frame("presence", user_id=uid))["status"] == "online"
    phone = await connect_client(server, device.token)

    await laptop.send({"type": "presence", "status": "away"})
    await staff.no_frame(lambda f: f.get("type") == "presence")
    await phone.send({"type": "presence", "status": "away"})
    away = await staff.frame("presence", user_id=uid)
    await laptop.send({"type": "presence", "status": "online"})
    online = await staff.frame("presence", user_id=uid)

    assert away["status"] == "away"
    assert online["status"] == "online"
    for each in (staff, laptop, phone):
        await each.close()


# Slow clients


@pytest.mark.parametrize("realtime_settings", [{"realtime_send_queue_size": 64}])
async def test_slow_consumer_closed_by_presence(server: Server) -> None:
    """Presence frames wait in the same bounded queue as events, so they close a slow client."""
    watcher = await add_member(server.runtime)
    toggler = await add_member(server.runtime, workspace_id=watcher.workspace_id)
    slow = await open_socket(server, max_queue=1, compression=None, max_size=None)
    await slow.send(json.dumps({"type": "auth", "token": watcher.token}))
    assert json.loads(await slow.recv())["type"] == "ready"
    [slow_connection] = server.gateway.connections
    busy = await connect_client(server, toggler.token)

    # Fill the socket buffers with large events until the server's writer waits for the
    # client, which shows as frames staying in the queue.
    payload = os.urandom(32 * 1024).hex()
    async with asyncio.timeout(20):
        while slow_connection.queued < 8:
            async with unit_of_work(server.runtime) as uow:
                for _ in range(4):
                    uow.record_event(
                        "enquiry.updated", {"blob": payload}, workspace_id=watcher.workspace_id
                    )
            await asyncio.sleep(0.05)
            await busy.drain()
    assert not slow_connection.closing.is_set()

    toggles = 0
    async with asyncio.timeout(20):
        while not slow_connection.closing.is_set():
            status = "away" if toggles % 2 == 0 else "online"
            await busy.send({"type": "presence", "status": status})
            await busy.frame("presence", status=status)
            toggles += 1

    assert slow_connection.close_code == 4010
    assert await close_code(slow, timeout=10) == 4010
    assert toggles <= 64
    await busy.send({"type": "ping"})
    assert await busy.frame("pong")
    await busy.close()


# Brokers


async def test_ephemeral_messages_bounded() -> None:
    broker = MemoryBroker()
    received: list[dict[str, Any]] = []
    broker.subscribe_ephemeral(received.append)

    await broker.publish_ephemeral({"kind": "typing", "name": "Camille"})
    with pytest.raises(EphemeralTooLarge):
        await broker.publish_ephemeral({"kind": "typing", "name": "x" * MAX_EPHEMERAL_BYTES})
    broker.unsubscribe_ephemeral(received.append)
    await broker.publish_ephemeral({"kind": "typing", "name": "after"})

    assert received == [{"kind": "typing", "name": "Camille"}]
