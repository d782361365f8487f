"""Members and roles: listing, role changes, removal, leaving and ownership transfer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from auth_support import add_member, refresh, verified_owner
from conftest import bearer, signup
from factories import cursor_listener
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime


@pytest.fixture
async def team(client: httpx.AsyncClient, runtime: Runtime) -> dict[str, dict[str, Any]]:
    """A workspace with one owner, one admin and two agents."""
    owner = await verified_owner(client, runtime, workspace_name="Team")
    return {
        "owner": owner,
        "admin": await add_member(client, runtime, owner, "admin"),
        "agent": await add_member(client, runtime, owner, "agent"),
        "agent2": await add_member(client, runtime, owner, "agent"),
    }


def user_id(tokens: dict[str, Any]) -> str:
    return str(tokens["user"]["id"])


async def set_role(
    client: httpx.AsyncClient, actor: dict[str, Any], target: dict[str, Any], role: str
) -> httpx.Response:
    return await client.patch(
        f"/api/v1/members/{user_id(target)}", json={"role": role}, headers=bearer(actor)
    )


async def remove(
    client: httpx.AsyncClient, actor: dict[str, Any], target: dict[str, Any]
) -> httpx.Response:
    return await client.delete(f"/api/v1/members/{user_id(target)}", headers=bearer(actor))


async def roles(client: httpx.AsyncClient, actor: dict[str, Any]) -> dict[str, str]:
    response = await client.get("/api/v1/members", headers=bearer(actor))
    assert response.status_code == 200, response.text
    return {member["user_id"]: member["role"] for member in response.json()}


@contextmanager
def count_queries(runtime: Runtime) -> Iterator[list[str]]:
    """Collect the SQL statements that this task runs; background tasks are left out."""
    statements: list[str] = []
    task = asyncio.current_task()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The ASGI transport runs the request in the test's task, while the realtime
        # gateway polls the events table from a task of its own.
        if asyncio.current_task() is task:
            statements.append(statement)

    with cursor_listener(runtime, record):
        yield statements


async def test_any_member_lists_members(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    response = await client.get("/api/v1/members", headers=bearer(team["agent"]))

    assert response.status_code == 200
    members = response.json()
    assert [member["role"] for member in members] == ["owner", "admin", "agent", "agent"]
    assert members[0]["user_id"] == user_id(team["owner"])
    assert members[0]["email"] == team["owner"]["user"]["email"]
    assert members[0]["email_verified"] is True
    assert set(members[0]) == {
        "user_id",
        "email",
        "full_name",
        "role",
        "email_verified",
        "joined_at",
    }
    assert (await client.get("/api/v1/members")).status_code == 401


async def test_member_list_query_count_is_constant(
    client: httpx.AsyncClient, runtime: Runtime, team: dict[str, dict[str, Any]]
) -> None:
    with count_queries(runtime) as four_members:
        await client.get("/api/v1/members", headers=bearer(team["owner"]))
    for _ in range(3):
        await add_member(client, runtime, team["owner"], "agent")

    with count_queries(runtime) as seven_members:
        response = await client.get("/api/v1/members", headers=bearer(team["owner"]))

    assert len(response.json()) == 7
    assert four_members, "no statement was recorded"
    assert len(seven_members) == len(four_members)


async def test_agent_cannot_manage_members(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    promote = await set_role(client, team["agent"], team["agent2"], "admin")
    kick = await remove(client, team["agent"], team["agent2"])

    assert promote.status_code == 403
    assert kick.status_code == 403
    assert (await roles(client, team["owner"]))[user_id(team["agent2"])] == "agent"


async def test_admin_changes_agent_and_admin_roles(
    client: httpx.AsyncClient, runtime: Runtime, team: dict[str, dict[str, Any]]
) -> None:
    promoted = await set_role(client, team["admin"], team["agent"], "admin")

    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin"
    assert promoted.json()["user_id"] == user_id(team["agent"])
    demoted = await set_role(client, team["admin"], team["agent"], "agent")
    assert demoted.json()["role"] == "agent"
    async with runtime.sessionmaker() as session:
        events = (
            await session.scalars(
                sa.select(Event).where(Event.name == "member.updated").order_by(Event.id)
            )
        ).all()
    assert [event.data["role"] for event in events] == ["admin", "agent"]
    assert events[0].data["user_id"] == user_id(team["agent"])


async def test_admin_cannot_touch_owners(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    demote_owner = await set_role(client, team["admin"], team["owner"], "agent")
    remove_owner = await remove(client, team["admin"], team["owner"])
    make_owner = await set_role(client, team["admin"], team["agent"], "owner")
    make_self_owner = await set_role(client, team["admin"], team["admin"], "owner")

    for response in (demote_owner, remove_owner, make_owner, make_self_owner):
        assert response.status_code == 403
        assert response.json()["code"] == "owner_required"
    current = await roles(client, team["owner"])
    assert current[user_id(team["owner"])] == "owner"
    assert current[user_id(team["agent"])] == "agent"
    assert current[user_id(team["admin"])] == "admin"


async def test_owner_makes_another_owner(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    response = await set_role(client, team["owner"], team["admin"], "owner")

    assert response.status_code == 200
    assert response.json()["role"] == "owner"
    # With two owners, the first may step down.
    stepped_down = await set_role(client, team["owner"], team["owner"], "admin")
    assert stepped_down.status_code == 200


async def test_last_owner_cannot_be_demoted_or_removed(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    demote = await set_role(client, team["owner"], team["owner"], "admin")
    leave = await remove(client, team["owner"], team["owner"])

    for response in (demote, leave):
        assert response.status_code == 409
        assert response.json()["code"] == "last_owner"
    assert (await roles(client, team["owner"]))[user_id(team["owner"])] == "owner"


async def test_owner_may_leave_when_another_owner_remains(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    await set_role(client, team["owner"], team["admin"], "owner")

    response = await remove(client, team["owner"], team["owner"])

    assert response.status_code == 204
    assert (await roles(client, team["admin"])).get(user_id(team["owner"])) is None


async def test_reply_to_follows_owner_who_leaves(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    await set_role(client, team["owner"], team["admin"], "owner")
    before = await client.get("/api/v1/workspace", headers=bearer(team["admin"]))
    await client.patch(
        "/api/v1/workspace",
        json={"reply_to_email": team["agent"]["user"]["email"]},
        headers=bearer(team["admin"]),
    )
    other_removed = await remove(client, team["owner"], team["agent2"])
    shared = await client.get("/api/v1/workspace", headers=bearer(team["admin"]))

    await remove(client, team["owner"], team["agent"])
    moved = await client.get("/api/v1/workspace", headers=bearer(team["admin"]))
    await client.patch(
        "/api/v1/workspace",
        json={"reply_to_email": team["owner"]["user"]["email"]},
        headers=bearer(team["admin"]),
    )
    await remove(client, team["owner"], team["owner"])
    after_owner = await client.get("/api/v1/workspace", headers=bearer(team["admin"]))

    assert before.json()["reply_to_email"] == team["owner"]["user"]["email"]
    assert other_removed.status_code == 204
    # Another member's departure leaves the address alone.
    assert shared.json()["reply_to_email"] == team["agent"]["user"]["email"]
    # The remaining owners are the original owner (the longest-serving) and the admin.
    assert moved.json()["reply_to_email"] == team["owner"]["user"]["email"]
    assert after_owner.json()["reply_to_email"] == team["admin"]["user"]["email"]


async def test_admin_removes_agent(
    client: httpx.AsyncClient, runtime: Runtime, team: dict[str, dict[str, Any]]
) -> None:
    response = await remove(client, team["admin"], team["agent"])

    assert response.status_code == 204
    assert user_id(team["agent"]) not in await roles(client, team["owner"])
    removed = await client.get("/api/v1/workspace", headers=bearer(team["agent"]))
    assert removed.status_code == 403
    assert removed.json()["code"] == "no_workspace"
    async with runtime.sessionmaker() as session:
        internal = await session.scalar(
            sa.select(Event).where(Event.name == "internal.member_removed")
        )
        public = await session.scalar(sa.select(Event).where(Event.name == "member.removed"))
    assert internal is not None
    assert internal.data == {"user_id": user_id(team["agent"])}
    assert str(internal.workspace_id) == team["owner"]["workspace"]["id"]
    assert public is not None
    assert public.data["user_id"] == user_id(team["agent"])
    again = await remove(client, team["admin"], team["agent"])
    assert again.status_code == 404


async def test_member_leaves(client: httpx.AsyncClient, team: dict[str, dict[str, Any]]) -> None:
    response = await remove(client, team["agent"], team["agent"])

    assert response.status_code == 204
    assert user_id(team["agent"]) not in await roles(client, team["owner"])
    refreshed = await refresh(client, team["agent"]["refresh_token"])
    assert refreshed.json()["workspace"] is None


async def test_role_change_validates_role(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    response = await set_role(client, team["owner"], team["agent"], "superuser")
    missing = await client.patch(
        f"/api/v1/members/{user_id(team['agent'])}", json={}, headers=bearer(team["owner"])
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "role"
    assert missing.status_code == 422


async def test_other_workspace_members_are_not_found(
    client: httpx.AsyncClient, runtime: Runtime, team: dict[str, dict[str, Any]]
) -> None:
    outsider = await signup(client)
    outsiders_agent_id = user_id(outsider)

    for target in (outsiders_agent_id, str(uuid.uuid4())):
        patch = await client.patch(
            f"/api/v1/members/{target}", json={"role": "admin"}, headers=bearer(team["owner"])
        )
        delete = await client.delete(f"/api/v1/members/{target}", headers=bearer(team["owner"]))
        transfer = await client.post(
            "/api/v1/workspace/transfer-ownership",
            json={"user_id": target},
            headers=bearer(team["owner"]),
        )
        for response in (patch, delete, transfer):
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_found"
    # The outsider is untouched in their own workspace.
    assert (await roles(client, outsider))[outsiders_agent_id] == "owner"


async def test_transfer_ownership(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    response = await client.post(
        "/api/v1/workspace/transfer-ownership",
        json={"user_id": user_id(team["agent"])},
        headers=bearer(team["owner"]),
    )

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
    current = await roles(client, team["agent"])
    assert current[user_id(team["agent"])] == "owner"
    assert current[user_id(team["owner"])] == "admin"
    # The former owner acts as an admin from the next request on.
    delete = await client.delete("/api/v1/workspace", headers=bearer(team["owner"]))
    assert delete.status_code == 403


async def test_transfer_ownership_rules(
    client: httpx.AsyncClient, team: dict[str, dict[str, Any]]
) -> None:
    by_admin = await client.post(
        "/api/v1/workspace/transfer-ownership",
        json={"user_id": user_id(team["agent"])},
        headers=bearer(team["admin"]),
    )
    to_self = await client.post(
        "/api/v1/workspace/transfer-ownership",
        json={"user_id": user_id(team["owner"])},
        headers=bearer(team["owner"]),
    )

    assert by_admin.status_code == 403
    assert to_self.status_code == 422
    assert to_self.json()["errors"][0]["field"] == "user_id"
    assert (await roles(client, team["owner"]))[user_id(team["owner"])] == "owner"


async def test_removed_member_enquiries_unassigned(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await verified_owner(client, runtime)
    agent = await add_member(client, runtime, owner, "agent")
    form = await client.post(
        "/api/v1/forms",
        headers=bearer(owner),
        json={
            "name": "Contact",
            "fields": [{"key": "email", "type": "email", "label": "Email", "required": True}],
        },
    )
    assert form.status_code == 201
    submitted = await client.post(
        httpx.URL(form.json()["public_url"]).path, json={"email": "c@example.com"}
    )
    assert submitted.status_code == 201
    enquiry_id = (await client.get("/api/v1/enquiries", headers=bearer(owner))).json()["items"][0][
        "id"
    ]
    assigned = await client.patch(
        f"/api/v1/enquiries/{enquiry_id}",
        headers=bearer(owner),
        json={"assignee_id": agent["user"]["id"]},
    )
    assert assigned.json()["assignee"]["id"] == agent["user"]["id"]

    removed = await client.delete(f"/api/v1/members/{agent['user']['id']}", headers=bearer(owner))

    assert removed.status_code == 204
    enquiry = (await client.get(f"/api/v1/enquiries/{enquiry_id}", headers=bearer(owner))).json()
    assert enquiry["assignee"] is None
    timeline = (
        await client.get(f"/api/v1/enquiries/{enquiry_id}/timeline", headers=bearer(owner))
    ).json()
    last = timeline["items"][-1]
    assert last["type"] == "assigned"
    assert last["data"] == {"from": agent["user"]["id"], "to": None}
