"""Contacts: matching submissions to people, staff edits, search and workspace scoping."""

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
    member,
    owner,
    set_workspace,
    submit,
    submit_ok,
)
from frontdesk.contacts.models import Contact
from frontdesk.core.clock import FrozenClock
from frontdesk.runtime import Runtime


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


async def _setup(
    client: httpx.AsyncClient, runtime: Runtime, country: str = "GB"
) -> tuple[Staff, dict[str, Any]]:
    staff = await owner(client)
    await set_workspace(runtime, staff.workspace_id, default_country=country)
    form = await create_form(client, staff)
    return staff, form


async def _contacts(runtime: Runtime) -> list[Contact]:
    async with runtime.sessionmaker() as session:
        statement = sa.select(Contact).order_by(Contact.created_at, Contact.id)
        return list((await session.execute(statement)).scalars())


async def test_email_matches_case_insensitively(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "email": "Ada@Example.COM"})
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    contacts = await _contacts(runtime)
    assert len(contacts) == 1
    assert contacts[0].email == "ada@example.com"
    items = (await enquiries(client, staff))["items"]
    assert {item["contact"]["id"] for item in items} == {str(contacts[0].id)}


async def test_phone_normalized_with_country(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime, country="GB")
    await submit_ok(client, form, {"name": "Ada", "phone": "020 7946 0018"})
    await submit_ok(client, form, {"name": "Ada", "phone": "+44 20 7946 0018"})
    contacts = await _contacts(runtime)
    assert [c.phone for c in contacts] == ["+442079460018"]
    items = (await enquiries(client, staff))["items"]
    assert [item["answers"]["phone"] for item in items] == ["+442079460018"] * 2


@pytest.mark.parametrize(
    "query", ["(020) 7946-0018", "020 7946 0018", "02079460018", "020 7946", "+44 20 7946 0018"]
)
async def test_phone_search_national_form(
    client: httpx.AsyncClient, runtime: Runtime, query: str
) -> None:
    staff, form = await _setup(client, runtime, country="GB")
    await submit_ok(client, form, {"name": "Ada", "phone": "+44 20 7946 0018"})
    await submit_ok(client, form, {"name": "Bob", "phone": "+44 161 496 0000"})

    contacts = await client.get("/api/v1/contacts", params={"q": query}, headers=staff.headers)
    found = await enquiries(client, staff, q=query)

    assert [item["name"] for item in contacts.json()["items"]] == ["Ada"]
    assert [item["contact"]["name"] for item in found["items"]] == ["Ada"]


