"""Chat settings API: lazy creation, validation naming each field, roles and key rotation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from factories import member, owner
from frontdesk.runtime import Runtime

PROBLEM = "application/problem+json"


async def get_settings(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/chat/settings", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_settings_created_once_with_defaults(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    first = await get_settings(client, staff.headers)
    second = await get_settings(client, staff.headers)

    assert len(first["public_key"]) >= 24
    assert first["public_key"] == second["public_key"]
    assert first["enabled"] is True
    assert first["allowed_origins"] == []
    assert first["theme"] == {
        "title": "Chat with us",
        "greeting": "Hi! How can we help you?",
        "color": "#2563eb",
        "position": "right",
    }


async def test_concurrent_first_reads_agree(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    responses = await asyncio.gather(
        *(client.get("/api/v1/chat/settings", headers=staff.headers) for _ in range(3))
    )

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert len({response.json()["public_key"] for response in responses}) == 1


async def test_workspaces_have_their_own_settings(client: httpx.AsyncClient) -> None:
    first = await owner(client)
    second = await owner(client)
    await client.put(
        "/api/v1/chat/settings", headers=first.headers, json={"theme": {"title": "First"}}
    )

    mine = await get_settings(client, first.headers)
    theirs = await get_settings(client, second.headers)

    assert mine["public_key"] != theirs["public_key"]
    assert theirs["theme"]["title"] == "Chat with us"


async def test_put_changes_only_given_fields(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.put(
        "/api/v1/chat/settings",
        headers=staff.headers,
        json={
            "theme": {"title": "  Ask the studio ", "color": "#FF00AA"},
            "allowed_origins": ["https://WWW.Studio.example:443", "http://localhost:8080/"],
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["theme"]["title"] == "Ask the studio"
    assert body["theme"]["color"] == "#ff00aa"
    assert body["theme"]["position"] == "right"
    assert body["allowed_origins"] == ["https://www.studio.example", "http://localhost:8080"]
    assert body["enabled"] is True

    response = await client.put(
        "/api/v1/chat/settings", headers=staff.headers, json={"enabled": False}
    )
    assert response.json()["enabled"] is False
    assert response.json()["theme"]["title"] == "Ask the studio"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"theme": {"title": "x" * 81}}, "theme.title"),
        ({"theme": {"title": "   "}}, "theme.title"),
        ({"theme": {"greeting": "x" * 501}}, "theme.greeting"),
        ({"theme": {"color": "blue"}}, "theme.color"),
        ({"theme": {"color": "#12345"}}, "theme.color"),
        ({"theme": {"position": "top"}}, "theme.position"),
        ({"theme": {"font": "Comic Sans"}}, "theme.font"),
        ({"theme": {"title": 5}}, "theme.title"),
        ({"allowed_origins": ["https://studio.example/contact"]}, "allowed_origins.0"),
        ({"allowed_origins": ["https://ok.example", "ftp://files.example"]}, "allowed_origins.1"),
        ({"allowed_origins": ["studio.example"]}, "allowed_origins.0"),
        ({"allowed_origins": ["https://studio.example:99999"]}, "allowed_origins.0"),
        ({"allowed_origins": ["https://studio.example:0"]}, "allowed_origins.0"),
        ({"allowed_origins": [f"https://s{i}.example" for i in range(51)]}, "allowed_origins"),
        ({"enabled": "maybe"}, "enabled"),
        ({"colour": "#000000"}, "colour"),
    ],
)
async def test_put_rejects_invalid_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    staff = await owner(client)
    before = await get_settings(client, staff.headers)

    response = await client.put(
        "/api/v1/chat/settings",
        headers=staff.headers,
        json={"enabled": False, "theme": {"title": "Changed"}} | body,
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await get_settings(client, staff.headers) == before


async def test_agent_reads_but_cannot_change(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    admin = await member(client, runtime, staff.workspace_id, role="admin")
    key = (await get_settings(client, staff.headers))["public_key"]

    assert (await get_settings(client, agent.headers))["public_key"] == key
    response = await client.put(
        "/api/v1/chat/settings", headers=agent.headers, json={"enabled": False}
    )
    assert response.status_code == 403
    response = await client.post("/api/v1/chat/settings/rotate-key", headers=agent.headers)
    assert response.status_code == 403
    assert (await get_settings(client, staff.headers))["public_key"] == key

    response = await client.put(
        "/api/v1/chat/settings", headers=admin.headers, json={"enabled": False}
    )
    assert response.status_code == 200
    assert response.json()["enabled"] is False


async def test_settings_need_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/chat/settings")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


async def test_rotate_key_ends_old_key(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    old_key = (await get_settings(client, staff.headers))["public_key"]
    assert (await client.get(f"/chat/{old_key}/config")).status_code == 200

    response = await client.post("/api/v1/chat/settings/rotate-key", headers=staff.headers)

    assert response.status_code == 200, response.text
    new_key = response.json()["public_key"]
    assert new_key != old_key
    old = await client.get(f"/chat/{old_key}/config")
    assert old.status_code == 404
    assert old.json()["code"] == "chat_not_found"
    assert (await client.get(f"/chat/{new_key}/config")).status_code == 200


@pytest.mark.parametrize("name", ["enabled", "theme", "allowed_origins"])
async def test_put_null_field_rejected(client: httpx.AsyncClient, name: str) -> None:
    staff = await owner(client)
    before = await get_settings(client, staff.headers)

    response = await client.put(
        "/api/v1/chat/settings",
        headers=staff.headers,
        json={name: None, "theme": {"title": "Changed"}} if name != "theme" else {name: None},
    )

    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(name, "null")]
    assert await get_settings(client, staff.headers) == before


async def test_put_null_theme_field_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    before = await get_settings(client, staff.headers)

    response = await client.put(
        "/api/v1/chat/settings", headers=staff.headers, json={"theme": {"color": None}}
    )

    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("theme.color", "null")]
    assert await get_settings(client, staff.headers) == before


async def test_put_theme_and_origin_errors_together(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.put(
        "/api/v1/chat/settings",
        headers=staff.headers,
        json={"theme": {"color": "blue"}, "allowed_origins": ["not an origin"]},
    )

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["theme.color", "allowed_origins.0"]
