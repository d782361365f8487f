"""Enquiry list: filters, text search, cursor pagination and a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from factories import Staff, create_form, cursor_listener, enquiries, member, owner, submit_ok
from frontdesk.core.clock import FrozenClock
from frontdesk.runtime import Runtime


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


def _iso(value: Any) -> str:
    return value.isoformat()


async def _names(client: httpx.AsyncClient, staff: Staff, **params: Any) -> list[str]:
    body = await enquiries(client, staff, **params)
    return [item["answers"].get("name") or item["contact"]["name"] for item in body["items"]]


async def _patch(client: httpx.AsyncClient, staff: Staff, enquiry_id: str, **body: Any) -> None:
    response = await client.patch(
        f"/api/v1/enquiries/{enquiry_id}", json=body, headers=staff.headers
    )
    assert response.status_code == 200, response.text


async def test_filters(client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    form = await create_form(client, staff)
    start = clock.now()
    names = ["Ada", "Bob", "Cleo", "Dan"]
    for name in names:
        clock.advance(seconds=10)
        await submit_ok(client, form, {"name": name, "email": f"{name.lower()}@example.com"})
    clock.advance(seconds=10)
    manual = await client.post(
        "/api/v1/enquiries",
        json={"contact": {"name": "Eve"}, "message": "By phone"},
        headers=staff.headers,
    )
    assert manual.status_code == 201
    ids = {
        item["contact"]["name"]: item["id"] for item in (await enquiries(client, staff))["items"]
    }

    await _patch(client, staff, ids["Ada"], status="open", assignee_id=str(agent.user_id))
    await _patch(client, staff, ids["Bob"], status="won", assignee_id=str(staff.user_id))
    await _patch(client, staff, ids["Cleo"], status="lost")
    tagged = await client.post(
        f"/api/v1/enquiries/{ids['Bob']}/tags", json={"tags": ["VIP"]}, headers=staff.headers
    )
    assert tagged.status_code == 200

    assert await _names(client, staff) == ["Eve", "Dan", "Cleo", "Bob", "Ada"]
    everything = await enquiries(client, staff)
    assert len(everything["items"]) == 5
    assert everything["next_cursor"] is None

    assert await _names(client, staff, status="open") == ["Ada"]
    assert await _names(client, staff, status=["won", "lost"]) == ["Cleo", "Bob"]
    assert await _names(client, staff, status="won,open") == ["Bob", "Ada"]
    assert await _names(client, agent, assignee="me") == ["Ada"]
    assert await _names(client, staff, assignee="me") == ["Bob"]
    assert await _names(client, staff, assignee=str(agent.user_id)) == ["Ada"]
    none = await enquiries(client, staff, assignee="none")
    assert len(none["items"]) == 3
    assert await _names(client, staff, source="form", assignee="none") == ["Dan", "Cleo"]
    manual_items = (await enquiries(client, staff, source="manual"))["items"]
    assert [item["id"] for item in manual_items] == [manual.json()["id"]]
    assert await _names(client, staff, tag="vip") == ["Bob"]
    assert await _names(client, staff, tag=" VIP ") == ["Bob"]
    assert await _names(client, staff, tag="other") == []

    after = start + timedelta(seconds=20)
    before = start + timedelta(seconds=40)
    assert await _names(client, staff, created_after=_iso(after), created_before=_iso(before)) == [
        "Cleo",
        "Bob",
    ]
    naive = after.replace(tzinfo=None).isoformat()
    assert await _names(client, staff, created_after=naive, source="form") == ["Dan", "Cleo", "Bob"]
    contact_id = (await enquiries(client, staff, q="dan@"))["items"][0]["contact"]["id"]
    assert await _names(client, staff, contact_id=contact_id) == ["Dan"]


async def test_text_search(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    rows = [
        ("Zoë Ångström", "Quiet room, 50% off?"),
        ("O'Brien", 'He said "hello" \\ goodbye'),
        ("Snake_case", "under_score here"),
        ("Plain", "Nothing special"),
        ("ĞÜŞ", "İstanbul trip"),
    ]
    for index, (name, message) in enumerate(rows):
        clock.advance(seconds=1)
        await submit_ok(
            client, form, {"name": name, "message": message, "email": f"p{index}@example.com"}
        )

    cases = {
        "zoË": ["Zoë Ångström"],
        "ÅNGSTRÖM": ["Zoë Ångström"],
        "50%": ["Zoë Ångström"],
        "%": ["Zoë Ångström"],
        "_": ["Snake_case"],
        "e_c": ["Snake_case"],
        "o'b": ["O'Brien"],
        '"hello"': ["O'Brien"],
        "\\": ["O'Brien"],
        "' OR 1=1 --": [],
        "special": ["Plain"],
        "QUIET ROOM": ["Zoë Ångström"],
        "ğüş": ["ĞÜŞ"],
        "P1@EXAMPLE": ["O'Brien"],
    }
    for query, expected in cases.items():
        assert await _names(client, staff, q=query) == expected, query


async def test_search_follows_contact_edits(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    [item] = (await enquiries(client, staff))["items"]
    response = await client.patch(
        f"/api/v1/contacts/{item['contact']['id']}",
        json={"name": "Countess Lovelace"},
        headers=staff.headers,
    )
    assert response.status_code == 200
    assert await _names(client, staff, q="countess") == ["Ada"]


async def test_cursor_pages_have_no_gaps(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    names = [f"Person {i:02d}" for i in range(11)]
    for index, name in enumerate(names):
        # Pairs share a timestamp, so the id decides the order inside a pair.
        if index % 2 == 0:
            clock.advance(seconds=1)
        await submit_ok(client, form, {"name": name})

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = await enquiries(client, staff, **params)
        pages += 1
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 11
    everything = await enquiries(client, staff, limit=200)
    assert [item["id"] for item in everything["items"]] == seen
    created = [item["created_at"] for item in everything["items"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"status": "archived"}, "status"),
        ({"status": "open,"}, None),
        ({"assignee": "someone"}, "assignee"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"tag": "x" * 51}, "tag"),
        ({"contact_id": "1"}, "contact_id"),
        ({"q": "a\x00b"}, "q"),
        ({"source": "form\x00"}, "source"),
        ({"source": "x"}, "source"),
        ({"source": "email"}, None),
    ],
    ids=[
        "status",
        "trailing-comma",
        "assignee",
        "date",
        "limit-0",
        "limit-201",
        "cursor",
        "tag",
        "contact",
        "nul-q",
        "nul-source",
        "unknown-source",
        "email-source",
    ],
)
async def test_invalid_filters(
    client: httpx.AsyncClient, params: dict[str, Any], path: str | None
) -> None:
    staff = await owner(client)
    response = await client.get("/api/v1/enquiries", params=params, headers=staff.headers)
    if path is None:
        assert response.status_code == 200
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == path


async def test_list_query_count_is_fixed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agents = [
        await member(client, runtime, staff.workspace_id, full_name=f"Agent {i}") for i in range(3)
    ]
    form = await create_form(client, staff)

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The event publisher runs after each commit on the same engine; its reads of the
        # events table are not part of the request.
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" not in statement:
            statements.append(statement)

    async def measure(path: str) -> int:
        statements.clear()
        with cursor_listener(runtime, count):
            response = await client.get(path, headers=staff.headers)
        assert response.status_code == 200
        return len(statements)

    async def add(total: int) -> None:
        for index in range(total):
            await submit_ok(
                client, form, {"name": f"N{index}", "email": f"n{index}-{total}@example.com"}
            )
        for item in (await enquiries(client, staff, limit=200))["items"]:
            agent = agents[hash(item["id"]) % len(agents)]
            await _patch(client, staff, item["id"], assignee_id=str(agent.user_id))
            await client.post(
                f"/api/v1/enquiries/{item['id']}/tags",
                json={"tags": ["a", "b"]},
                headers=staff.headers,
            )

    baseline = await measure("/api/v1/forms")
    await add(2)
    with_two = await measure("/api/v1/enquiries")
    await add(6)
    with_eight = await measure("/api/v1/enquiries")
    assert with_eight == with_two
    # One query each for enquiries, contacts, assignees and tags, against one for forms.
    assert with_two - baseline == 3
    assert sum("FROM enquiries" in s for s in statements) == 1