async def test_phone_country_comes_from_workspace(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _staff, form = await _setup(client, runtime, country="FR")
    await submit_ok(client, form, {"name": "Zoé", "phone": "06 12 34 56 78"})
    assert [c.phone for c in await _contacts(runtime)] == ["+33612345678"]
    uk_number = await submit(client, form, {"name": "Ada", "phone": "020 7946 0018"})
    assert uk_number.status_code == 422
    assert uk_number.json()["errors"][0]["field"] == "phone"


async def test_email_wins_over_phone(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(
        client, form, {"name": "Ada", "email": "ada@example.com", "phone": "020 7946 0018"}
    )
    await submit_ok(
        client, form, {"name": "Bob", "email": "bob@example.com", "phone": "020 7946 0019"}
    )
    await submit_ok(
        client, form, {"name": "Ada", "email": "ada@example.com", "phone": "020 7946 0019"}
    )
    ada, bob = await _contacts(runtime)
    assert (ada.email, ada.phone) == ("ada@example.com", "+442079460018")
    assert (bob.email, bob.phone) == ("bob@example.com", "+442079460019")
    latest = (await enquiries(client, staff))["items"][0]
    assert latest["contact"]["id"] == str(ada.id)
    assert latest["answers"]["phone"] == "+442079460019"


async def test_submission_never_overwrites(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada Lovelace", "email": "ada@example.com"})
    await submit_ok(
        client,
        form,
        {"name": "Mallory", "email": "ADA@example.com", "phone": "020 7946 0018"},
    )
    [contact] = await _contacts(runtime)
    assert contact.name == "Ada Lovelace"
    assert contact.phone == "+442079460018"
    latest = (await enquiries(client, staff))["items"][0]
    assert latest["answers"]["name"] == "Mallory"
    assert latest["contact"]["name"] == "Ada Lovelace"


async def test_phone_match_fills_email(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "phone": "020 7946 0018"})
    await submit_ok(
        client, form, {"name": "Ada", "email": "ada@example.com", "phone": "02079460018"}
    )
    [contact] = await _contacts(runtime)
    assert contact.email == "ada@example.com"


async def test_phone_match_keeps_other_email(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(
        client, form, {"name": "Ada", "email": "ada@example.com", "phone": "020 7946 0018"}
    )
    await submit_ok(
        client, form, {"name": "Eve", "email": "eve@example.com", "phone": "020 7946 0018"}
    )
    [contact] = await _contacts(runtime)
    assert contact.email == "ada@example.com"
    assert contact.name == "Ada"
    latest = (await enquiries(client, staff))["items"][0]
    assert latest["answers"]["email"] == "eve@example.com"


async def test_anonymous_submission_creates_contact(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Walk-in"})
    await submit_ok(client, form, {"name": "Walk-in"})
    contacts = await _contacts(runtime)
    assert [(c.name, c.email, c.phone) for c in contacts] == [("Walk-in", None, None)] * 2
    items = (await enquiries(client, staff))["items"]
    assert {item["contact"]["id"] for item in items} == {str(c.id) for c in contacts}


async def test_name_from_first_and_last(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(
        client,
        staff,
        [
            {"key": "first_name", "type": "text", "label": "First name", "required": True},
            {"key": "last_name", "type": "text", "label": "Last name", "required": False},
            {"key": "work_email", "type": "email", "label": "Email", "required": False},
            {"key": "home_email", "type": "email", "label": "Other email", "required": False},
        ],
    )
    await submit_ok(
        client,
        form,
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "work_email": "ada@work.example",
            "home_email": "ada@home.example",
        },
    )
    [contact] = await _contacts(runtime)
    assert (contact.name, contact.email) == ("Ada Lovelace", "ada@work.example")


async def test_update_overwrites(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    [contact] = await _contacts(runtime)
    agent = await member(client, runtime, staff.workspace_id)
    response = await client.patch(
        f"/api/v1/contacts/{contact.id}",
        json={
            "name": "Ada King",
            "email": "ADA.KING@example.com",
            "phone": "020 7946 0018",
            "notes": "VIP",
        },
        headers=agent.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Ada King"
    assert body["email"] == "ada.king@example.com"
    assert body["phone"] == "+442079460018"
    assert body["notes"] == "VIP"
    assert body["enquiries_count"] == 1

    cleared = await client.patch(
        f"/api/v1/contacts/{contact.id}", json={"phone": None, "notes": ""}, headers=agent.headers
    )
    assert cleared.json()["phone"] is None
    assert cleared.json()["notes"] is None
    assert cleared.json()["name"] == "Ada King"


async def test_update_email_taken_is_409(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    await submit_ok(client, form, {"name": "Bob", "email": "bob@example.com"})
    ada, _bob = await _contacts(runtime)
    response = await client.patch(
        f"/api/v1/contacts/{ada.id}",
        json={"name": "Changed", "email": "BOB@example.com"},
        headers=staff.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"
    assert [error["field"] for error in response.json()["errors"]] == ["email"]
    reloaded, _ = await _contacts(runtime)
    assert (reloaded.name, reloaded.email) == ("Ada", "ada@example.com")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"email": "nope"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"name": "x" * 201}, "name"),
        ({"notes": "a\x00b"}, "notes"),
        ({"age": 3}, "age"),
    ],
    ids=["email", "phone", "name", "nul-notes", "unknown"],
)
async def test_update_invalid_is_422(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], path: str
) -> None:
    staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    [contact] = await _contacts(runtime)
    response = await client.patch(
        f"/api/v1/contacts/{contact.id}", json=body, headers=staff.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == path
    [reloaded] = await _contacts(runtime)
    assert (reloaded.name, reloaded.email, reloaded.phone) == ("Ada", "ada@example.com", None)


async def test_list_search_and_pages(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff, form = await _setup(client, runtime)
    people = [
        ("Zoë Ångström", "zoe@example.com", None),
        ("Bob O'Brien", "bob_1@example.com", "020 7946 0018"),
        ("100% Carla", "carla@example.org", None),
    ]
    for name, email, phone in people:
        clock.advance(seconds=1)
        answers = {"name": name, "email": email}
        if phone:
            answers["phone"] = phone
        await submit_ok(client, form, answers)

    async def search(q: str) -> list[str]:
        response = await client.get("/api/v1/contacts", params={"q": q}, headers=staff.headers)
        assert response.status_code == 200
        return [item["name"] for item in response.json()["items"]]

    assert await search("") == ["100% Carla", "Bob O'Brien", "Zoë Ångström"]
    assert await search("ZOË ÅNG") == ["Zoë Ångström"]
    assert await search("o'b") == ["Bob O'Brien"]
    assert await search("b_1") == ["Bob O'Brien"]
    assert await search("_") == ["Bob O'Brien"]
    assert await search("100%") == ["100% Carla"]
    assert await search("%") == ["100% Carla"]
    assert await search("20 7946") == ["Bob O'Brien"]
    assert await search("EXAMPLE.ORG") == ["100% Carla"]
    assert await search("\\") == []

    first = await client.get("/api/v1/contacts", params={"limit": 2}, headers=staff.headers)
    body = first.json()
    assert [item["name"] for item in body["items"]] == ["100% Carla", "Bob O'Brien"]
    second = await client.get(
        "/api/v1/contacts",
        params={"limit": 2, "cursor": body["next_cursor"]},
        headers=staff.headers,
    )
    assert [item["name"] for item in second.json()["items"]] == ["Zoë Ångström"]
    assert second.json()["next_cursor"] is None


async def test_other_workspace_contact_not_found(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _staff, form = await _setup(client, runtime)
    await submit_ok(client, form, {"name": "Ada", "email": "ada@example.com"})
    [contact] = await _contacts(runtime)
    stranger = await owner(client)
    read = await client.get(f"/api/v1/contacts/{contact.id}", headers=stranger.headers)
    assert read.status_code == 404
    assert read.json()["code"] == "not_found"
    edit = await client.patch(
        f"/api/v1/contacts/{contact.id}", json={"name": "X"}, headers=stranger.headers
    )
    assert edit.status_code == 404
    listed = await client.get("/api/v1/contacts", headers=stranger.headers)
    assert listed.json()["items"] == []
    [unchanged] = await _contacts(runtime)
    assert unchanged.name == "Ada"


async def test_malformed_ids_are_422(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.get("/api/v1/contacts/123", headers=staff.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "contact_id"
    bad_cursor = await client.get(
        "/api/v1/contacts", params={"cursor": "!!"}, headers=staff.headers
    )
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"


async def test_contacts_need_login(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.get("/api/v1/contacts")
    assert response.status_code == 401
    assert await count_rows(runtime, Contact) == 0
