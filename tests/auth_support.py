"""Helpers for the account and workspace tests: emails, their tokens, logins and members."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote

import httpx
import sqlalchemy as sa

from conftest import bearer, signup
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime

PASSWORD = "correct horse battery staple"
_TOKEN_IN_LINK = re.compile(
    r"/(verify-email|reset-password|accept-invitation)\?token=([^\s&\"<>]+)"
)


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


async def emails_to(runtime: Runtime, address: str, kind: str | None = None) -> list[EmailMessage]:
    """Messages queued to ``address`` (oldest first), read from the database."""
    async with runtime.sessionmaker() as session:
        query = sa.select(EmailMessage).where(EmailMessage.to_address == address)
        if kind is not None:
            query = query.where(EmailMessage.kind == kind)
        result = await session.scalars(query.order_by(EmailMessage.created_at, EmailMessage.id))
        return list(result)


def token_in(message: EmailMessage) -> str:
    """The raw token of the link in an email's text part."""
    match = _TOKEN_IN_LINK.search(message.text_body)
    assert match, f"no token link in the {message.kind} email"
    return unquote(match.group(2))


async def last_token(runtime: Runtime, address: str, kind: str) -> str:
    messages = await emails_to(runtime, address, kind)
    assert messages, f"no {kind} email to {address}"
    return token_in(messages[-1])


async def log_in(
    client: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "email": email, "password": password},
        headers=headers,
    )


async def refresh(
    client: httpx.AsyncClient, refresh_token: str, workspace_id: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if workspace_id is not None:
        body["workspace_id"] = workspace_id
    return await client.post("/api/v1/auth/token", json=body)


async def verified_owner(
    client: httpx.AsyncClient, runtime: Runtime, **kwargs: Any
) -> dict[str, Any]:
    """Sign up a workspace owner and verify their email; returns the token response."""
    tokens = await signup(client, **kwargs)
    email = tokens["user"]["email"]
    token = await last_token(runtime, email, "verification")
    response = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert response.status_code == 204, response.text
    return tokens


async def invite(
    client: httpx.AsyncClient, inviter: dict[str, Any], email: str, role: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/invitations", json={"email": email, "role": role}, headers=bearer(inviter)
    )


async def add_member(
    client: httpx.AsyncClient,
    runtime: Runtime,
    inviter: dict[str, Any],
    role: str,
    email: str | None = None,
) -> dict[str, Any]:
    """Invite a new address and sign it up with the invitation; returns its token response."""
    email = email or new_email(role)
    response = await invite(client, inviter, email, role)
    assert response.status_code == 201, response.text
    token = await last_token(runtime, email, "invitation")
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": f"Test {role.title()}",
            "invitation_token": token,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
