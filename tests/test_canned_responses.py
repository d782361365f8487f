"""Canned responses: CRUD, unique shortcuts, template checks and rendering for a conversation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from factories import Staff, count_rows, member, owner
from frontdesk.contacts.models import Contact
from frontdesk.conversations import service
from frontdesk.conversations.models import CannedResponse, ChatVisitor
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime

API = "/api/v1/canned-responses"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


async def _create(client: httpx.AsyncClient, staff: Staff, **body: Any) -> httpx.Response:
    values = {"shortcut": "hello", "title": "Hello", "body": "Hello {{ contact.name }}!"}
    return await client.post(API, json={**values, **body}, headers=staff.headers)


async def _created(client: httpx.AsyncClient, staff: Staff, **body: Any) -> dict[str, Any]:
    response = await _create(client, staff, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [error["field"] for error in response.json()["errors"]]


async def _conversation(
    runtime: Runtime,
    workspace_id: uuid.UUID,
    *,
    contact: dict[str, str] | None = None,
    visitor: dict[str, str] | None = None,
) -> str:
    async with unit_of_work(runtime) as uow:
        contact_id = visitor_id = None
        if contact is not None:
            row = Contact(
                workspace_id=workspace_id, created_at=uow.now(), updated_at=uow.now(), **contact
            )
            uow.session.add(row)
            await uow.session.flush()
            contact_id = row.id
        if visitor is not None:
            guest = ChatVisitor(
                workspace_id=workspace_id,
                created_at=uow.now(),
                last_seen_at=uow.now(),
                **visitor,
            )
            uow.session.add(guest)
            await uow.session.flush()
            visitor_id = guest.id
        conversation = await service.create_conversation(
            uow,
            workspace_id=workspace_id,
            channel="chat",
            contact_id=contact_id,
            visitor_id=visitor_id,
        )
        return str(conversation.id)


async def _render(
    client: httpx.AsyncClient, staff: Staff, canned_id: str, conversation_id: str
) -> httpx.Response:
    return await client.post(
        f"{API}/{canned_id}/render",
        json={"conversation_id": conversation_id},
        headers=staff.headers,
    )


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)

    created = await _created(client, agent, shortcut="thanks", title="  Thanks  ")
    await _created(client, staff, shortcut="hello")
    await _created(client, staff, shortcut="Thank-You_2")

    assert created["title"] == "Thanks"
    assert created["created_by"] == str(agent.user_id)
    listed = (await client.get(API, headers=staff.headers)).json()["items"]
    assert [item["shortcut"] for item in listed] == ["Thank-You_2", "hello", "thanks"]
    prefixed = (await client.get(API, params={"q": "THA"}, headers=staff.headers)).json()
    assert [item["shortcut"] for item in prefixed["items"]] == ["Thank-You_2", "thanks"]
    underscore = (await client.get(API, params={"q": "_"}, headers=staff.headers)).json()
    assert underscore["items"] == []

    path = f"{API}/{created['id']}"
    changed = await client.patch(path, json={"body": "Thank you!"}, headers=staff.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["body"] == "Thank you!"
    assert changed.json()["shortcut"] == "thanks"
    assert (await client.get(path, headers=staff.headers)).json()["body"] == "Thank you!"

    deleted = await client.delete(path, headers=staff.headers)
    assert deleted.status_code == 204
    assert (await client.get(path, headers=staff.headers)).status_code == 404
    assert await count_rows(runtime, CannedResponse) == 2


async def test_duplicate_shortcut_is_conflict(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    first = await _created(client, staff, shortcut="hello")
    second = await _created(client, staff, shortcut="bye")

    duplicate = await _create(client, staff, shortcut="hello")
    renamed = await client.patch(
        f"{API}/{second['id']}", json={"shortcut": "hello"}, headers=staff.headers
    )
    own = await client.patch(
        f"{API}/{first['id']}", json={"shortcut": "hello"}, headers=staff.headers
    )
    elsewhere = await _create(client, other, shortcut="hello")

    assert duplicate.status_code == 409
    assert _fields(duplicate) == ["shortcut"]
    assert renamed.status_code == 409
    assert _fields(renamed) == ["shortcut"]
    assert own.status_code == 200
    assert elsewhere.status_code == 201
    assert await count_rows(runtime, CannedResponse) == 3
    second_now = await client.get(f"{API}/{second['id']}", headers=staff.headers)
    assert second_now.json()["shortcut"] == "bye"


async def test_invalid_input_names_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    existing = await _created(client, staff)
    cases = {
        "shortcut": await _create(client, staff, shortcut="two words"),
        "title": await _create(client, staff, shortcut="t", title="   "),
        "body": await _create(client, staff, shortcut="b", body="Hi {{ customer.name }}"),
    }
    syntax = await _create(client, staff, shortcut="s", body="Hi {{ contact.name")
    forbidden = await _create(client, staff, shortcut="f", body="{% include 'x' %}")
    null_title = await client.patch(
        f"{API}/{existing['id']}", json={"title": None}, headers=staff.headers
    )
    bad_patch = await client.patch(
        f"{API}/{existing['id']}", json={"body": "{% for %}"}, headers=staff.headers
    )

    for name, response in cases.items():
        assert response.status_code == 422, f"{name}: {response.text}"
        assert _fields(response) == [name]
    assert _fields(syntax) == ["body"]
    assert syntax.json()["errors"][0]["code"] == "template_syntax"
    assert _fields(forbidden) == ["body"]
    assert _fields(null_title) == ["title"]
    assert _fields(bad_patch) == ["body"]
    assert await count_rows(runtime, CannedResponse) == 1
    unchanged = await client.get(f"{API}/{existing['id']}", headers=staff.headers)
    assert unchanged.json()["body"] == "Hello {{ contact.name }}!"


async def test_render_fills_variables(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client, full_name="Olga Owner", workspace_name="Harbour Studio")
    canned = await _created(
        client,
        staff,
        body=(
            "Hi {{ contact.name }} ({{ contact.email }}), "
            "{{ member.name }} of {{ workspace.name }} here."
        ),
    )
    with_contact = await _conversation(
        runtime, staff.workspace_id, contact={"name": "Camille", "email": "cam@example.org"}
    )
    with_visitor = await _conversation(
        runtime, staff.workspace_id, visitor={"name": "Vera", "email": "vera@example.org"}
    )
    anonymous = await _conversation(runtime, staff.workspace_id)

    rendered = await _render(client, staff, canned["id"], with_contact)
    visitor = await _render(client, staff, canned["id"], with_visitor)
    nobody = await _render(client, staff, canned["id"], anonymous)

    assert rendered.status_code == 200, rendered.text
    # Values are escaped for Markdown, so they render as the same text.
    assert rendered.json() == {
        "body": "Hi Camille (cam\\@example\\.org), Olga Owner of Harbour Studio here."
    }
    assert visitor.json()["body"].startswith("Hi Vera (vera\\@example\\.org)")
    assert nobody.json() == {"body": "Hi  (), Olga Owner of Harbour Studio here."}


async def test_render_escapes_markdown_in_values(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    canned = await _created(client, staff, body="Dear **{{ contact.name }}**")
    conversation = await _conversation(
        runtime, staff.workspace_id, contact={"name": "[x](javascript:alert(1)) *y*"}
    )

    response = await _render(client, staff, canned["id"], conversation)

    assert response.status_code == 200, response.text
    body = response.json()["body"]
    assert body == "Dear **\\[x\\]\\(javascript\\:alert\\(1\\)\\) \\*y\\***"
    assert service.render_markdown(body).count("<a") == 0


async def test_body_checked_with_sample_on_save(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    unknown_attribute = await client.post(
        "/api/v1/canned-responses",
        headers=staff.headers,
        json={"shortcut": "phone", "title": "Call", "body": "Call {{ contact.phone }}"},
    )
    endless = await client.post(
        "/api/v1/canned-responses",
        headers=staff.headers,
        json={
            "shortcut": "loop",
            "title": "Loop",
            "body": "{% for i in range(10**6) %}x{% endfor %}",
        },
    )

    assert unknown_attribute.status_code == 422
    assert _fields(unknown_attribute) == ["body"]
    assert endless.status_code == 422
    assert _fields(endless) == ["body"]


async def test_render_errors_name_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    # Both render with the sample data checked on save, and fail for a contact without a
    # name or an email, which is what the test conversation has.
    broken = await _created(client, staff, shortcut="upper", body="Hi {{ contact.name.upper() }}")
    runaway = await _created(
        client,
        staff,
        shortcut="loop",
        body="{% if not contact.email %}{% for i in range(100000) %}x{% endfor %}{% endif %}",
    )
    fine = await _created(client, staff, shortcut="fine")
    mine = await _conversation(runtime, staff.workspace_id)
    theirs = await _conversation(runtime, other.workspace_id)

    undefined = await _render(client, staff, broken["id"], mine)
    too_long = await _render(client, staff, runaway["id"], mine)
    foreign_conversation = await _render(client, staff, fine["id"], theirs)
    foreign_canned = await _render(client, other, fine["id"], theirs)

    assert undefined.status_code == 422
    assert _fields(undefined) == ["body"]
    # The sandbox reports a method called on a missing value as an unsafe operation.
    assert undefined.json()["errors"][0]["code"] == "unsafe_operation"
    assert too_long.status_code == 422
    assert _fields(too_long) == ["body"]
    assert foreign_conversation.status_code == 422
    assert _fields(foreign_conversation) == ["conversation_id"]
    assert foreign_canned.status_code == 404


async def test_other_workspace_is_not_found(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    theirs = await _created(client, other)
    path = f"{API}/{theirs['id']}"

    responses = [
        await client.get(path, headers=staff.headers),
        await client.patch(path, json={"title": "Mine now"}, headers=staff.headers),
        await client.delete(path, headers=staff.headers),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    assert (await client.get(API, headers=staff.headers)).json()["items"] == []
    kept = await client.get(path, headers=other.headers)
    assert kept.json()["title"] == "Hello"
