"""Shared fixtures: a migrated database per backend, the app, an HTTP client, helpers.

Every test that takes ``database_url`` (directly or through ``app``) runs once on SQLite and
once on PostgreSQL. PostgreSQL tests skip when the server is unreachable, unless
FRONTDESK_TEST_REQUIRE names ``postgres``; then they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from frontdesk.app import create_app
from frontdesk.config import Settings
from frontdesk.core.clock import FrozenClock
from frontdesk.core.jobs import Worker
from frontdesk.core.migrate import upgrade
from frontdesk.models import Base
from frontdesk.runtime import Runtime

# The ``storage_backend`` fixture (every storage backend) for any test module.
pytest_plugins = ["storage_backends"]

POSTGRES_ADMIN_URL = os.environ.get(
    "FRONTDESK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRED_SERVICES = {
    s.strip() for s in os.environ.get("FRONTDESK_TEST_REQUIRE", "").split(",") if s.strip()
}


def skip_or_fail(service: str, reason: str) -> None:
    """Skip a test that needs an absent service, or fail when CI requires the service."""
    if service in REQUIRED_SERVICES:
        pytest.fail(f"{service} is required (FRONTDESK_TEST_REQUIRE) but unavailable: {reason}")
    pytest.skip(f"{service} unavailable: {reason}")


async def _drop_postgres_database(name: str) -> None:
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


async def _create_postgres_database(name: str) -> str:
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database for this test worker, on each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "frontdesk.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        # The process id keeps concurrent test runs on one server apart.
        name = f"frontdesk_test_{_worker_id()}_{os.getpid()}"
        try:
            url = asyncio.run(_create_postgres_database(name))
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            skip_or_fail("postgres", repr(exc))
    upgrade(url)
    yield url
    if request.param == "postgres":
        asyncio.run(_drop_postgres_database(name))


async def truncate_all(url: str) -> None:
    """Empty every table and restart the id sequences.

    DELETE, children first, rather than TRUNCATE, because a test leaves a few rows and
    PostgreSQL's TRUNCATE of every table costs about a quarter of a second, more than most
    tests take.
    """
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
            if connection.dialect.name == "postgresql":
                sequences = await connection.scalars(
                    sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
                )
                for name in sequences.all():
                    await connection.execute(sa.text(f'ALTER SEQUENCE "{name}" RESTART'))
    finally:
        await engine.dispose()


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: cheap argon2, millisecond backoffs, no minimum form fill time."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "encryption_keys": "t1:" + __import__("base64").b64encode(os.urandom(32)).decode(),
        "public_url": "http://frontdesk.test",
        "argon2_memory_kib": 8,
        "argon2_time_cost": 1,
        "argon2_parallelism": 1,
        "job_backoff_base_seconds": 0.001,
        "job_backoff_max_seconds": 0.01,
        "job_poll_interval_seconds": 0.05,
        "form_min_fill_seconds": 0,
        "log_format": "console",
        "log_level": "WARNING",
        "shutdown_grace_seconds": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
async def app(
    database_url: str, tmp_path: Path, clock: FrozenClock, settings_overrides: dict[str, Any]
) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running; jobs run only through ``run_jobs``."""
    await truncate_all(database_url)
    settings = make_settings(database_url, tmp_path / "data", **settings_overrides)
    application = create_app(settings, clock=clock, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as http:
        yield http


async def run_jobs(runtime: Runtime) -> int:
    """Run every due job to completion in this task; returns how many ran."""
    return await Worker(runtime, concurrency=1).run_until_idle()


def bearer(token_response: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_response['access_token']}"}


async def signup(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = "correct horse battery staple",
    full_name: str = "Test Owner",
    workspace_name: str = "Test Studio",
) -> dict[str, Any]:
    """Sign up a new user with their workspace; returns the token response."""
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": email or f"owner-{uuid.uuid4().hex[:8]}@example.com",
            "password": password,
            "full_name": full_name,
            "workspace_name": workspace_name,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
