"""Factories for the forms, contacts and enquiries tests: staff, forms and submissions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from conftest import bearer, signup
from frontdesk.auth.models import User
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership, Workspace

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Staff:
    user_id: uuid.UUID
    workspace_id: uuid.UUID
    headers: dict[str, str]


async def owner(client: httpx.AsyncClient, **kwargs: Any) -> Staff:
    """Sign up a new owner with a new workspace."""
    tokens = await signup(client, **kwargs)
    return Staff(
        user_id=uuid.UUID(tokens["user"]["id"]),
        workspace_id=uuid.UUID(tokens["workspace"]["id"]),
        headers=bearer(tokens),
    )


async def member(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace_id: uuid.UUID,
    *,
    role: str = "agent",
    full_name: str = "Test Agent",
) -> Staff:
    """Insert a user with a membership in ``workspace_id`` and log them in."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session:
        user = User(
            email=email,
            password_hash=await runtime.hasher.hash(PASSWORD),
            full_name=full_name,
            email_verified_at=now,
            last_workspace_id=workspace_id,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        await session.flush()
        session.add(
            Membership(workspace_id=workspace_id, user_id=user.id, role=role, created_at=now)
        )
        await session.commit()
        user_id = user.id
    response = await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "email": email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["workspace"]["id"] == str(workspace_id)
    return Staff(user_id=user_id, workspace_id=workspace_id, headers=bearer(tokens))


async def set_workspace(runtime: Runtime, workspace_id: uuid.UUID, **values: Any) -> None:
    """Change workspace columns directly, for example default_country."""
    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(Workspace).where(Workspace.id == workspace_id).values(**values)
        )
        await session.commit()


def field(key: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "key": key,
        "type": type_,
        "label": extra.pop("label", key.replace("_", " ").capitalize()),
        "required": extra.pop("required", False),
    }
    definition.update(extra)
    return definition


CONTACT_FIELDS = [
    field("name", required=True, label="Your name"),
    field("email", "email", label="Email"),
    field("phone", "phone", label="Phone"),
    field("message", "long_text", label="Message"),
]


async def create_form(
    client: httpx.AsyncClient,
    staff: Staff,
    fields: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    body = {
        "name": settings.pop("name", "Contact us"),
        "fields": fields or CONTACT_FIELDS,
        **settings,
    }
    response = await client.post("/api/v1/forms", json=body, headers=staff.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def form_path(form: dict[str, Any]) -> str:
    return httpx.URL(form["public_url"]).path


async def submit(
    client: httpx.AsyncClient, form: dict[str, Any], answers: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return await client.post(form_path(form), json=answers, **kwargs)


async def submit_ok(
    client: httpx.AsyncClient, form: dict[str, Any], answers: dict[str, Any]
) -> None:
    response = await submit(client, form, answers)
    assert response.status_code == 201, response.text
    assert response.json() == {"status": "received"}


async def count_rows(runtime: Runtime, model: Any, *conditions: Any) -> int:
    async with runtime.sessionmaker() as session:
        statement = sa.select(sa.func.count()).select_from(model)
        for condition in conditions:
            statement = statement.where(condition)
        return int((await session.execute(statement)).scalar_one())


async def events_named(runtime: Runtime, name: str) -> list[Event]:
    async with runtime.sessionmaker() as session:
        statement = sa.select(Event).where(Event.name == name).order_by(Event.id)
        return list((await session.execute(statement)).scalars())


async def enquiries(client: httpx.AsyncClient, staff: Staff, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/enquiries", params=params, headers=staff.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def cursor_listener(runtime: Runtime, listener: Callable[..., None]) -> Iterator[None]:
    """Attach a ``before_cursor_execute`` listener to the write and read engines.

    GET routes marked read-only run on the read engine, which on PostgreSQL is the same one.
    """
    engines = list(
        {id(e.sync_engine): e.sync_engine for e in (runtime.engine, runtime.read_engine)}.values()
    )
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", listener)
