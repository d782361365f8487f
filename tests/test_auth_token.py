"""The token endpoint: password login, refresh rotation and reuse, workspace switching."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from auth_support import (
    PASSWORD,
    add_member,
    last_token,
    log_in,
    new_email,
    refresh,
    verified_owner,
)
from conftest import bearer, signup
from frontdesk.auth.models import AuthSession, User
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime


def without_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "request_id"}


async def test_login_returns_tokens_for_last_workspace(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, email="login@example.com")

    response = await log_in(client, "login@example.com")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["user"]["id"] == tokens["user"]["id"]
    assert body["workspace"] == tokens["workspace"]
    assert body["refresh_token"] != tokens["refresh_token"]
    me = await client.get("/api/v1/me", headers=bearer(body))
    assert me.status_code == 200
    assert me.json()["current_workspace_id"] == tokens["workspace"]["id"]


async def test_login_wrong_password_and_unknown_email_look_alike(
    client: httpx.AsyncClient,
) -> None:
    await signup(client, email="known@example.com")

    wrong_password = await log_in(client, "known@example.com", "not the password")
    unknown_email = await log_in(client, "unknown@example.com", "not the password")

    assert wrong_password.status_code == 400
    assert unknown_email.status_code == 400
    assert wrong_password.headers["content-type"] == "application/problem+json"
    assert wrong_password.json()["code"] == "invalid_grant"
    assert without_request_id(wrong_password.json()) == without_request_id(unknown_email.json())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grant_type": "password", "password": PASSWORD}, "email"),
        ({"grant_type": "password", "email": "a@example.com"}, "password"),
        ({"grant_type": "refresh_token"}, "refresh_token"),
        ({"grant_type": "client_credentials"}, "grant_type"),
        ({"email": "a@example.com", "password": PASSWORD}, "grant_type"),
        (
            {"grant_type": "refresh_token", "refresh_token": "x", "workspace_id": "nope"},
            "workspace_id",
        ),
    ],
)
async def test_token_rejects_incomplete_grants(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/auth/token", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_refresh_rotates_the_token(client: httpx.AsyncClient) -> None:
    tokens = await signup(client)

    first = await refresh(client, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    second = await refresh(client, first.json()["refresh_token"])

    assert second.status_code == 200, second.text
    issued = {
        tokens["refresh_token"],
        first.json()["refresh_token"],
        second.json()["refresh_token"],
    }
    assert len(issued) == 3
    assert second.json()["workspace"] == tokens["workspace"]
    me = await client.get("/api/v1/me", headers=bearer(second.json()))
    assert me.status_code == 200


async def test_refresh_unknown_token_is_invalid_grant(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "not-a-real-token")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_grant"


async def test_refresh_reuse_within_grace_gives_both_tokens(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    tokens = await signup(client)

    first = await refresh(client, tokens["refresh_token"])
    clock.advance(seconds=5)
    second = await refresh(client, tokens["refresh_token"])

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert first.json()["refresh_token"] != second.json()["refresh_token"]
    for response in (first, second):
        assert (await client.get("/api/v1/me", headers=bearer(response.json()))).status_code == 200
        assert (await refresh(client, response.json()["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_both_succeed(client: httpx.AsyncClient) -> None:
    tokens = await signup(client)

    first, second = await asyncio.gather(
        refresh(client, tokens["refresh_token"]), refresh(client, tokens["refresh_token"])
    )

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text


async def test_refresh_reuse_after_grace_ends_session(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    tokens = await signup(client)
    rotated = await refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200
    clock.advance(seconds=runtime.settings.refresh_reuse_grace_seconds + 1)

    reused = await refresh(client, tokens["refresh_token"])

    assert reused.status_code == 400
    assert reused.json()["code"] == "invalid_grant"
    me = await client.get("/api/v1/me", headers=bearer(rotated.json()))
    assert me.status_code == 401
    assert (await refresh(client, rotated.json()["refresh_token"])).status_code == 400
    async with runtime.sessionmaker() as session:
        login = await session.scalar(sa.select(AuthSession))
        assert login is not None
        assert login.revoked_at is not None
        assert login.revoked_reason == "refresh_token_reused"
        event = await session.scalar(
            sa.select(Event).where(Event.name == "internal.sessions_revoked")
        )
        assert event is not None
        assert event.data == {"session_ids": [str(login.id)]}
        assert str(event.user_id) == tokens["user"]["id"]


async def test_refresh_reuse_leaves_other_sessions(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    tokens = await signup(client, email="two-devices@example.com")
    other = (await log_in(client, "two-devices@example.com")).json()
    await refresh(client, tokens["refresh_token"])
    clock.advance(seconds=60)

    await refresh(client, tokens["refresh_token"])

    assert (await client.get("/api/v1/me", headers=bearer(other))).status_code == 200


async def test_refresh_after_session_expiry_fails(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    tokens = await signup(client)
    clock.advance(seconds=runtime.settings.refresh_token_ttl_seconds + 1)

    response = await refresh(client, tokens["refresh_token"])

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_grant"


async def test_refresh_extends_the_session(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    tokens = await signup(client)
    ttl = runtime.settings.refresh_token_ttl_seconds
    clock.advance(seconds=ttl - 60)
    rotated = await refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200
    clock.advance(seconds=120)

    response = await refresh(client, rotated.json()["refresh_token"])

    assert response.status_code == 200, response.text


async def test_access_token_expires(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    tokens = await signup(client)
    # A token that verified once is remembered, but its expiry is checked on every use.
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 200
    clock.advance(seconds=runtime.settings.access_token_ttl_seconds + 1)

    response = await client.get("/api/v1/me", headers=bearer(tokens))

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_me_without_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/me")).status_code == 401
    bad = await client.get("/api/v1/me", headers={"Authorization": "Bearer garbage"})
    assert bad.status_code == 401


async def test_switch_workspace_as_member(client: httpx.AsyncClient, runtime: Runtime) -> None:
    email = new_email("agent")
    home = await signup(client, email=email, workspace_name="Home")
    other_owner = await verified_owner(client, runtime, workspace_name="Elsewhere")
    other_workspace = other_owner["workspace"]["id"]
    invited = await client.post(
        "/api/v1/invitations", json={"email": email, "role": "agent"}, headers=bearer(other_owner)
    )
    assert invited.status_code == 201
    token = await last_token(runtime, email, "invitation")
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=bearer(home)
    )
    assert accepted.status_code == 200, accepted.text

    switched = await refresh(client, home["refresh_token"], other_workspace)

    assert switched.status_code == 200, switched.text
    assert switched.json()["workspace"] == {
        "id": other_workspace,
        "name": "Elsewhere",
        "role": "agent",
    }
    current = await client.get("/api/v1/workspace", headers=bearer(switched.json()))
    assert current.json()["id"] == other_workspace
    listed = await client.get("/api/v1/workspaces", headers=bearer(switched.json()))
    assert {item["id"]: item["current"] for item in listed.json()} == {
        home["workspace"]["id"]: False,
        other_workspace: True,
    }
    # The next refresh stays there, and so does a new login (users.last_workspace_id).
    again = await refresh(client, switched.json()["refresh_token"])
    assert again.json()["workspace"]["id"] == other_workspace
    login = await log_in(client, email)
    assert login.json()["workspace"]["id"] == other_workspace
    async with runtime.sessionmaker() as session:
        user = await session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        assert str(user.last_workspace_id) == other_workspace


async def test_switch_to_foreign_workspace_is_invalid_grant(
    client: httpx.AsyncClient,
) -> None:
    tokens = await signup(client)
    stranger = await signup(client)

    for workspace_id in (stranger["workspace"]["id"], str(uuid.uuid4())):
        response = await refresh(client, tokens["refresh_token"], workspace_id)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_grant"

    # The failed switch did not use up the refresh token.
    response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.json()["workspace"] == tokens["workspace"]


async def test_refresh_falls_back_after_removal(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await verified_owner(client, runtime)
    member = await add_member(client, runtime, owner, "agent")

    removed = await client.delete(f"/api/v1/members/{member['user']['id']}", headers=bearer(owner))
    assert removed.status_code == 204

    response = await refresh(client, member["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.json()["workspace"] is None
    assert (
        await client.get("/api/v1/workspace", headers=bearer(response.json()))
    ).status_code == 403
    assert (await client.get("/api/v1/me", headers=bearer(response.json()))).status_code == 200


class TestLoginRateLimit:
    async def test_wrong_passwords_are_limited(self, client: httpx.AsyncClient) -> None:
        await signup(client, email="target@example.com")
        for _ in range(10):
            response = await log_in(client, "target@example.com", "wrong password")
            assert response.status_code == 400

        response = await log_in(client, "target@example.com", PASSWORD)

        assert response.status_code == 429
        assert response.json()["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) > 0

    async def test_unknown_email_is_limited_alike(self, client: httpx.AsyncClient) -> None:
        for _ in range(10):
            response = await log_in(client, "nobody@example.com", "wrong password")
            assert response.status_code == 400

        response = await log_in(client, "nobody@example.com", "wrong password")

        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0

    async def test_limit_lifts_after_the_window(
        self, client: httpx.AsyncClient, clock: FrozenClock
    ) -> None:
        await signup(client, email="patient@example.com")
        for _ in range(11):
            await log_in(client, "patient@example.com", "wrong password")
        clock.advance(seconds=301)

        response = await log_in(client, "patient@example.com")

        assert response.status_code == 200, response.text


class TestLoginRateLimitBehindProxy:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"trusted_proxies": "198.51.100.0/24"}

    async def test_changing_forwarded_address_still_limited(
        self, client: httpx.AsyncClient
    ) -> None:
        await signup(client, email="spread@example.com")
        statuses = []
        for attempt in range(101):
            forwarded = {"X-Forwarded-For": f"203.0.{attempt // 200}.{attempt % 200 + 1}"}
            response = await log_in(client, "spread@example.com", "wrong password", forwarded)
            statuses.append(response.status_code)

        assert set(statuses[:100]) == {400}
        assert statuses[100] == 429
        response = await log_in(
            client, "spread@example.com", PASSWORD, {"X-Forwarded-For": "192.0.2.77"}
        )
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0

    async def test_forwarded_address_is_the_limited_ip(self, client: httpx.AsyncClient) -> None:
        # Each address gets its own per-IP budget, so ten failures from one client do not
        # block the same account from another client behind the same proxy.
        await signup(client, email="shared@example.com")
        for _ in range(10):
            await log_in(client, "shared@example.com", "wrong", {"X-Forwarded-For": "203.0.113.9"})

        blocked = await log_in(
            client, "shared@example.com", PASSWORD, {"X-Forwarded-For": "203.0.113.9"}
        )
        other = await log_in(
            client, "shared@example.com", PASSWORD, {"X-Forwarded-For": "203.0.113.10"}
        )

        assert blocked.status_code == 429
        assert other.status_code == 200, other.text
