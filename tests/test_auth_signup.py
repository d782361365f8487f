"""Sign-up: the happy path, every invalid input, duplicates and the sign-up rate limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from auth_support import PASSWORD, emails_to, log_in, new_email
from conftest import bearer, signup
from frontdesk.auth.models import AuthSession, RefreshToken, User
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership, Workspace


async def count_rows(runtime: Runtime, model: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": new_email("owner"),
        "password": PASSWORD,
        "full_name": "Ada Lovelace",
        "workspace_name": "Analytical Studio",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


async def test_signup_creates_user_workspace_and_session(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/api/v1/auth/signup", json=valid_body(email="Ada.L@Example.COM"))

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"]
    assert body["refresh_token"]
    assert body["user"]["email"] == "ada.l@example.com"
    assert body["user"]["full_name"] == "Ada Lovelace"
    assert body["user"]["email_verified"] is False
    assert body["workspace"]["name"] == "Analytical Studio"
    assert body["workspace"]["role"] == "owner"

    workspace = await client.get("/api/v1/workspace", headers=bearer(body))
    assert workspace.status_code == 200
    assert workspace.json()["id"] == body["workspace"]["id"]
    assert workspace.json()["default_country"] == "US"
    assert workspace.json()["role"] == "owner"

    async with runtime.sessionmaker() as session:
        user = await session.scalar(sa.select(User))
        assert user is not None
        assert user.last_workspace_id is not None
        assert str(user.last_workspace_id) == body["workspace"]["id"]
        assert user.password_hash.startswith("$argon2id$")
        membership = await session.scalar(sa.select(Membership))
        assert membership is not None
        assert membership.role == "owner"
    assert await count_rows(runtime, AuthSession) == 1
    assert await count_rows(runtime, RefreshToken) == 1


async def test_signup_sends_verification_email(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tokens = await signup(client)

    messages = await emails_to(runtime, tokens["user"]["email"])
    assert [message.kind for message in messages] == ["verification"]
    assert messages[0].workspace_id is None
    assert "/verify-email?token=" in messages[0].text_body


async def test_signup_email_case_does_not_matter_for_login(client: httpx.AsyncClient) -> None:
    await signup(client, email="Grace.Hopper@Example.com")

    response = await log_in(client, "GRACE.HOPPER@example.com")

    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "grace.hopper@example.com"


async def test_signup_sets_default_country(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/signup", json=valid_body(default_country="gb"))
    assert response.status_code == 201, response.text

    workspace = await client.get("/api/v1/workspace", headers=bearer(response.json()))

    assert workspace.json()["default_country"] == "GB"


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"email": None}, "email", "missing"),
        ({"password": None}, "password", "missing"),
        ({"full_name": None}, "full_name", "missing"),
        ({"workspace_name": None}, "workspace_name", "missing"),
        ({"email": "not-an-email"}, "email", "value_error"),
        ({"email": "two@@example.com"}, "email", "value_error"),
        ({"password": "short77"}, "password", "password_too_short"),
        ({"password": "x" * 257}, "password", "password_too_long"),
        ({"full_name": "   "}, "full_name", "blank"),
        ({"full_name": "Line\nbreak"}, "full_name", "control_characters"),
        ({"workspace_name": ""}, "workspace_name", "blank"),
        ({"default_country": "XX"}, "default_country", "invalid_country"),
        ({"default_country": "USA"}, "default_country", "invalid_country"),
        ({"invitation_token": "abc"}, "invitation_token", "conflicting_fields"),
        ({"is_instance_admin": True}, "is_instance_admin", "extra_forbidden"),
    ],
)
async def test_signup_rejects_invalid_input(
    client: httpx.AsyncClient,
    runtime: Runtime,
    changes: dict[str, Any],
    field: str,
    code: str,
) -> None:
    response = await client.post("/api/v1/auth/signup", json=valid_body(**changes))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [error["field"] for error in problem["errors"]] == [field]
    assert problem["errors"][0]["code"] == code
    for model in (User, Workspace, Membership, AuthSession, EmailMessage):
        assert await count_rows(runtime, model) == 0, model.__name__


async def test_signup_rejects_non_json_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/signup",
        content=b"email=a@example.com",
        headers={"content-type": "text/plain"},
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_signup_password_message_names_the_minimum(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/signup", json=valid_body(password="1234567"))

    assert (
        response.json()["errors"][0]["message"] == "The password must have at least 8 characters."
    )


async def test_signup_accepts_password_of_max_length(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/signup", json=valid_body(password="p" * 256))

    assert response.status_code == 201, response.text


async def test_signup_duplicate_email_is_conflict(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await signup(client, email="taken@example.com")

    response = await client.post("/api/v1/auth/signup", json=valid_body(email="Taken@EXAMPLE.com"))

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "email_taken"
    assert [error["field"] for error in response.json()["errors"]] == ["email"]
    assert await count_rows(runtime, User) == 1
    assert await count_rows(runtime, Workspace) == 1
    assert await count_rows(runtime, AuthSession) == 1
    assert len(await emails_to(runtime, "taken@example.com")) == 1


async def test_signup_is_rate_limited_per_ip(client: httpx.AsyncClient) -> None:
    for _ in range(20):
        response = await client.post("/api/v1/auth/signup", json=valid_body())
        assert response.status_code == 201, response.text

    response = await client.post("/api/v1/auth/signup", json=valid_body())

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0
