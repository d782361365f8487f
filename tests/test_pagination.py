"""Paged lists: the limit and cursor parameters are checked together."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from factories import owner
from frontdesk.core.pagination import encode_cursor

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


@pytest.mark.parametrize("path", LISTS)
async def test_list_accepts_valid_cursor(client: httpx.AsyncClient, path: str) -> None:
    staff = await owner(client)
    separator = "&" if "?" in path else "?"
    # A well-formed cursor before every row: the page is empty, not an error.
    cursor = encode_cursor(datetime(2000, 1, 1, tzinfo=UTC), uuid.UUID(int=0))

    response = await client.get(f"{path}{separator}cursor={cursor}", headers=staff.headers)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
