"""The public visitor API of the website chat, over HTTP through the application."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from PIL import Image

from clamd_server import EICAR, FakeClamd
from clamd_server import clamd as clamd
from conftest import run_jobs
from factories import Staff, count_rows, owner
from frontdesk.contacts.models import Contact
from frontdesk.conversations import chat_settings, service
from frontdesk.conversations.chat_uploads import UNSENT_UPLOAD_LIFETIME, discard_unsent_uploads
from frontdesk.conversations.models import (
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
)
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime
from frontdesk.storage.models import Bucket, StoredObject
from test_realtime import Server, add_member, realtime_settings, server
from test_realtime_chat import connect_client

# Fixtures imported from test_realtime; naming them here keeps linters from removing them.
__all__ = ["realtime_settings", "server"]

PROBLEM = "application/problem+json"
SITE = "https://studio.example"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
UPLOAD_MAX = 64 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "chat_upload_max_bytes": UPLOAD_MAX,
        "chat_visitors_per_ip_per_hour": 8,
        "chat_writes_per_visitor_per_minute": 15,
        "chat_writes_per_ip_per_minute": 40,
        "chat_uploads_per_visitor_per_hour": 4,
    }


@dataclass
class Chat:
    staff: Staff
    key: str

    def url(self, path: str = "") -> str:
        return f"/chat/{self.key}{path}"


@dataclass
class Visitor:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def tampered_token(token: str) -> str:
    """Change the first character of the signature, which always carries signed bits."""
    signed, signature = token.rsplit(".", 1)
    first = "B" if signature[0] == "A" else "A"
    return f"{signed}.{first}{signature[1:]}"


async def make_chat(client: httpx.AsyncClient, **settings: Any) -> Chat:
    staff = await owner(client)
    if settings:
        response = await client.put("/api/v1/chat/settings", headers=staff.headers, json=settings)
    else:
        response = await client.get("/api/v1/chat/settings", headers=staff.headers)
    assert response.status_code == 200, response.text
    return Chat(staff, response.json()["public_key"])


async def make_visitor(client: httpx.AsyncClient, chat: Chat, **body: Any) -> Visitor:
    response = await client.post(chat.url("/visitors"), json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    return Visitor(created["visitor"]["id"], created["visitor_token"])


async def start(client: httpx.AsyncClient, chat: Chat, visitor: Visitor) -> dict[str, Any]:
    response = await client.post(chat.url("/conversations"), headers=visitor.headers)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def send(
    client: httpx.AsyncClient,
    chat: Chat,
    visitor: Visitor,
    conversation_id: str,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        chat.url(f"/conversations/{conversation_id}/messages"), headers=visitor.headers, json=body
    )


async def upload(
    client: httpx.AsyncClient,
    chat: Chat,
    visitor: Visitor,
    content: bytes,
    *,
    content_type: str = "application/octet-stream",
    filename: str = "file.bin",
) -> httpx.Response:
    return await client.post(
        chat.url("/uploads"),
        headers=visitor.headers | {"Content-Type": content_type},
        params={"filename": filename},
        content=content,
    )


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def staff_reply(runtime: Runtime, chat: Chat, conversation_id: str, **kwargs: Any) -> int:
    async with unit_of_work(runtime) as uow:
        conversation = await service.get_conversation(
            uow, workspace_id=chat.staff.workspace_id, conversation_id=uuid.UUID(conversation_id)
        )
        author = service.Author(type="member", id=chat.staff.user_id, name="Ana")
        message, _ = await service.post_message(uow, conversation, author=author, **kwargs)
        return message.seq


async def load(runtime: Runtime, model: Any, key: Any) -> Any:
    async with runtime.sessionmaker() as session:
        return await session.get(model, key)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    if code is not None:
        assert response.json()["code"] == code


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


# --- Config and disabled chats ----------------------------------------------------------------


async def test_config_returns_theme(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client, theme={"title": "Ask us", "position": "left"})

    response = await client.get(chat.url("/config"))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "enabled": True,
        "title": "Ask us",
        "greeting": "Hi! How can we help you?",
        "color": "#2563eb",
        "position": "left",
        "staff_online": False,
    }


async def test_config_shows_staff_online(server: Server) -> None:
    member = await add_member(server.runtime)
    async with unit_of_work(server.runtime) as uow:
        key = (await chat_settings.get_or_create_settings(uow, member.workspace_id)).public_key
    url = f"{server.live.http_url}/chat/{key}/config"

    async with httpx.AsyncClient(trust_env=False) as http:
        before = await http.get(url)
        staff = await connect_client(server, member.token)
        await staff.frame("presence_snapshot")
        during = await http.get(url)
        await staff.send({"type": "presence", "status": "away"})
        await staff.frame("presence", user_id=str(member.user_id))
        away = await http.get(url)
        await staff.close()

    assert before.json()["staff_online"] is False
    assert during.json()["staff_online"] is True
    assert away.json()["staff_online"] is False


async def test_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/chat/no-such-key/config")

    assert_problem(response, 404, "chat_not_found")


async def test_disabled_chat_refuses_visitors(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    await client.put("/api/v1/chat/settings", headers=chat.staff.headers, json={"enabled": False})

    config = await client.get(chat.url("/config"))
    created = await client.post(chat.url("/visitors"), json={})
    listed = await client.get(chat.url("/conversations"), headers=visitor.headers)

    assert config.status_code == 200
    assert config.json()["enabled"] is False
    assert_problem(created, 404, "chat_disabled")
    assert_problem(listed, 404, "chat_disabled")
    assert await count_rows(runtime, ChatVisitor) == 1


# --- CORS -------------------------------------------------------------------------------------


async def test_preflight_allows_listed_origin(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])

    response = await client.options(
        chat.url("/conversations/abc/messages"),
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == SITE
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "Content-Type" in response.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("origin", "method", "code"),
    [
        ("https://evil.example", "POST", "origin_not_allowed"),
        ("https://studio.example.evil.example", "GET", "origin_not_allowed"),
        (SITE, "DELETE", "method_not_allowed"),
    ],
)
async def test_preflight_rejects(
    client: httpx.AsyncClient, origin: str, method: str, code: str
) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])

    response = await client.options(
        chat.url("/visitors"), headers={"Origin": origin, "Access-Control-Request-Method": method}
    )

    assert_problem(response, 403, code)
    assert "access-control-allow-origin" not in response.headers


async def test_disallowed_origin_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])

    response = await client.post(
        chat.url("/visitors"), json={"name": "Eve"}, headers={"Origin": "https://evil.example"}
    )

    assert_problem(response, 403, "origin_not_allowed")
    assert await count_rows(runtime, ChatVisitor) == 0


async def test_allowed_origin_on_success_and_errors(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])
    origin = {"Origin": SITE}

    created = await client.post(chat.url("/visitors"), json={}, headers=origin)
    unauthorized = await client.get(chat.url("/conversations"), headers=origin)
    invalid = await client.post(chat.url("/visitors"), json={"email": "nope"}, headers=origin)

    for response in (created, unauthorized, invalid):
        assert response.headers["access-control-allow-origin"] == SITE
        assert "Origin" in response.headers["vary"]
    assert created.status_code == 201
    assert_problem(unauthorized, 401)
    assert_problem(invalid, 422)


async def test_empty_origin_list_allows_any(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client)

    response = await client.get(chat.url("/config"), headers={"Origin": "https://any.example"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://any.example"


async def test_own_origin_always_allowed(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])

    response = await client.get(chat.url("/config"), headers={"Origin": "http://frontdesk.test"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://frontdesk.test"


async def test_same_origin_page_allowed(app: FastAPI, client: httpx.AsyncClient) -> None:
    chat = await make_chat(client, allowed_origins=[SITE])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))

    # A page served by Frontdesk on a host other than its public URL, like the demo page
    # opened as localhost instead of 127.0.0.1.
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as local:
        same = await local.get(chat.url("/config"), headers={"Origin": "http://localhost:8000"})
        other = await local.get(chat.url("/config"), headers={"Origin": "http://localhost:9000"})

    assert same.status_code == 200
    assert same.headers["access-control-allow-origin"] == "http://localhost:8000"
    assert_problem(other, 403, "origin_not_allowed")


# --- Visitors and tokens ----------------------------------------------------------------------


async def test_visitor_created_with_contact(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)

    response = await client.post(
        chat.url("/visitors"), json={"name": "Camille", "email": " Camille@Example.org "}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["visitor_token"].startswith("fdv1.")
    assert body["visitor"]["name"] == "Camille"
    assert body["visitor"]["email"] == "camille@example.org"
    visitor = await load(runtime, ChatVisitor, uuid.UUID(body["visitor"]["id"]))
    contact = await load(runtime, Contact, visitor.contact_id)
    assert contact.email == "camille@example.org"
    assert contact.workspace_id == chat.staff.workspace_id

    second = await make_visitor(client, chat, email="camille@example.org")
    assert (await load(runtime, ChatVisitor, uuid.UUID(second.id))).contact_id == contact.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"name": "x" * 201}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"nickname": "Cam"}, "nickname"),
    ],
)
async def test_visitor_create_rejects(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    chat = await make_chat(client)

    response = await client.post(chat.url("/visitors"), json=body)

    assert_problem(response, 422)
    assert field in error_fields(response)
    assert await count_rows(runtime, ChatVisitor) == 0
    assert await count_rows(runtime, Contact) == 0


async def test_token_rejections(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    other_chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    stranger = await make_visitor(client, other_chat)
    revoked = await make_visitor(client, chat)
    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(ChatVisitor)
            .where(ChatVisitor.id == uuid.UUID(revoked.id))
            .values(revoked_at=runtime.clock.now())
        )
        await session.commit()
    staff_token = chat.staff.headers

    cases = {
        "missing": {},
        "garbage": {"Authorization": "Bearer fdv1.garbage.garbage"},
        "basic": {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
        "tampered": {"Authorization": f"Bearer {tampered_token(visitor.token)}"},
        "other workspace": stranger.headers,
        "revoked": revoked.headers,
        "staff token": staff_token,
    }
    for label, headers in cases.items():
        response = await client.get(chat.url("/visitor"), headers=headers)
        assert response.status_code == 401, f"{label}: {response.text}"
        assert response.headers["content-type"] == PROBLEM, label
    assert (await client.get(chat.url("/visitor"), headers=visitor.headers)).status_code == 200


async def test_patch_email_links_conversations(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat, name="Cam")
    conversation = await start(client, chat, visitor)

    response = await client.patch(
        chat.url("/visitor"), headers=visitor.headers, json={"email": "cam@example.org"}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"id": visitor.id, "name": "Cam", "email": "cam@example.org"}
    stored = await load(runtime, Conversation, uuid.UUID(conversation["id"]))
    contact = await load(runtime, Contact, stored.contact_id)
    assert contact.email == "cam@example.org"
    assert contact.name == "Cam"

    renamed = await client.patch(chat.url("/visitor"), headers=visitor.headers, json={"name": None})
    assert renamed.json()["name"] is None
    assert renamed.json()["email"] == "cam@example.org"


async def test_patch_invalid_email_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat, name="Cam")

    response = await client.patch(
        chat.url("/visitor"), headers=visitor.headers, json={"name": "New", "email": "bad@"}
    )

    assert_problem(response, 422)
    assert error_fields(response) == ["email"]
    stored = await load(runtime, ChatVisitor, uuid.UUID(visitor.id))
    assert stored.name == "Cam"
    assert stored.email is None
    assert await count_rows(runtime, Contact) == 0


# --- Conversations ----------------------------------------------------------------------------


async def test_start_resumes_until_resolved(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat, email="ada@example.org")

    first = await client.post(chat.url("/conversations"), headers=visitor.headers)
    again = await client.post(chat.url("/conversations"), headers=visitor.headers)

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["last_seq"] == 0
    assert first.json()["visitor_read_seq"] == 0
    stored = await load(runtime, Conversation, uuid.UUID(first.json()["id"]))
    assert stored.channel == "chat"
    assert str(stored.visitor_id) == visitor.id
    visitor_row = await load(runtime, ChatVisitor, uuid.UUID(visitor.id))
    assert stored.contact_id == visitor_row.contact_id is not None

    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(Conversation).where(Conversation.id == stored.id).values(status="resolved")
        )
        await session.commit()
    new = await client.post(chat.url("/conversations"), headers=visitor.headers)
    assert new.status_code == 201
    assert new.json()["id"] != first.json()["id"]

    listed = await client.get(chat.url("/conversations"), headers=visitor.headers)
    assert [item["id"] for item in listed.json()["items"]] == [
        new.json()["id"],
        first.json()["id"],
    ]


async def test_conversation_list_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    started: list[str] = []
    for _ in range(3):
        conversation = await start(client, chat, visitor)
        started.append(conversation["id"])
        async with runtime.sessionmaker() as session:
            await session.execute(
                sa.update(Conversation)
                .where(Conversation.id == uuid.UUID(conversation["id"]))
                .values(status="resolved")
            )
            await session.commit()

    first = await client.get(
        chat.url("/conversations"), params={"limit": 2}, headers=visitor.headers
    )
    second = await client.get(
        chat.url("/conversations"),
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=visitor.headers,
    )
    no_limit = await client.get(
        chat.url("/conversations"), params={"limit": 0}, headers=visitor.headers
    )
    bad_cursor = await client.get(
        chat.url("/conversations"), params={"cursor": "garbage"}, headers=visitor.headers
    )
    inbox = await client.get(
        "/api/v1/conversations", params={"limit": 2}, headers=chat.staff.headers
    )
    inbox_cursor = await client.get(
        chat.url("/conversations"),
        params={"cursor": inbox.json()["next_cursor"]},
        headers=visitor.headers,
    )

    assert [item["id"] for item in first.json()["items"]] == [started[2], started[1]]
    assert first.json()["next_cursor"] is not None
    assert [item["id"] for item in second.json()["items"]] == [started[0]]
    assert second.json()["next_cursor"] is None
    assert_problem(no_limit, 422)
    assert error_fields(no_limit) == ["limit"]
    assert_problem(bad_cursor, 422)
    assert error_fields(bad_cursor) == ["cursor"]
    assert bad_cursor.json()["errors"][0]["code"] == "invalid_cursor"
    assert_problem(inbox_cursor, 422)
    assert error_fields(inbox_cursor) == ["cursor"]
    assert "another list" in inbox_cursor.json()["errors"][0]["message"]


async def test_concurrent_starts_share_conversation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)

    responses = await asyncio.gather(
        *(client.post(chat.url("/conversations"), headers=visitor.headers) for _ in range(3))
    )

    assert sorted(response.status_code for response in responses) == [200, 200, 201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert await count_rows(runtime, Conversation) == 1


async def test_other_visitor_sees_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    owner_visitor = await make_visitor(client, chat)
    intruder = await make_visitor(client, chat)
    conversation = await start(client, chat, owner_visitor)
    path = f"/conversations/{conversation['id']}"

    listed = await client.get(chat.url("/conversations"), headers=intruder.headers)
    history = await client.get(chat.url(f"{path}/messages"), headers=intruder.headers)
    sent = await send(client, chat, intruder, conversation["id"], body="hi")
    read = await client.post(chat.url(f"{path}/read"), headers=intruder.headers, json={"seq": 1})
    unknown = await client.get(
        chat.url(f"/conversations/{uuid.uuid4()}/messages"), headers=owner_visitor.headers
    )

    assert listed.json() == {"items": [], "next_cursor": None}
    assert_problem(history, 404)
    assert_problem(sent, 404)
    assert_problem(read, 404)
    assert_problem(unknown, 404)
    assert await count_rows(runtime, ConversationMessage) == 0


async def test_other_workspace_conversation_404(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client)
    other_chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    other_visitor = await make_visitor(client, other_chat)

    response = await client.get(
        other_chat.url(f"/conversations/{conversation['id']}/messages"),
        headers=other_visitor.headers,
    )

    assert_problem(response, 404)


# --- Messages ---------------------------------------------------------------------------------


async def test_send_and_read_history(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat, name="Cam")
    conversation = await start(client, chat, visitor)
    conversation_id = conversation["id"]

    sent = await send(
        client, chat, visitor, conversation_id, body="**Hello**", client_message_id="m1"
    )
    resent = await send(
        client, chat, visitor, conversation_id, body="**Hello**", client_message_id="m1"
    )
    await staff_reply(runtime, chat, conversation_id, body="Hi Cam")
    await staff_reply(runtime, chat, conversation_id, kind="note", body="secret note")

    assert sent.status_code == 201, sent.text
    assert resent.status_code == 200, resent.text
    message = sent.json()["message"]
    assert resent.json()["message"]["id"] == message["id"]
    assert message["seq"] == 1
    assert message["author"] == {"type": "visitor", "name": None}
    assert message["body_html"] == "<p><strong>Hello</strong></p>"
    assert message["client_message_id"] == "m1"

    history = await client.get(
        chat.url(f"/conversations/{conversation_id}/messages"), headers=visitor.headers
    )
    assert history.status_code == 200
    items = history.json()["items"]
    assert [item["seq"] for item in items] == [1, 2]
    assert items[1]["author"] == {"type": "staff", "name": "Ana"}
    assert "secret note" not in history.text
    assert history.json()["has_before"] is False

    page = await client.get(
        chat.url(f"/conversations/{conversation_id}/messages"),
        headers=visitor.headers,
        params={"after": 1, "limit": 1},
    )
    assert [item["seq"] for item in page.json()["items"]] == [2]
    around = await client.get(
        chat.url(f"/conversations/{conversation_id}/messages"),
        headers=visitor.headers,
        params={"around": message["id"]},
    )
    assert [item["seq"] for item in around.json()["items"]] == [1, 2]

    async with runtime.sessionmaker() as session:
        audiences = set(
            await session.scalars(
                sa.select(Event.audience).where(Event.name == "conversation.message.created")
            )
        )
    assert audiences == {"staff", "visitor"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"before": -1}, "before"),
        ({"after": "abc"}, "after"),
        ({"around": "not-a-seq"}, "around"),
        ({"around": str(uuid.uuid4())}, "around"),
        ({"before": 3, "after": 1}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"after": 2**63}, "after"),
        ({"before": 10**30}, "before"),
        ({"around": str(2**63)}, "around"),
    ],
)
async def test_history_rejects_query(
    client: httpx.AsyncClient, query: dict[str, Any], field: str
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)

    response = await client.get(
        chat.url(f"/conversations/{conversation['id']}/messages"),
        headers=visitor.headers,
        params=query,
    )

    assert_problem(response, 422)
    assert field in error_fields(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"body": "x" * 10_001}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "a\x00b"}, "body"),
        ({"body": "hi", "client_message_id": ""}, "client_message_id"),
        ({"body": "hi", "attachments": ["not-a-uuid"]}, "attachments.0"),
        ({"body": "hi", "attachments": [str(uuid.uuid4())]}, "attachments.0"),
        ({"body": "hi", "kind": "note"}, "kind"),
    ],
)
async def test_send_rejects_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)

    response = await send(client, chat, visitor, conversation["id"], **body)

    assert_problem(response, 422)
    assert field in error_fields(response)
    assert await count_rows(runtime, ConversationMessage) == 0
    stored = await load(runtime, Conversation, uuid.UUID(conversation["id"]))
    assert stored.last_seq == 0


async def test_read_moves_forward_only(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    for text in ("one", "two", "three"):
        await staff_reply(runtime, chat, conversation["id"], body=text)
    url = chat.url(f"/conversations/{conversation['id']}/read")

    forward = await client.post(url, headers=visitor.headers, json={"seq": 2})
    backward = await client.post(url, headers=visitor.headers, json={"seq": 1})
    past_end = await client.post(url, headers=visitor.headers, json={"seq": 99})
    negative = await client.post(url, headers=visitor.headers, json={"seq": -1})

    assert forward.json()["last_read_seq"] == 2
    assert backward.json()["last_read_seq"] == 2
    assert past_end.json()["last_read_seq"] == 3
    assert_problem(negative, 422)
    assert error_fields(negative) == ["seq"]
    participant = await load(
        runtime, ConversationParticipant, (uuid.UUID(conversation["id"]), "visitor", visitor.id)
    )
    assert participant.last_read_seq == 3
    resumed = await start(client, chat, visitor)
    assert resumed["visitor_read_seq"] == 3
    assert resumed["last_seq"] == 3


# --- Uploads and attachments ------------------------------------------------------------------


async def test_upload_attach_and_download(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    image = png_bytes()

    uploaded = await upload(
        client, chat, visitor, image, content_type="image/png", filename="red.png"
    )

    assert uploaded.status_code == 201, uploaded.text
    file = uploaded.json()
    assert file["content_type"] == "image/png"
    assert file["kind"] == "image"
    assert file["has_preview"] is True
    assert file["filename"] == "red.png"
    assert file["status"] == "available"
    stored = await load(runtime, StoredObject, uuid.UUID(file["object_id"]))
    bucket = await load(runtime, Bucket, stored.bucket_id)
    assert bucket.name == "chat-uploads"
    assert bucket.visibility == "private"
    assert stored.user_metadata == {"visitor_id": visitor.id}

    sent = await send(client, chat, visitor, conversation["id"], attachments=[file["object_id"]])
    assert sent.status_code == 201, sent.text
    message = sent.json()["message"]
    assert message["attachments"][0]["object_id"] == file["object_id"]
    stored = await load(runtime, StoredObject, uuid.UUID(file["object_id"]))
    assert stored.user_metadata == {"visitor_id": visitor.id, "message_id": message["id"]}

    base = chat.url(f"/conversations/{conversation['id']}/attachments/{file['object_id']}")
    download = await client.get(base, headers=visitor.headers)
    assert download.status_code == 200
    assert download.content == image
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith('attachment; filename="red.png"')
    preview = await client.get(f"{base}/preview", headers=visitor.headers, params={"format": "png"})
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(preview.content)).size == (40, 30)


async def test_unsent_uploads_swept(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    sent = (await upload(client, chat, visitor, PDF, filename="sent.pdf")).json()
    unsent = (await upload(client, chat, visitor, PDF, filename="unsent.pdf")).json()
    by_socket = (await upload(client, chat, visitor, PDF, filename="socket.pdf")).json()
    response = await send(
        client, chat, visitor, conversation["id"], attachments=[sent["object_id"]]
    )
    assert response.status_code == 201, response.text
    # The realtime gateway posts through the service, which marks no upload as sent.
    async with unit_of_work(runtime) as uow:
        stored_conversation = await uow.session.get(Conversation, uuid.UUID(conversation["id"]))
        assert stored_conversation is not None
        socket_message, _ = await service.post_message(
            uow,
            stored_conversation,
            author=service.Author(type="visitor", id=uuid.UUID(visitor.id)),
            attachments=[{k: v for k, v in by_socket.items() if k != "status"}],
        )
        socket_message_id = str(socket_message.id)

    async with unit_of_work(runtime) as uow:
        assert await discard_unsent_uploads(uow, older_than=UNSENT_UPLOAD_LIFETIME) == 0
    clock.advance(days=1, seconds=1)
    async with unit_of_work(runtime) as uow:
        assert await discard_unsent_uploads(uow, older_than=UNSENT_UPLOAD_LIFETIME) == 1
    await run_jobs(runtime)

    assert await load(runtime, StoredObject, uuid.UUID(unsent["object_id"])) is None
    assert await load(runtime, StoredObject, uuid.UUID(sent["object_id"])) is not None
    kept = await load(runtime, StoredObject, uuid.UUID(by_socket["object_id"]))
    assert kept.user_metadata["message_id"] == socket_message_id
    workspace = chat.staff.workspace_id
    paths = sorted([path async for path in runtime.storage.list_paths()])
    assert paths == sorted(
        [f"{workspace}/{sent['object_id']}", f"{workspace}/{by_socket['object_id']}"]
    )


async def test_upload_rejections_store_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)

    too_large = await upload(client, chat, visitor, png_bytes() + b"\0" * UPLOAD_MAX)
    executable = await upload(client, chat, visitor, b"MZ\x90\x00\x03" + b"\0" * 200)
    archive = await upload(
        client, chat, visitor, b"PK\x03\x04" + b"\0" * 200, content_type="image/png"
    )
    empty = await upload(client, chat, visitor, b"", filename="empty.pdf")

    assert_problem(too_large, 413)
    assert str(UPLOAD_MAX) in too_large.json()["detail"]
    assert_problem(executable, 415)
    assert_problem(archive, 415)
    assert_problem(empty, 422)
    assert empty.json()["errors"][0]["code"] == "file_empty"
    assert await count_rows(runtime, StoredObject) == 0
    assert [path async for path in runtime.storage.list_paths()] == []


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (b"just text", "notes.HTML"),
        (b"\xef\xbb\xbf  <?xml version='1.0'?><svg/>", "picture.png"),
        (b"\n<!DOCTYPE html><html><script>alert(1)</script></html>", "page.txt"),
    ],
)
async def test_markup_uploads_refused(
    client: httpx.AsyncClient, runtime: Runtime, content: bytes, filename: str
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)

    response = await upload(
        client, chat, visitor, content, content_type="image/svg+xml", filename=filename
    )

    assert_problem(response, 415)
    assert await count_rows(runtime, StoredObject) == 0
    assert [path async for path in runtime.storage.list_paths()] == []


async def test_plain_text_upload_accepted(client: httpx.AsyncClient) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)

    response = await upload(
        client, chat, visitor, b"Size 10 < size 12, see you soon", filename="notes.txt"
    )

    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "text/plain"


async def test_foreign_uploads_cannot_be_used(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    other = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    other_conversation = await start(client, chat, other)
    theirs = (await upload(client, chat, other, PDF, filename="theirs.pdf")).json()
    staff_upload = await client.post(
        f"/api/v1/storage/buckets/{await staff_bucket(client, chat)}/objects",
        headers=chat.staff.headers | {"Content-Type": "application/pdf"},
        params={"key": "private/contract.pdf"},
        content=PDF,
    )
    assert staff_upload.status_code == 201, staff_upload.text

    for object_id in (theirs["object_id"], staff_upload.json()["id"]):
        sent = await send(client, chat, visitor, conversation["id"], attachments=[object_id])
        assert_problem(sent, 422)
        assert error_fields(sent) == ["attachments.0"]
        download = await client.get(
            chat.url(f"/conversations/{conversation['id']}/attachments/{object_id}"),
            headers=visitor.headers,
        )
        assert_problem(download, 404)
    # The other visitor's upload in the other visitor's conversation is theirs, not ours.
    response = await client.get(
        chat.url(f"/conversations/{other_conversation['id']}/attachments/{theirs['object_id']}"),
        headers=visitor.headers,
    )
    assert_problem(response, 404)
    assert await count_rows(runtime, ConversationMessage) == 0


async def staff_bucket(client: httpx.AsyncClient, chat: Chat) -> str:
    response = await client.post(
        "/api/v1/storage/buckets", headers=chat.staff.headers, json={"name": "private"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_staff_attachment_visible_to_visitor(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    conversation = await start(client, chat, visitor)
    stored = await client.post(
        f"/api/v1/storage/buckets/{await staff_bucket(client, chat)}/objects",
        headers=chat.staff.headers | {"Content-Type": "application/pdf"},
        params={"key": "quotes/quote.pdf"},
        content=PDF,
    )
    object_id = stored.json()["id"]
    attachment = {
        "object_id": object_id,
        "filename": "quote.pdf",
        "content_type": "application/pdf",
    }
    url = chat.url(f"/conversations/{conversation['id']}/attachments/{object_id}")

    await staff_reply(runtime, chat, conversation["id"], kind="note", attachments=[attachment])
    hidden = await client.get(url, headers=visitor.headers)
    await staff_reply(runtime, chat, conversation["id"], body="Quote", attachments=[attachment])
    shown = await client.get(url, headers=visitor.headers)
    preview = await client.get(f"{url}/preview", headers=visitor.headers)

    assert_problem(hidden, 404)
    assert shown.status_code == 200
    assert shown.content == PDF
    assert_problem(preview, 415)


class TestBodyLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"max_body_bytes": 1000, "chat_upload_max_bytes": 5000}

    async def test_upload_has_own_limit(self, client: httpx.AsyncClient) -> None:
        chat = await make_chat(client)
        visitor = await make_visitor(client, chat)

        fits = await upload(client, chat, visitor, b"a" * 3000, filename="notes.txt")
        too_large = await upload(client, chat, visitor, b"a" * 6000, filename="notes.txt")

        assert fits.status_code == 201, fits.text
        assert fits.json()["size"] == 3000
        assert_problem(too_large, 413)
        assert "5000 bytes" in too_large.json()["detail"]


class TestScanning:
    @pytest.fixture
    def settings_overrides(self, clamd: FakeClamd) -> dict[str, Any]:
        return clamd.settings()

    async def test_quarantined_then_infected(
        self, client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd
    ) -> None:
        chat = await make_chat(client)
        visitor = await make_visitor(client, chat)
        conversation = await start(client, chat, visitor)
        clean = (await upload(client, chat, visitor, b"hello there", filename="note.txt")).json()
        infected = (await upload(client, chat, visitor, EICAR, filename="eicar.txt")).json()
        assert clean["status"] == "quarantined"
        sent = await send(
            client,
            chat,
            visitor,
            conversation["id"],
            attachments=[clean["object_id"], infected["object_id"]],
        )
        assert sent.status_code == 201, sent.text
        base = chat.url(f"/conversations/{conversation['id']}/attachments")

        locked = await client.get(f"{base}/{clean['object_id']}", headers=visitor.headers)
        assert_problem(locked, 423, "object_quarantined")

        await run_jobs(runtime)
        available = await client.get(f"{base}/{clean['object_id']}", headers=visitor.headers)
        rejected = await client.get(f"{base}/{infected['object_id']}", headers=visitor.headers)
        assert available.status_code == 200
        assert available.content == b"hello there"
        assert_problem(rejected, 409, "object_infected")


# --- Rate limits ------------------------------------------------------------------------------


async def test_visitor_creation_limited_per_ip(client: httpx.AsyncClient, app: FastAPI) -> None:
    chat = await make_chat(client)
    for _ in range(8):
        await make_visitor(client, chat)

    limited = await client.post(chat.url("/visitors"), json={})

    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as other:
        assert (await other.post(chat.url("/visitors"), json={})).status_code == 201


async def test_writes_limited_per_visitor_and_ip(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    chat = await make_chat(client)
    first = await make_visitor(client, chat)
    conversation = await start(client, chat, first)
    url = chat.url(f"/conversations/{conversation['id']}/read")
    # The conversation start above was the first write of 15.
    for _ in range(14):
        assert (await client.post(url, headers=first.headers, json={"seq": 0})).status_code == 200

    limited = await send(client, chat, first, conversation["id"], body="one more")

    assert_problem(limited, 429, "rate_limited")
    assert "retry-after" in limited.headers
    assert await count_rows(runtime, ConversationMessage) == 0

    # 15 writes of this IP are counted; two more visitors reach the IP's 40.
    for _ in range(2):
        visitor = await make_visitor(client, chat)
        started = await start(client, chat, visitor)
        for _ in range(12):
            response = await client.post(
                chat.url(f"/conversations/{started['id']}/read"),
                headers=visitor.headers,
                json={"seq": 0},
            )
            if response.status_code == 429:
                break
    fresh = await make_visitor(client, chat)
    response = await client.post(chat.url("/conversations"), headers=fresh.headers)
    assert_problem(response, 429, "rate_limited")


async def test_uploads_limited_per_visitor(client: httpx.AsyncClient, runtime: Runtime) -> None:
    chat = await make_chat(client)
    visitor = await make_visitor(client, chat)
    for index in range(4):
        response = await upload(client, chat, visitor, PDF, filename=f"{index}.pdf")
        assert response.status_code == 201, response.text

    limited = await upload(client, chat, visitor, PDF)

    assert_problem(limited, 429, "rate_limited")
    assert await count_rows(runtime, StoredObject) == 4
