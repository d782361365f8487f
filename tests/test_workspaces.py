"""The current workspace, its settings and deletion, the workspace list and the profile."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from auth_support import add_member, refresh, verified_owner
from conftest import bearer, signup
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership, Workspace


async def test_workspace_visible_to_any_member(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime, workspace_name="Studio North")
    agent = await add_member(client, runtime, owner, "agent")

    response = await client.get("/api/v1/workspace", headers=bearer(agent))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == owner["workspace"]["id"]
    assert body["name"] == "Studio North"
    assert body["role"] == "agent"
    # Sign-up makes the owner's address the Reply-To of customer emails.
    assert body["reply_to_email"] == owner["user"]["email"]
    assert (await client.get("/api/v1/workspace")).status_code == 401


async def test_admin_updates_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime)
    admin = await add_member(client, runtime, owner, "admin")

    response = await client.patch(
        "/api/v1/workspace",
        json={"name": "  Renamed  ", "default_country": "de", "reply_to_email": "Desk@Example.com"},
        headers=bearer(admin),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["default_country"] == "DE"
    assert body["reply_to_email"] == "desk@example.com"
    async with runtime.sessionmaker() as session:
        event = await session.scalar(sa.select(Event).where(Event.name == "workspace.updated"))
        assert event is not None
        assert event.data["name"] == "Renamed"
        assert "role" not in event.data
        assert str(event.workspace_id) == owner["workspace"]["id"]

    cleared = await client.patch(
        "/api/v1/workspace", json={"reply_to_email": None}, headers=bearer(admin)
    )
    assert cleared.json()["reply_to_email"] is None
    assert cleared.json()["name"] == "Renamed"


async def test_workspace_update_rejects_bad_input(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await signup(client, workspace_name="Unchanged")

    cases = [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"default_country": "ZZ"}, "default_country"),
        ({"default_country": None}, "default_country"),
        ({"reply_to_email": "nope"}, "reply_to_email"),
        ({"settings": {}}, "settings"),
    ]
    for body, field in cases:
        response = await client.patch("/api/v1/workspace", json=body, headers=bearer(owner))
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field

    current = await client.get("/api/v1/workspace", headers=bearer(owner))
    assert current.json()["name"] == "Unchanged"


async def test_agent_cannot_update_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime)
    agent = await add_member(client, runtime, owner, "agent")

    response = await client.patch(
        "/api/v1/workspace", json={"name": "Mine now"}, headers=bearer(agent)
    )

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


async def test_only_owner_deletes_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime)
    admin = await add_member(client, runtime, owner, "admin")

    refused = await client.delete("/api/v1/workspace", headers=bearer(admin))
    deleted = await client.delete("/api/v1/workspace", headers=bearer(owner))

    assert refused.status_code == 403
    assert deleted.status_code == 204
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Workspace)) == 0
        assert await session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 0
        removed = (
            await session.scalars(sa.select(Event).where(Event.name == "internal.member_removed"))
        ).all()
        assert {event.data["user_id"] for event in removed} == {
            owner["user"]["id"],
            admin["user"]["id"],
        }
    for tokens in (owner, admin):
        gone = await client.get("/api/v1/workspace", headers=bearer(tokens))
        assert gone.status_code == 403
        assert gone.json()["code"] == "no_workspace"
        refreshed = await refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        assert refreshed.json()["workspace"] is None


async def test_deleting_one_workspace_keeps_the_others(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    mine = await verified_owner(client, runtime, workspace_name="Mine")
    member = await add_member(client, runtime, mine, "agent")
    other = await signup(client, workspace_name="Other")

    assert (await client.delete("/api/v1/workspace", headers=bearer(other))).status_code == 204

    assert (await client.get("/api/v1/workspace", headers=bearer(mine))).status_code == 200
    assert (await client.get("/api/v1/workspace", headers=bearer(member))).status_code == 200
    assert (await client.get("/api/v1/members", headers=bearer(mine))).json()[1]["role"] == "agent"


async def test_workspaces_list_for_switching(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime, workspace_name="First")
    agent = await add_member(client, runtime, owner, "agent")

    response = await client.get("/api/v1/workspaces", headers=bearer(agent))

    assert response.status_code == 200
    assert response.json() == [
        {"id": owner["workspace"]["id"], "name": "First", "role": "agent", "current": True}
    ]
    assert (await client.get("/api/v1/workspaces")).status_code == 401


async def test_profile_lists_memberships(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await verified_owner(client, runtime, full_name="Olga Owner", workspace_name="Olga's")

    response = await client.get("/api/v1/me", headers=bearer(owner))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == owner["user"]["id"]
    assert body["full_name"] == "Olga Owner"
    assert body["email_verified"] is True
    assert body["locale"] == "en"
    assert body["current_workspace_id"] == owner["workspace"]["id"]
    assert body["workspaces"] == [
        {"id": owner["workspace"]["id"], "name": "Olga's", "role": "owner"}
    ]


async def test_profile_update(client: httpx.AsyncClient) -> None:
    tokens = await signup(client)

    response = await client.patch(
        "/api/v1/me", json={"full_name": " New Name ", "locale": "pt_BR"}, headers=bearer(tokens)
    )

    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "New Name"
    assert response.json()["locale"] == "pt-BR"
    partial = await client.patch("/api/v1/me", json={"locale": "fr"}, headers=bearer(tokens))
    assert partial.json()["full_name"] == "New Name"
    assert partial.json()["locale"] == "fr"


async def test_profile_update_rejects_bad_input(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, full_name="Kept Name")

    cases = [
        ({"full_name": ""}, "full_name"),
        ({"full_name": None}, "full_name"),
        ({"locale": "not a locale!"}, "locale"),
        ({"email": "new@example.com"}, "email"),
    ]
    for body, field in cases:
        response = await client.patch("/api/v1/me", json=body, headers=bearer(tokens))
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field

    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.json()["full_name"] == "Kept Name"
    assert (await client.patch("/api/v1/me", json={"locale": "en"})).status_code == 401


# A fixed id, because xdist workers must collect identical test ids.
SOME_ID = "0192a9f0-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("PATCH", "/api/v1/me"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", f"/api/v1/auth/sessions/{SOME_ID}"),
        ("POST", "/api/v1/auth/password"),
        ("POST", "/api/v1/auth/verify-email/resend"),
        ("GET", "/api/v1/workspace"),
        ("PATCH", "/api/v1/workspace"),
        ("DELETE", "/api/v1/workspace"),
        ("GET", "/api/v1/workspaces"),
        ("POST", "/api/v1/workspace/transfer-ownership"),
        ("GET", "/api/v1/members"),
        ("PATCH", f"/api/v1/members/{SOME_ID}"),
        ("DELETE", f"/api/v1/members/{SOME_ID}"),
        ("POST", "/api/v1/invitations"),
        ("GET", "/api/v1/invitations"),
        ("POST", f"/api/v1/invitations/{SOME_ID}/resend"),
        ("DELETE", f"/api/v1/invitations/{SOME_ID}"),
        ("POST", "/api/v1/invitations/accept"),
    ],
)
async def test_endpoint_requires_credentials(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_empty_workspace_update_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await signup(client, workspace_name="Same")

    response = await client.patch("/api/v1/workspace", json={}, headers=bearer(owner))

    assert response.status_code == 200
    assert response.json()["name"] == "Same"
    async with runtime.sessionmaker() as session:
        assert (
            await session.scalar(sa.select(Event).where(Event.name == "workspace.updated")) is None
        )
