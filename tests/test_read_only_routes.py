"""GET routes marked read-only read on the read engine, which takes no write lock."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from factories import owner
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime


def _event_insert(runtime: Runtime) -> sa.Insert:
    return sa.insert(Event.__table__).values(  # type: ignore[arg-type]
        name="test.held", data={}, workspace_id=None, created_at=runtime.clock.now()
    )


async def test_reads_pass_held_write_lock(client: httpx.AsyncClient, runtime: Runtime) -> None:
    if not runtime.settings.is_sqlite:
        pytest.skip("PostgreSQL has no process write lock; reads and writes share one engine")
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )

    async with runtime.engine.begin() as writer:
        # Keeps SQLite's write lock, and this process's queue for it, until the block ends.
        await writer.execute(_event_insert(runtime))
        listed = await asyncio.wait_for(
            client.get("/api/v1/conversations", headers=staff.headers), timeout=10
        )
        fetched = await asyncio.wait_for(
            client.get(f"/api/v1/conversations/{created.json()['id']}", headers=staff.headers),
            timeout=10,
        )
        # A route without the mark queues behind the writer.
        settings = asyncio.ensure_future(client.get("/api/v1/chat/settings", headers=staff.headers))
        await asyncio.sleep(0.2)
        waiting = not settings.done()

    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]
    assert fetched.status_code == 200
    assert waiting
    assert (await settings).status_code == 200


async def test_read_engine_rejects_writes(runtime: Runtime) -> None:
    if not runtime.settings.is_sqlite:
        pytest.skip("PostgreSQL uses the same engine for reads and writes")

    with pytest.raises(OperationalError, match="readonly"):
        async with runtime.read_engine.begin() as connection:
            await connection.execute(_event_insert(runtime))

    async with runtime.engine.connect() as connection:
        count = await connection.scalar(
            sa.select(sa.func.count()).select_from(Event).where(Event.name == "test.held")
        )
    assert count == 0
