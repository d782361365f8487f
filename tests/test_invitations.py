"""Invitations: create, list, resend, revoke, look up, accept, and sign-up by invitation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from auth_support import (
    PASSWORD,
    add_member,
    emails_to,
    invite,
    last_token,
    new_email,
    refresh,
    token_in,
    verified_owner,
)
from conftest import bearer, signup
from frontdesk.auth.models import User
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership


@pytest.fixture
async def owner(client: httpx.AsyncClient, runtime: Runtime) -> dict[str, Any]:
    return await verified_owner(client, runtime, full_name="Iris Inviter", workspace_name="Atelier")


async def signup_by_invitation(
    client: httpx.AsyncClient, email: str, token: str, **changes: Any
) -> httpx.Response:
    body = {
        "email": email,
        "password": PASSWORD,
        "full_name": "New Member",
        "invitation_token": token,
    }
    body.update(changes)
    return await client.post("/api/v1/auth/signup", json=body)


async def list_invitations(
    client: httpx.AsyncClient, actor: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/invitations", headers=bearer(actor))
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def test_create_invitation_sends_email(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    response = await invite(client, owner, "New.Person@Example.com", "agent")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "new.person@example.com"
    assert body["role"] == "agent"
    assert body["status"] == "pending"
    assert body["invited_by_id"] == owner["user"]["id"]
    messages = await emails_to(runtime, "new.person@example.com", "invitation")
    assert len(messages) == 1
    assert str(messages[0].workspace_id) == owner["workspace"]["id"]
    assert "Atelier" in messages[0].text_body
    assert "Iris Inviter" in messages[0].text_body
    assert "/accept-invitation?token=" in messages[0].text_body
    listed = await list_invitations(client, owner)
    assert [item["id"] for item in listed] == [body["id"]]


async def test_invitation_lookup_is_public(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("lookup")
    await invite(client, owner, email, "admin")
    token = await last_token(runtime, email, "invitation")

    response = await client.get("/api/v1/invitations/lookup", params={"token": token})

    assert response.status_code == 200
    body = response.json()
    assert body["workspace_name"] == "Atelier"
    assert body["email"] == email
    assert body["role"] == "admin"
    unknown = await client.get("/api/v1/invitations/lookup", params={"token": "nope"})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_token"
    missing = await client.get("/api/v1/invitations/lookup")
    assert missing.status_code == 422


async def test_unverified_inviter_is_forbidden(client: httpx.AsyncClient, runtime: Runtime) -> None:
    unverified = await signup(client)
    email = new_email("never")

    response = await invite(client, unverified, email, "agent")

    assert response.status_code == 403
    assert response.json()["code"] == "email_not_verified"
    assert await emails_to(runtime, email) == []
    assert await list_invitations(client, unverified) == []


async def test_invitation_role_rules(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    admin = await add_member(client, runtime, owner, "admin")
    agent = await add_member(client, runtime, owner, "agent")

    by_agent = await invite(client, agent, new_email(), "agent")
    owner_by_admin = await invite(client, admin, new_email(), "owner")
    admin_by_admin = await invite(client, admin, new_email(), "admin")
    owner_by_owner = await invite(client, owner, new_email(), "owner")

    assert by_agent.status_code == 403
    assert owner_by_admin.status_code == 403
    assert owner_by_admin.json()["code"] == "owner_required"
    assert admin_by_admin.status_code == 201
    assert owner_by_owner.status_code == 201
    assert (await client.get("/api/v1/invitations", headers=bearer(agent))).status_code == 403


async def test_invitation_input_is_validated(
    client: httpx.AsyncClient, owner: dict[str, Any]
) -> None:
    bad_role = await invite(client, owner, new_email(), "superuser")
    bad_email = await invite(client, owner, "not-an-address", "agent")

    assert bad_role.status_code == 422
    assert bad_role.json()["errors"][0]["field"] == "role"
    assert bad_email.status_code == 422
    assert bad_email.json()["errors"][0]["field"] == "email"
    assert await list_invitations(client, owner) == []


async def test_inviting_a_member_is_conflict(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    member = await add_member(client, runtime, owner, "agent")

    response = await invite(client, owner, member["user"]["email"].upper(), "admin")

    assert response.status_code == 409
    assert response.json()["code"] == "already_member"


async def test_reinviting_replaces_pending_invitation(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("twice")
    first = await invite(client, owner, email, "agent")
    old_token = await last_token(runtime, email, "invitation")

    second = await invite(client, owner, email, "admin")

    assert second.status_code == 201
    listed = await list_invitations(client, owner)
    assert [item["id"] for item in listed] == [second.json()["id"]]
    assert first.json()["id"] != second.json()["id"]
    stale = await client.get("/api/v1/invitations/lookup", params={"token": old_token})
    assert stale.json()["code"] == "invalid_token"
    fresh = await client.get(
        "/api/v1/invitations/lookup",
        params={"token": await last_token(runtime, email, "invitation")},
    )
    assert fresh.json()["role"] == "admin"


async def test_resend_gives_new_token_and_expiry(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any], clock: FrozenClock
) -> None:
    email = new_email("resend")
    created = (await invite(client, owner, email, "agent")).json()
    old_token = await last_token(runtime, email, "invitation")
    clock.advance(minutes=10)

    response = await client.post(
        f"/api/v1/invitations/{created['id']}/resend", headers=bearer(owner)
    )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["id"]
    assert response.json()["expires_at"] > created["expires_at"]
    messages = await emails_to(runtime, email, "invitation")
    assert len(messages) == 2
    new_token = token_in(messages[-1])
    assert new_token != old_token
    assert (
        await client.get("/api/v1/invitations/lookup", params={"token": old_token})
    ).status_code == 400
    assert (
        await client.get("/api/v1/invitations/lookup", params={"token": new_token})
    ).status_code == 200


async def test_expired_invitation_is_listed_and_refused(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any], clock: FrozenClock
) -> None:
    email = new_email("late")
    created = (await invite(client, owner, email, "agent")).json()
    token = await last_token(runtime, email, "invitation")
    clock.advance(seconds=runtime.settings.invitation_ttl_seconds + 1)
    owner = (await refresh(client, owner["refresh_token"])).json()

    listed = await list_invitations(client, owner)
    lookup = await client.get("/api/v1/invitations/lookup", params={"token": token})
    joined = await signup_by_invitation(client, email, token)

    assert [(item["id"], item["status"]) for item in listed] == [(created["id"], "expired")]
    assert lookup.status_code == 400
    assert lookup.json()["code"] == "token_expired"
    assert joined.status_code == 400
    assert joined.json()["code"] == "token_expired"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(User).where(User.email == email)) is None
    # Resending revives it.
    resent = await client.post(f"/api/v1/invitations/{created['id']}/resend", headers=bearer(owner))
    assert resent.json()["status"] == "pending"
    fresh = await last_token(runtime, email, "invitation")
    assert (await signup_by_invitation(client, email, fresh)).status_code == 201


async def test_revoke_invitation(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("revoked")
    created = (await invite(client, owner, email, "agent")).json()
    token = await last_token(runtime, email, "invitation")

    response = await client.delete(f"/api/v1/invitations/{created['id']}", headers=bearer(owner))

    assert response.status_code == 204
    assert await list_invitations(client, owner) == []
    joined = await signup_by_invitation(client, email, token)
    assert joined.status_code == 400
    assert joined.json()["code"] == "invalid_token"
    again = await client.delete(f"/api/v1/invitations/{created['id']}", headers=bearer(owner))
    assert again.status_code == 404
    resend = await client.post(f"/api/v1/invitations/{created['id']}/resend", headers=bearer(owner))
    assert resend.status_code == 404


async def test_signup_by_invitation_joins_workspace(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("joiner")
    await invite(client, owner, email.upper(), "admin")
    token = await last_token(runtime, email, "invitation")

    response = await signup_by_invitation(client, email, token)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["workspace"] == {"id": owner["workspace"]["id"], "name": "Atelier", "role": "admin"}
    assert body["user"]["email_verified"] is True
    # No workspace of their own and no verification email.
    workspaces = await client.get("/api/v1/workspaces", headers=bearer(body))
    assert [item["id"] for item in workspaces.json()] == [owner["workspace"]["id"]]
    assert await emails_to(runtime, email, "verification") == []
    assert await list_invitations(client, owner) == []
    async with runtime.sessionmaker() as session:
        added = await session.scalar(sa.select(Event).where(Event.name == "member.added"))
    assert added is not None
    assert added.data["user_id"] == body["user"]["id"]
    assert added.data["role"] == "admin"
    # The token worked once.
    again = await signup_by_invitation(client, new_email(), token)
    assert again.json()["code"] == "invalid_token"


async def test_signup_by_invitation_needs_matching_email(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("intended")
    await invite(client, owner, email, "agent")
    token = await last_token(runtime, email, "invitation")
    interloper = new_email("interloper")

    response = await signup_by_invitation(client, interloper, token)

    assert response.status_code == 403
    assert response.json()["code"] == "invitation_email_mismatch"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(User).where(User.email == interloper)) is None
    assert (await signup_by_invitation(client, email, token)).status_code == 201


async def test_signup_rejects_unknown_invitation_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    email = new_email()

    response = await signup_by_invitation(client, email, "made-up")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


async def test_logged_in_user_accepts_invitation(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("existing")
    existing = await signup(client, email=email, workspace_name="Own place")
    await invite(client, owner, email, "agent")
    token = await last_token(runtime, email, "invitation")

    response = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=bearer(existing)
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"id": owner["workspace"]["id"], "name": "Atelier", "role": "agent"}
    me = (await client.get("/api/v1/me", headers=bearer(existing))).json()
    assert {item["name"] for item in me["workspaces"]} == {"Own place", "Atelier"}
    assert me["email_verified"] is True
    # The session still acts in its own workspace until the client switches.
    assert me["current_workspace_id"] == existing["workspace"]["id"]
    again = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=bearer(existing)
    )
    assert again.status_code == 400


async def test_accept_with_other_email_is_forbidden(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("addressee")
    await invite(client, owner, email, "agent")
    token = await last_token(runtime, email, "invitation")
    someone_else = await signup(client)

    response = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=bearer(someone_else)
    )

    assert response.status_code == 403
    assert response.json()["code"] == "invitation_email_mismatch"
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Membership)
            .where(Membership.workspace_id == uuid.UUID(owner["workspace"]["id"]))
        )
    assert count == 1
    assert (
        await client.post("/api/v1/invitations/accept", json={"token": token})
    ).status_code == 401


async def test_other_workspace_invitations_are_not_found(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    theirs = await verified_owner(client, runtime)
    foreign = (await invite(client, theirs, new_email(), "agent")).json()

    for invitation_id in (foreign["id"], str(uuid.uuid4())):
        resend = await client.post(
            f"/api/v1/invitations/{invitation_id}/resend", headers=bearer(owner)
        )
        revoke = await client.delete(f"/api/v1/invitations/{invitation_id}", headers=bearer(owner))
        assert resend.status_code == 404
        assert revoke.status_code == 404
    assert [item["id"] for item in await list_invitations(client, theirs)] == [foreign["id"]]
    assert await list_invitations(client, owner) == []


async def test_accepted_invitation_cannot_be_revoked(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    email = new_email("done")
    created = (await invite(client, owner, email, "agent")).json()
    token = await last_token(runtime, email, "invitation")
    assert (await signup_by_invitation(client, email, token)).status_code == 201

    revoke = await client.delete(f"/api/v1/invitations/{created['id']}", headers=bearer(owner))
    resend = await client.post(f"/api/v1/invitations/{created['id']}/resend", headers=bearer(owner))

    assert revoke.status_code == 409
    assert revoke.json()["code"] == "invitation_accepted"
    assert resend.status_code == 409


async def test_invitation_emails_are_limited_per_workspace(
    client: httpx.AsyncClient, runtime: Runtime, owner: dict[str, Any]
) -> None:
    created = (await invite(client, owner, new_email(), "agent")).json()
    for _ in range(99):
        response = await client.post(
            f"/api/v1/invitations/{created['id']}/resend", headers=bearer(owner)
        )
        assert response.status_code == 200

    response = await invite(client, owner, new_email(), "agent")

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
