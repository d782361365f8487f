"""Password reset, email verification and the argon2 cost of stored passwords."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from auth_support import PASSWORD, emails_to, last_token, log_in, refresh, token_in
from conftest import bearer, run_jobs, signup
from frontdesk.auth.models import OneTimeToken
from frontdesk.config import Settings
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.passwords import PasswordHasher
from frontdesk.runtime import Runtime

EMAIL = "recover@example.com"
NEW_PASSWORD = "completely different words"


async def request_reset(client: httpx.AsyncClient, runtime: Runtime, email: str) -> httpx.Response:
    """Request a reset link and run the job that emails it."""
    response = await client.post("/api/v1/auth/password-reset", json={"email": email})
    await run_jobs(runtime)
    return response


async def count_jobs(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(Job)) or 0)


async def confirm_reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": password}
    )


async def test_reset_request_answers_alike(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    jobs_before = await count_jobs(runtime)

    known = await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    jobs_after_known = await count_jobs(runtime)
    unknown = await client.post(
        "/api/v1/auth/password-reset", json={"email": "stranger@example.com"}
    )
    jobs_after_unknown = await count_jobs(runtime)

    assert known.status_code == 202
    assert unknown.status_code == 202
    assert known.content == unknown.content
    assert known.headers["content-type"] == unknown.headers["content-type"]
    # Both requests did the same work: one job each, no token and no email yet.
    assert jobs_after_known - jobs_before == 1
    assert jobs_after_unknown - jobs_after_known == 1
    assert len(await emails_to(runtime, EMAIL, "password_reset")) == 0
    await run_jobs(runtime)
    assert len(await emails_to(runtime, EMAIL, "password_reset")) == 1
    assert await emails_to(runtime, "stranger@example.com") == []


async def test_reset_request_rate_limit_is_alike(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await signup(client, email=EMAIL)
    for _ in range(5):
        assert (await request_reset(client, runtime, EMAIL)).status_code == 202
        assert (await request_reset(client, runtime, "stranger@example.com")).status_code == 202

    known = await request_reset(client, runtime, EMAIL)
    unknown = await request_reset(client, runtime, "stranger@example.com")

    assert known.status_code == 429
    assert unknown.status_code == 429
    assert known.headers["retry-after"] == unknown.headers["retry-after"]


async def test_reset_request_is_limited_per_ip(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for number in range(20):
        assert (
            await request_reset(client, runtime, f"person{number}@example.com")
        ).status_code == 202

    response = await request_reset(client, runtime, "one-more@example.com")

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_reset_confirm_sets_password_and_ends_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tokens = await signup(client, email=EMAIL)
    other = (await log_in(client, EMAIL)).json()
    await request_reset(client, runtime, EMAIL)
    token = await last_token(runtime, EMAIL, "password_reset")

    response = await confirm_reset(client, token)

    assert response.status_code == 204, response.text
    for session_tokens in (tokens, other):
        assert (await client.get("/api/v1/me", headers=bearer(session_tokens))).status_code == 401
        assert (await refresh(client, session_tokens["refresh_token"])).status_code == 400
    assert (await log_in(client, EMAIL)).status_code == 400
    login = await log_in(client, EMAIL, NEW_PASSWORD)
    assert login.status_code == 200
    # The reset link proved the mailbox, so the address counts as verified.
    assert login.json()["user"]["email_verified"] is True


async def test_reset_token_works_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    token = await last_token(runtime, EMAIL, "password_reset")
    assert (await confirm_reset(client, token)).status_code == 204

    response = await confirm_reset(client, token, "yet another password")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"
    assert (await log_in(client, EMAIL, NEW_PASSWORD)).status_code == 200


async def test_reset_invalidates_older_links(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    await request_reset(client, runtime, EMAIL)
    first, second = await emails_to(runtime, EMAIL, "password_reset")
    assert (await confirm_reset(client, token_in(second))).status_code == 204
    response = await confirm_reset(client, token_in(first), "an older link's password")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"


async def test_reset_token_expires(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    token = await last_token(runtime, EMAIL, "password_reset")
    clock.advance(seconds=runtime.settings.reset_token_ttl_seconds + 1)

    response = await confirm_reset(client, token)

    assert response.status_code == 400
    assert response.json()["code"] == "token_expired"
    assert (await log_in(client, EMAIL)).status_code == 200


async def test_reset_confirm_rejects_bad_input(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    token = await last_token(runtime, EMAIL, "password_reset")

    short = await confirm_reset(client, token, "short")
    unknown = await confirm_reset(client, "made-up-token")
    missing = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token})

    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "password"
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_token"
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "password"
    # None of these used up the real token.
    assert (await confirm_reset(client, token)).status_code == 204


async def test_password_change_voids_pending_reset_links(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tokens = await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    token = await last_token(runtime, EMAIL, "password_reset")
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens),
    )
    assert changed.status_code == 204

    response = await confirm_reset(client, token, "attacker's choice")

    assert response.status_code == 400
    assert (await log_in(client, EMAIL, NEW_PASSWORD)).status_code == 200


async def test_verify_email(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tokens = await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")

    response = await client.post("/api/v1/auth/verify-email", json={"token": token})

    assert response.status_code == 204, response.text
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.json()["email_verified"] is True
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_token"


async def test_verify_email_token_expires(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    tokens = await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")
    clock.advance(seconds=runtime.settings.verification_token_ttl_seconds + 1)

    response = await client.post("/api/v1/auth/verify-email", json={"token": token})

    assert response.status_code == 400
    assert response.json()["code"] == "token_expired"
    refreshed = await refresh(client, tokens["refresh_token"])
    assert refreshed.json()["user"]["email_verified"] is False


async def test_verify_email_rejects_reset_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await signup(client, email=EMAIL)
    await request_reset(client, runtime, EMAIL)
    reset_token = await last_token(runtime, EMAIL, "password_reset")

    response = await client.post("/api/v1/auth/verify-email", json={"token": reset_token})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"


async def test_resend_verification(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tokens = await signup(client, email=EMAIL)

    response = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))

    assert response.status_code == 202
    messages = await emails_to(runtime, EMAIL, "verification")
    assert len(messages) == 2
    newest = token_in(messages[-1])
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": newest})
    ).status_code == 204
    verified = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))
    assert verified.status_code == 409
    assert verified.json()["code"] == "email_already_verified"
    assert len(await emails_to(runtime, EMAIL, "verification")) == 2


async def test_resend_verification_is_limited(client: httpx.AsyncClient) -> None:
    tokens = await signup(client, email=EMAIL)
    for _ in range(5):
        response = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))
        assert response.status_code == 202

    response = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert (await client.post("/api/v1/auth/verify-email/resend")).status_code == 401


async def test_tokens_are_stored_hashed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await signup(client, email=EMAIL)
    token = await last_token(runtime, EMAIL, "verification")

    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(sa.select(OneTimeToken.token_hash))).all()

    assert token not in stored
    assert len(stored[0]) == 64


async def test_argon2_defaults_follow_owasp() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.argon2_memory_kib == 19456
    assert settings.argon2_time_cost == 2
    assert settings.argon2_parallelism == 1

    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    stored = await hasher.hash(PASSWORD)

    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify(stored, PASSWORD) is True
    assert await hasher.verify(stored, "another password") is False
