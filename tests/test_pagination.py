"""Paged lists: the limit and cursor parameters, and cursors bound to their list."""

from __future__ import annotations

import base64

import httpx
import pytest

from factories import owner

LISTS = [
    "/api/v1/contacts",
    "/api/v1/enquiries",
    "/api/v1/conversations",
    "/api/v1/conversations/search?q=hello",
    "/api/v1/notifications",
    "/api/v1/invoices",
    "/api/v1/subscriptions",
    "/api/v1/email/suppressions",
    "/api/v1/email/inbound",
    "/api/v1/outbox",
    "/api/v1/jobs",
]


@pytest.mark.parametrize("path", LISTS)
async def test_list_reports_limit_and_cursor(client: httpx.AsyncClient, path: str) -> None:
    staff = await owner(client)
    separator = "&" if "?" in path else "?"

    response = await client.get(
        f"{path}{separator}limit=0&cursor=not-a-cursor", headers=staff.headers
    )

    assert response.status_code == 422, response.text
    errors = {error["field"]: error for error in response.json()["errors"]}
    assert set(errors) == {"limit", "cursor"}
    assert errors["cursor"]["code"] == "invalid_cursor"
    assert errors["cursor"]["message"] == (
        "The cursor is invalid; pass the next_cursor of a previous page."
    )


async def test_cursor_pages_its_own_list(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    subjects = ["First", "Second"]
    for subject in subjects:
        created = await client.post(
            "/api/v1/conversations",
            json={"channel": "chat", "subject": subject},
            headers=staff.headers,
        )
        assert created.status_code == 201, created.text

    inbox = "/api/v1/conversations"
    first = await client.get(inbox, params={"limit": 1}, headers=staff.headers)
    cursor = first.json()["next_cursor"]
    second = await client.get(inbox, params={"limit": 1, "cursor": cursor}, headers=staff.headers)
    elsewhere = await client.get(
        "/api/v1/enquiries", params={"cursor": cursor}, headers=staff.headers
    )

    assert [item["subject"] for item in first.json()["items"]] == ["Second"]
    assert [item["subject"] for item in second.json()["items"]] == ["First"]
    assert elsewhere.status_code == 422, elsewhere.text
    [error] = elsewhere.json()["errors"]
    assert error["field"] == "cursor"
    assert error["code"] == "invalid_cursor"
    assert error["message"] == (
        "The cursor belongs to another list; pass the next_cursor of a previous page of this list."
    )


async def test_storage_and_dated_cursors_stay_apart(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await client.post(
        "/api/v1/storage/buckets", json={"name": "cursor-check"}, headers=staff.headers
    )
    objects = f"/api/v1/storage/buckets/{bucket.json()['id']}/objects"
    for key in ("a.txt", "b.txt"):
        stored = await client.post(
            objects,
            params={"key": key},
            content=b"hello",
            headers=staff.headers | {"Content-Type": "text/plain"},
        )
        assert stored.status_code == 201, stored.text
    await client.post("/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers)
    await client.post("/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers)
    key_cursor = (await client.get(objects, params={"limit": 1}, headers=staff.headers)).json()[
        "next_cursor"
    ]
    dated_cursor = (
        await client.get("/api/v1/conversations", params={"limit": 1}, headers=staff.headers)
    ).json()["next_cursor"]

    to_inbox = await client.get(
        "/api/v1/conversations", params={"cursor": key_cursor}, headers=staff.headers
    )
    to_objects = await client.get(objects, params={"cursor": dated_cursor}, headers=staff.headers)
    own = await client.get(objects, params={"cursor": key_cursor}, headers=staff.headers)

    for response in (to_inbox, to_objects):
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["code"] == "invalid_cursor"
        assert error["message"].startswith("The cursor belongs to another list")
    assert [item["key"] for item in own.json()["items"]] == ["b.txt"]


def _cursor(*parts: str) -> str:
    # Written as JSON escapes, as a client tampering with a cursor could.
    raw = "[" + ", ".join(f'"{part}"' for part in parts) + "]"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        _cursor("storage_objects", "\\ud800", "01a246d3-a1a4-70f8-be2f-4c078c07de16"),
        _cursor("storage_objects", "a\\u0000b", "01a246d3-a1a4-70f8-be2f-4c078c07de16"),
        _cursor("storage_objects", "/not/a/key", "01a246d3-a1a4-70f8-be2f-4c078c07de16"),
        base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("="),
    ],
    ids=["empty", "lone-surrogate", "nul", "invalid-key", "deep-nesting"],
)
async def test_tampered_object_cursor_rejected(client: httpx.AsyncClient, cursor: str) -> None:
    staff = await owner(client)
    bucket = await client.post(
        "/api/v1/storage/buckets", json={"name": "tampered"}, headers=staff.headers
    )
    objects = f"/api/v1/storage/buckets/{bucket.json()['id']}/objects"

    response = await client.get(objects, params={"cursor": cursor}, headers=staff.headers)

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "cursor"
    assert error["code"] == "invalid_cursor"


async def test_dated_cursor_with_surrogate_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cursor = _cursor("conversations", "\\ud800", "01a246d3-a1a4-70f8-be2f-4c078c07de16")

    response = await client.get(
        "/api/v1/conversations", params={"cursor": cursor}, headers=staff.headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == "invalid_cursor"
