"""Login sessions: listing, revoking one, logging out here or everywhere, password change."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from auth_support import PASSWORD, log_in, refresh
from conftest import bearer, signup
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime

EMAIL = "sessions@example.com"


async def three_sessions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Sign up and log in twice more from other devices; returns the three token responses."""
    first = await signup(client, email=EMAIL)
    others = []
    for agent in ("Phone/1.0", "Tablet/2.0"):
        response = await log_in(client, EMAIL, headers={"User-Agent": agent})
        assert response.status_code == 200
        others.append(response.json())
    return [first, *others]


async def revoked_session_events(runtime: Runtime) -> list[Event]:
    async with runtime.sessionmaker() as session:
        result = await session.scalars(
            sa.select(Event).where(Event.name == "internal.sessions_revoked").order_by(Event.id)
        )
        return list(result)


async def test_sessions_list_marks_current(client: httpx.AsyncClient) -> None:
    _first, phone, _tablet = await three_sessions(client)

    response = await client.get("/api/v1/auth/sessions", headers=bearer(phone))

    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 3
    current = [item for item in sessions if item["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "Phone/1.0"
    assert {item["ip_address"] for item in sessions} == {"198.51.100.7"}
    assert set(sessions[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "user_agent",
        "ip_address",
        "current",
    }


async def test_sessions_require_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/auth/sessions")).status_code == 401
    assert (await client.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}")).status_code == 401
    assert (await client.post("/api/v1/auth/logout", json={})).status_code == 401
    assert (await client.post("/api/v1/auth/password", json={})).status_code == 401


async def test_revoke_one_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first, phone, tablet = await three_sessions(client)
    sessions = (await client.get("/api/v1/auth/sessions", headers=bearer(first))).json()
    phone_session = next(item for item in sessions if item["user_agent"] == "Phone/1.0")

    response = await client.delete(
        f"/api/v1/auth/sessions/{phone_session['id']}", headers=bearer(first)
    )

    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(phone))).status_code == 401
    assert (await refresh(client, phone["refresh_token"])).json()["code"] == "invalid_grant"
    assert (await client.get("/api/v1/me", headers=bearer(first))).status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(tablet))).status_code == 200
    remaining = (await client.get("/api/v1/auth/sessions", headers=bearer(first))).json()
    assert phone_session["id"] not in {item["id"] for item in remaining}
    events = await revoked_session_events(runtime)
    assert [event.data for event in events] == [{"session_ids": [phone_session["id"]]}]
    again = await client.delete(
        f"/api/v1/auth/sessions/{phone_session['id']}", headers=bearer(first)
    )
    assert again.status_code == 404


async def test_revoke_other_users_session_is_not_found(client: httpx.AsyncClient) -> None:
    mine = await signup(client)
    theirs = await signup(client)
    their_sessions = (await client.get("/api/v1/auth/sessions", headers=bearer(theirs))).json()

    response = await client.delete(
        f"/api/v1/auth/sessions/{their_sessions[0]['id']}", headers=bearer(mine)
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert (await client.get("/api/v1/me", headers=bearer(theirs))).status_code == 200
    random = await client.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}", headers=bearer(mine))
    assert random.status_code == 404
    malformed = await client.delete("/api/v1/auth/sessions/not-a-uuid", headers=bearer(mine))
    assert malformed.status_code == 422


async def test_logout_ends_this_session_only(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first, phone, tablet = await three_sessions(client)

    response = await client.post("/api/v1/auth/logout", json={"all": False}, headers=bearer(phone))

    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(phone))).status_code == 401
    assert (await refresh(client, phone["refresh_token"])).status_code == 400
    assert (await client.get("/api/v1/me", headers=bearer(first))).status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(tablet))).status_code == 200
    assert len(await revoked_session_events(runtime)) == 1


async def test_logout_without_body_ends_this_session(client: httpx.AsyncClient) -> None:
    tokens = await signup(client)

    response = await client.post("/api/v1/auth/logout", headers=bearer(tokens))

    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 401


async def test_logout_all_ends_every_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    sessions = await three_sessions(client)

    response = await client.post(
        "/api/v1/auth/logout", json={"all": True}, headers=bearer(sessions[1])
    )

    assert response.status_code == 204
    for tokens in sessions:
        assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 401
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
    events = await revoked_session_events(runtime)
    assert len(events) == 1
    assert len(events[0].data["session_ids"]) == 3
    assert str(events[0].user_id) == sessions[0]["user"]["id"]


async def test_password_change_ends_other_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first, phone, tablet = await three_sessions(client)

    response = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(phone),
    )

    assert response.status_code == 204, response.text
    assert (await client.get("/api/v1/me", headers=bearer(phone))).status_code == 200
    assert (await refresh(client, phone["refresh_token"])).status_code == 200
    for other in (first, tablet):
        assert (await client.get("/api/v1/me", headers=bearer(other))).status_code == 401
        assert (await refresh(client, other["refresh_token"])).status_code == 400
    assert (await log_in(client, EMAIL)).status_code == 400
    assert (await log_in(client, EMAIL, "a brand new passphrase")).status_code == 200
    events = await revoked_session_events(runtime)
    assert len(events) == 1
    assert len(events[0].data["session_ids"]) == 2


async def test_password_change_checks_current_password(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, email=EMAIL)

    response = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "a brand new passphrase"},
        headers=bearer(tokens),
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "current_password"
    assert response.json()["errors"][0]["code"] == "incorrect_password"
    assert (await log_in(client, EMAIL)).status_code == 200


async def test_password_change_validates_new_password(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, email=EMAIL)

    for new_password, code in (("short", "password_too_short"), ("y" * 257, "password_too_long")):
        response = await client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=bearer(tokens),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "new_password"
        assert response.json()["errors"][0]["code"] == code
    assert (await log_in(client, EMAIL)).status_code == 200


async def test_password_change_attempts_are_limited(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, email=EMAIL)
    body = {"current_password": "guess guess", "new_password": "a brand new passphrase"}
    for _ in range(10):
        response = await client.post("/api/v1/auth/password", json=body, headers=bearer(tokens))
        assert response.status_code == 422

    response = await client.post("/api/v1/auth/password", json=body, headers=bearer(tokens))

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
