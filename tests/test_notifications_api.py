"""Notifications endpoints: list, unread filter, read, read-all, preferences."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from conftest import bearer, signup
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.notifications.service import notify_enquiry_created
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership
from test_outbox_api import join_as


async def notify(runtime: Runtime, workspace_id: str, count: int = 1) -> None:
    for number in range(count):
        async with unit_of_work(runtime) as uow:
            await notify_enquiry_created(
                uow,
                workspace_id=uuid.UUID(workspace_id),
                enquiry={"id": str(uuid.uuid4()), "subject": f"Enquiry {number}", "status": "new"},
            )


async def listing(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> Any:
    response = await client.get(f"/api/v1/notifications{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_shape_and_unread_count(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    await notify(runtime, owner["workspace"]["id"], count=2)

    body = await listing(client, bearer(owner))

    assert body["unread_count"] == 2
    assert len(body["items"]) == 2
    item = body["items"][0]
    assert set(item) == {"id", "type", "data", "read_at", "created_at"}
    assert item["type"] == "enquiry.created"
    assert item["data"]["enquiry"]["subject"] in {"Enquiry 0", "Enquiry 1"}
    assert item["read_at"] is None


async def test_pagination(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    await notify(runtime, owner["workspace"]["id"], count=3)
    headers = bearer(owner)

    first = await listing(client, headers, "?limit=2")
    second = await listing(client, headers, f"?limit=2&cursor={first['next_cursor']}")

    assert len(first["items"]) == 2
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    ids = {item["id"] for item in first["items"] + second["items"]}
    assert len(ids) == 3


async def test_read_one(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    await notify(runtime, owner["workspace"]["id"], count=2)
    headers = bearer(owner)
    target = (await listing(client, headers))["items"][0]["id"]

    response = await client.post(f"/api/v1/notifications/{target}/read", headers=headers)
    repeated = await client.post(f"/api/v1/notifications/{target}/read", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["read_at"] is not None
    assert repeated.json()["read_at"] == response.json()["read_at"]
    unread = await listing(client, headers, "?unread=true")
    assert unread["unread_count"] == 1
    assert [item["id"] for item in unread["items"]] != [target]
    assert len(unread["items"]) == 1


async def test_other_users_notification_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    agent = await join_as(client, runtime, owner["workspace"]["id"], "agent")
    await notify(runtime, owner["workspace"]["id"])
    owners_item = (await listing(client, bearer(owner)))["items"][0]["id"]

    response = await client.post(f"/api/v1/notifications/{owners_item}/read", headers=agent)
    missing = await client.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=agent)

    assert response.status_code == 404
    assert missing.status_code == 404
    agents_items = (await listing(client, agent))["items"]
    assert owners_item not in [item["id"] for item in agents_items]
    assert len(agents_items) == 1


async def test_read_all(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    agent = await join_as(client, runtime, owner["workspace"]["id"], "agent")
    await notify(runtime, owner["workspace"]["id"], count=3)

    response = await client.post("/api/v1/notifications/read-all", headers=bearer(owner))

    assert response.status_code == 200
    assert response.json() == {"updated": 3, "unread_count": 0}
    assert (await listing(client, bearer(owner), "?unread=true"))["items"] == []
    # The agent's own notifications stay unread.
    assert (await listing(client, agent))["unread_count"] == 3
    async with runtime.sessionmaker() as session:
        events = (
            await session.scalars(sa.select(Event).where(Event.name == "notification.read_all"))
        ).all()
    assert [event.user_id for event in events] == [uuid.UUID(owner["user"]["id"])]


async def test_preferences_defaults(client: httpx.AsyncClient) -> None:
    owner = await signup(client)

    response = await client.get("/api/v1/notifications/preferences", headers=bearer(owner))

    assert response.status_code == 200
    assert response.json() == {
        "enquiry.created": {"email": False},
        "enquiry.assigned": {"email": True},
    }


async def test_preferences_update(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    headers = bearer(owner)

    response = await client.put(
        "/api/v1/notifications/preferences",
        json={"enquiry.created": {"email": True}},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    expected = {"enquiry.created": {"email": True}, "enquiry.assigned": {"email": True}}
    assert response.json() == expected
    stored = await client.get("/api/v1/notifications/preferences", headers=headers)
    assert stored.json() == expected
    async with runtime.sessionmaker() as session:
        membership = await session.get(
            Membership,
            (uuid.UUID(owner["workspace"]["id"]), uuid.UUID(owner["user"]["id"])),
        )
    assert membership is not None
    assert membership.notification_preferences["enquiry.created"] == {"email": True}


async def test_preferences_validation(client: httpx.AsyncClient) -> None:
    owner = await signup(client)
    headers = bearer(owner)
    cases = [
        ({"enquiry.deleted": {"email": True}}, "enquiry.deleted", "unknown_type"),
        ({"enquiry.created": {"email": "yes"}}, "enquiry.created.email", "bool_type"),
        ({"enquiry.created": {"email": 1}}, "enquiry.created.email", "bool_type"),
        ({"enquiry.created": {"sms": True}}, "enquiry.created.sms", "unknown_channel"),
        ({"enquiry.created": True}, "enquiry.created", "type_error"),
        (["enquiry.created"], "body", "type_error"),
    ]

    for body, field, code in cases:
        response = await client.put("/api/v1/notifications/preferences", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field, body
        assert response.json()["errors"][0]["code"] == code, body

    unchanged = await client.get("/api/v1/notifications/preferences", headers=headers)
    assert unchanged.json()["enquiry.created"] == {"email": False}


async def test_preferences_per_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    agent = await join_as(client, runtime, owner["workspace"]["id"], "agent")

    await client.put(
        "/api/v1/notifications/preferences",
        json={"enquiry.assigned": {"email": False}},
        headers=agent,
    )

    own = await client.get("/api/v1/notifications/preferences", headers=bearer(owner))
    assert own.json()["enquiry.assigned"] == {"email": True}


async def test_requires_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/notifications")

    assert response.status_code == 401
