"""The public HTML pages behind email links: GET only shows, the form POST acts."""

from __future__ import annotations

import httpx

from auth_support import PASSWORD, last_token, log_in, new_email, verified_owner
from conftest import bearer, run_jobs, signup
from frontdesk.core.clock import FrozenClock
from frontdesk.runtime import Runtime

EMAIL = "pages@example.com"


async def is_verified(client: httpx.AsyncClient, tokens: dict[str, str]) -> bool:
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    return bool(me.json()["email_verified"])


async def test_verify_page_get_changes_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tokens = await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")

    page = await client.get("/verify-email", params={"token": token})

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert '<form method="post" action="/verify-email">' in page.text
    assert f'name="token" value="{token}"' in page.text
    assert "<script" not in page.text
    assert await is_verified(client, tokens) is False


async def test_verify_page_post_verifies(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tokens = await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")

    result = await client.post("/verify-email", data={"token": token})

    assert result.status_code == 200
    assert "Email address verified" in result.text
    assert await is_verified(client, tokens) is True
    again = await client.post("/verify-email", data={"token": token})
    assert again.status_code == 400
    assert "invalid, expired or was already used" in again.text


async def test_pages_reject_unknown_token(client: httpx.AsyncClient) -> None:
    hostile = '"><script>alert(1)</script>'

    for path, advice in (
        ("/verify-email", "request a new verification email"),
        ("/reset-password", "Request a new password reset"),
    ):
        page = await client.get(path, params={"token": hostile})
        assert page.status_code == 400
        assert advice in page.text
        assert "<script>" not in page.text
        assert "<form" not in page.text


async def test_verify_page_with_expired_token(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")
    clock.advance(seconds=runtime.settings.verification_token_ttl_seconds + 1)

    page = await client.get("/verify-email", params={"token": token})

    assert page.status_code == 400
    assert "invalid, expired or was already used" in page.text


async def test_pages_without_token_explain(client: httpx.AsyncClient) -> None:
    for path in ("/verify-email", "/reset-password", "/accept-invitation"):
        page = await client.get(path)
        assert page.status_code == 400
        assert "This link is incomplete" in page.text


async def test_reset_page_get_shows_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    await run_jobs(runtime)
    token = await last_token(runtime, EMAIL, "password_reset")

    page = await client.get("/reset-password", params={"token": token})

    assert page.status_code == 200
    assert '<form method="post" action="/reset-password">' in page.text
    assert 'autocomplete="new-password"' in page.text
    assert '<label for="password">' in page.text
    # Showing the form used nothing up: the token still works.
    result = await client.post(
        "/reset-password",
        data={
            "token": token,
            "password": "fresh password 1",
            "password_confirmation": "fresh password 1",
        },
    )
    assert result.status_code == 200, result.text
    assert "Password changed" in result.text
    assert (await log_in(client, EMAIL, "fresh password 1")).status_code == 200
    assert (await log_in(client, EMAIL, PASSWORD)).status_code == 400


async def test_reset_page_rejects_bad_passwords(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await signup(client, email=EMAIL)
    await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    await run_jobs(runtime)
    token = await last_token(runtime, EMAIL, "password_reset")

    mismatch = await client.post(
        "/reset-password",
        data={"token": token, "password": "first choice", "password_confirmation": "second choice"},
    )
    short = await client.post(
        "/reset-password",
        data={"token": token, "password": "short", "password_confirmation": "short"},
    )

    assert mismatch.status_code == 422
    assert "The two passwords differ" in mismatch.text
    assert short.status_code == 422
    assert "8 to 256 characters" in short.text
    assert (await log_in(client, EMAIL, PASSWORD)).status_code == 200


async def test_reset_page_with_used_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    await run_jobs(runtime)
    token = await last_token(runtime, EMAIL, "password_reset")
    form = {
        "token": token,
        "password": "fresh password 1",
        "password_confirmation": "fresh password 1",
    }
    assert (await client.post("/reset-password", data=form)).status_code == 200

    again = await client.post("/reset-password", data=form)
    page = await client.get("/reset-password", params={"token": token})

    assert again.status_code == 400
    assert "Request a new password reset" in again.text
    assert page.status_code == 400
    assert "<form" not in page.text


async def test_invitation_page_describes_invitation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await verified_owner(client, runtime, workspace_name="<b>Bold</b> & Co")
    email = new_email("invitee")
    await client.post(
        "/api/v1/invitations", json={"email": email, "role": "agent"}, headers=bearer(owner)
    )
    token = await last_token(runtime, email, "invitation")

    page = await client.get("/accept-invitation", params={"token": token})

    assert page.status_code == 200
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in page.text
    assert email in page.text
    assert "<strong>agent</strong>" in page.text
    assert "sign up with this email address" in page.text
    assert "<form" not in page.text


async def test_invitation_page_for_expired_invitation(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    owner = await verified_owner(client, runtime)
    email = new_email("late")
    await client.post(
        "/api/v1/invitations", json={"email": email, "role": "agent"}, headers=bearer(owner)
    )
    token = await last_token(runtime, email, "invitation")
    clock.advance(seconds=runtime.settings.invitation_ttl_seconds + 1)

    expired = await client.get("/accept-invitation", params={"token": token})
    unknown = await client.get("/accept-invitation", params={"token": "nothing-like-it"})

    assert expired.status_code == 400
    assert "has expired" in expired.text
    assert unknown.status_code == 400
    assert "invalid" in unknown.text
