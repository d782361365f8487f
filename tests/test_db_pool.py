"""PostgreSQL's connection pool pings a connection only after it sat idle."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from factories import owner
from frontdesk.core import db

BACKEND_PID = sa.text("SELECT pg_backend_pid()")


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("a SQLite connection is a file in this process; nothing closes it while idle")
    return database_url


def count_pings(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    pinged: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pinged.append(dbapi_connection)
        return bool(ping(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pinged


async def test_busy_connection_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    engine = db.create_engine(postgres_url, pool_size=1)
    pinged = count_pings(engine, monkeypatch)
    try:
        for _ in range(20):
            async with engine.connect() as connection:
                await connection.execute(BACKEND_PID)
        assert pinged == []

        await asyncio.sleep(0.4)
        async with engine.connect() as connection:
            await connection.execute(BACKEND_PID)
        assert len(pinged) == 1
    finally:
        await engine.dispose()


async def test_closed_idle_connection_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    engine = db.create_engine(postgres_url, pool_size=1)
    admin = db.create_engine(postgres_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(BACKEND_PID)
        async with admin.connect() as connection:
            ended = await connection.scalar(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first}
            )
        assert ended is True
        await asyncio.sleep(0.2)

        async with engine.connect() as connection:
            second = await connection.scalar(BACKEND_PID)
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_lost_connection_answers_503_then_recovers(postgres_url: str, app: FastAPI) -> None:
    # The error reaches the app's handler instead of this test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test")
    staff = await owner(client)
    admin = db.create_engine(postgres_url, pool_size=1)
    try:
        async with admin.connect() as connection:
            # The pool's connections were used a moment ago, so none is pinged before use.
            await connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await admin.dispose()

    lost = await client.get("/api/v1/conversations", headers=staff.headers)
    again = await client.get("/api/v1/conversations", headers=staff.headers)

    assert lost.status_code == 503
    assert lost.headers["retry-after"] == "1"
    assert lost.json()["code"] == "database_unavailable"
    assert again.status_code == 200
    await client.aclose()
