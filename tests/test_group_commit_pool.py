"""Requests waiting for the group commit do not hold pooled connections it needs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from factories import owner

API = "/api/v1/conversations"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # PostgreSQL's pool then has two connections: one plus one overflow.
    return {"rate_limits_enabled": False, "database_pool_size": 1}


async def test_burst_larger_than_pool_is_stored(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    created = await client.post(API, json={"channel": "chat"}, headers=staff.headers)
    conversation_id = uuid.UUID(created.json()["id"])

    async def post(number: int) -> httpx.Response:
        return await client.post(
            f"{API}/{conversation_id}/messages",
            json={"body": f"message {number}", "client_message_id": f"burst-{number}"},
            headers=staff.headers,
        )

    # Each request reads the login on a pooled connection before its message joins a group.
    # Kept while it waited, eight such connections would leave none for the group, which
    # would then wait for the pool's 30-second timeout.
    responses = await asyncio.wait_for(asyncio.gather(*(post(n) for n in range(8))), 15)

    assert [response.status_code for response in responses] == [201] * 8
    assert sorted(response.json()["seq"] for response in responses) == list(range(1, 9))
