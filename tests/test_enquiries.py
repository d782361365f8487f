"""Enquiries API: detail, changes on the timeline, tags, events and side effects."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from factories import (
    Staff,
    count_rows,
    create_form,
    enquiries,
    events_named,
    member,
    owner,
    set_workspace,
    submit_ok,
)
from frontdesk.core.clock import FrozenClock
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry, EnquiryActivity
from frontdesk.notifications.models import Notification
from frontdesk.runtime import Runtime


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


async def _one(client: httpx.AsyncClient, **form_settings: Any) -> tuple[Staff, dict[str, Any]]:
    """A workspace with one enquiry from its form; returns the owner and the enquiry."""
    staff = await owner(client, workspace_name="Harbour Studio")
    form = await create_form(client, staff, **form_settings)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com", "message": "Hello"})
    [item] = (await enquiries(client, staff))["items"]
    return staff, item


async def _get(client: httpx.AsyncClient, staff: Staff, enquiry_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/enquiries/{enquiry_id}", headers=staff.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _timeline(
    client: httpx.AsyncClient, staff: Staff, enquiry_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/enquiries/{enquiry_id}/timeline", headers=staff.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_detail_has_contact_tags_assignee(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, item = await _one(client)
    agent = await member(client, runtime, staff.workspace_id, full_name="Grace Hopper")
    await client.patch(
        f"/api/v1/enquiries/{item['id']}",
        json={"assignee_id": str(agent.user_id)},
        headers=staff.headers,
    )
    await client.post(
        f"/api/v1/enquiries/{item['id']}/tags", json={"tags": ["VIP"]}, headers=staff.headers
    )
    detail = await _get(client, agent, item["id"])
    assert detail["assignee"] == {"id": str(agent.user_id), "full_name": "Grace Hopper"}
    assert detail["tags"] == ["vip"]
    assert detail["contact"]["email"] == "ada@example.com"
    assert set(detail["contact"]) == {"id", "name", "email", "phone"}
    assert "search_text" not in detail
    assert detail["answers"] == {"name": "Ada", "email": "ada@example.com", "message": "Hello"}


async def test_created_event_and_side_effects(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, item = await _one(client, language="nl")
    detail = await _get(client, staff, item["id"])
    [event] = await events_named(runtime, "enquiry.created")
    assert event.data == detail
    assert event.workspace_id == staff.workspace_id

    async with runtime.sessionmaker() as session:
        [ack] = (
            await session.execute(
                sa.select(EmailMessage).where(EmailMessage.kind == "enquiry_acknowledgement")
            )
        ).scalars()
        notified = (await session.execute(sa.select(Notification.user_id, Notification.type))).all()
    assert ack.to_address == "ada@example.com"
    assert ack.enquiry_id is not None and str(ack.enquiry_id) == item["id"]
    assert notified == [(staff.user_id, "enquiry.created")]

    [created] = await _timeline(client, staff, item["id"])
    assert created["type"] == "created"
    assert created["data"] == {"source": "form", "status": "new"}
    assert created["actor_id"] is None


async def test_no_acknowledgement_without_email(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    await submit_ok(client, form, {"name": "Ada", "phone": "+44 20 7946 0018"})
    assert (
        await count_rows(runtime, EmailMessage, EmailMessage.kind == "enquiry_acknowledgement") == 0
    )
    assert await count_rows(runtime, Enquiry) == 1


async def test_status_changes_on_timeline(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff, item = await _one(client)
    url = f"/api/v1/enquiries/{item['id']}"
    path = ["open", "awaiting_customer", "won", "new", "closed", "lost"]
    for status in path:
        clock.advance(seconds=1)
        response = await client.patch(url, json={"status": status}, headers=staff.headers)
        assert response.status_code == 200
        assert response.json()["status"] == status
        assert response.json()["updated_at"] == clock.now().isoformat().replace("+00:00", "Z")
    unchanged = await client.patch(url, json={"status": "lost"}, headers=staff.headers)
    assert unchanged.status_code == 200

    timeline = await _timeline(client, staff, item["id"])
    changes = [
        (a["data"]["from"], a["data"]["to"]) for a in timeline if a["type"] == "status_changed"
    ]
    assert changes == list(zip(["new", *path[:-1]], path, strict=True))
    assert {a["actor_id"] for a in timeline[1:]} == {str(staff.user_id)}

    updates = await events_named(runtime, "enquiry.updated")
    assert len(updates) == len(path)
    assert updates[-1].data == await _get(client, staff, item["id"])


async def test_assignment_on_timeline(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, item = await _one(client)
    agent = await member(client, runtime, staff.workspace_id)
    url = f"/api/v1/enquiries/{item['id']}"

    assigned = await client.patch(
        url, json={"assignee_id": str(agent.user_id)}, headers=staff.headers
    )
    assert assigned.status_code == 200
    assert assigned.json()["assignee"]["id"] == str(agent.user_id)
    unassigned = await client.patch(url, json={"assignee_id": None}, headers=agent.headers)
    assert unassigned.json()["assignee"] is None

    timeline = await _timeline(client, staff, item["id"])
    assignments = [(a["data"], a["actor_id"]) for a in timeline if a["type"] == "assigned"]
    assert assignments == [
        ({"from": None, "to": str(agent.user_id)}, str(staff.user_id)),
        ({"from": str(agent.user_id), "to": None}, str(agent.user_id)),
    ]
    async with runtime.sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    sa.select(Notification.user_id).where(Notification.type == "enquiry.assigned")
                )
            )
            .scalars()
            .all()
        )
    assert rows == [agent.user_id]


async def test_assign_non_member_is_422(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, item = await _one(client)
    stranger = await owner(client)
    url = f"/api/v1/enquiries/{item['id']}"
    for user_id in (str(stranger.user_id), "0191d2a8-0000-7000-8000-000000000000"):
        response = await client.patch(
            url, json={"assignee_id": user_id, "status": "won"}, headers=staff.headers
        )
        assert response.status_code == 422
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("assignee_id", "not_a_member")
        ]
    detail = await _get(client, staff, item["id"])
    assert (detail["status"], detail["assignee"]) == ("new", None)
    assert await count_rows(runtime, EnquiryActivity) == 1
    assert await events_named(runtime, "enquiry.updated") == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"status": "archived"}, "status"),
        ({"status": None}, "status"),
        ({"assignee_id": "bob"}, "assignee_id"),
        ({"subject": "x" * 301}, "subject"),
        ({"priority": 1}, "priority"),
    ],
    ids=["unknown-status", "null-status", "bad-assignee", "long-subject", "unknown-field"],
)
async def test_update_invalid_is_422(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], path: str
) -> None:
    staff, item = await _one(client)
    response = await client.patch(
        f"/api/v1/enquiries/{item['id']}", json=body, headers=staff.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == path
    assert await count_rows(runtime, EnquiryActivity) == 1


async def test_subject_update(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, item = await _one(client)
    response = await client.patch(
        f"/api/v1/enquiries/{item['id']}",
        json={"subject": "  Spring booking  "},
        headers=staff.headers,
    )
    assert response.json()["subject"] == "Spring booking"
    [*_, updated] = await _timeline(client, staff, item["id"])
    assert updated["type"] == "updated"
    assert updated["data"] == {
        "fields": {"subject": {"from": "Contact us", "to": "Spring booking"}}
    }
    found = await enquiries(client, staff, q="spring BOOK")
    assert [i["id"] for i in found["items"]] == [item["id"]]


async def test_tags_add_and_remove(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, item = await _one(client)
    url = f"/api/v1/enquiries/{item['id']}/tags"
    added = await client.post(
        url, json={"tags": [" Wedding ", "VIP", "vip", "Été 2027"]}, headers=staff.headers
    )
    assert added.status_code == 200
    assert added.json()["tags"] == ["vip", "wedding", "été 2027"]
    again = await client.post(url, json={"tags": ["vip"]}, headers=staff.headers)
    assert again.json()["tags"] == ["vip", "wedding", "été 2027"]

    removed = await client.delete(f"{url}/VIP", headers=staff.headers)
    assert removed.status_code == 200
    assert removed.json()["tags"] == ["wedding", "été 2027"]
    absent = await client.delete(f"{url}/nothing", headers=staff.headers)
    assert absent.status_code == 200
    assert absent.json()["tags"] == ["wedding", "été 2027"]

    timeline = await _timeline(client, staff, item["id"])
    assert [(a["type"], a["data"]) for a in timeline[1:]] == [
        ("tagged", {"tags": ["wedding", "vip", "été 2027"]}),
        ("untagged", {"tags": ["vip"]}),
    ]
    updates = await events_named(runtime, "enquiry.updated")
    assert len(updates) == 2
    assert updates[-1].data == await _get(client, staff, item["id"])


@pytest.mark.parametrize(
    ("tags", "path"),
    [([""], "tags.0"), (["ok", "x" * 51], "tags.1"), (["a\nb"], "tags.0"), ([], "tags")],
    ids=["empty", "too-long", "control", "none"],
)
async def test_invalid_tags_are_422(
    client: httpx.AsyncClient, runtime: Runtime, tags: list[str], path: str
) -> None:
    staff, item = await _one(client)
    response = await client.post(
        f"/api/v1/enquiries/{item['id']}/tags", json={"tags": tags}, headers=staff.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == path
    assert (await _get(client, staff, item["id"]))["tags"] == []


async def test_manual_enquiry(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    await set_workspace(runtime, staff.workspace_id, default_country="GB")
    agent = await member(client, runtime, staff.workspace_id)
    response = await client.post(
        "/api/v1/enquiries",
        json={
            "contact": {"name": "Ada", "email": "Ada@Example.com", "phone": "020 7946 0018"},
            "message": "Called about a booking.",
            "subject": "Phone call",
            "assignee_id": str(staff.user_id),
            "tags": ["Phone"],
        },
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"] == "manual"
    assert body["source_details"] == {"created_by": str(agent.user_id)}
    assert body["answers"] == {"message": "Called about a booking."}
    assert body["contact"]["email"] == "ada@example.com"
    assert body["contact"]["phone"] == "+442079460018"
    assert body["assignee"]["id"] == str(staff.user_id)
    assert body["tags"] == ["phone"]
    assert body == await _get(client, staff, body["id"])
    [event] = await events_named(runtime, "enquiry.created")
    assert event.data == body
    assert (
        await count_rows(runtime, EmailMessage, EmailMessage.kind == "enquiry_acknowledgement") == 0
    )
    timeline = await _timeline(client, staff, body["id"])
    assert [a["type"] for a in timeline] == ["created", "assigned", "tagged"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"message": "Hi"}, "contact"),
        ({"contact": {"email": "nope"}, "message": "Hi"}, "contact.email"),
        ({"contact": {"phone": "1"}, "message": "Hi"}, "contact.phone"),
        ({"contact": {"name": "Ada"}, "message": ""}, "message"),
        (
            {
                "contact": {"name": "Ada"},
                "message": "Hi",
                "assignee_id": "0191d2a8-0000-7000-8000-000000000000",
            },
            "assignee_id",
        ),
        ({"contact": {"name": "Ada"}, "message": "Hi\x00"}, "message"),
        ({"contact": {"name": "Ad\x00a"}, "message": "Hi"}, "contact.name"),
    ],
    ids=[
        "no-contact",
        "bad-email",
        "bad-phone",
        "empty-message",
        "non-member",
        "nul-message",
        "nul-name",
    ],
)
async def test_manual_enquiry_invalid(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], path: str
) -> None:
    staff = await owner(client)
    response = await client.post("/api/v1/enquiries", json=body, headers=staff.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == path
    assert await count_rows(runtime, Enquiry) == 0


async def test_other_workspace_enquiry_not_found(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, item = await _one(client)
    stranger = await owner(client)
    url = f"/api/v1/enquiries/{item['id']}"
    responses = [
        await client.get(url, headers=stranger.headers),
        await client.patch(url, json={"status": "won"}, headers=stranger.headers),
        await client.post(f"{url}/tags", json={"tags": ["x"]}, headers=stranger.headers),
        await client.delete(f"{url}/tags/x", headers=stranger.headers),
        await client.get(f"{url}/timeline", headers=stranger.headers),
    ]
    for response in responses:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert (await enquiries(client, stranger))["items"] == []
    detail = await _get(client, staff, item["id"])
    assert (detail["status"], detail["tags"]) == ("new", [])


async def test_malformed_enquiry_id_is_422(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    for response in (
        await client.get("/api/v1/enquiries/nope", headers=staff.headers),
        await client.patch("/api/v1/enquiries/nope", json={}, headers=staff.headers),
        await client.get("/api/v1/enquiries/nope/timeline", headers=staff.headers),
    ):
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "enquiry_id"
