"""Signed links against the database: signing keys, rotation, expiry and single use."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
import pytest
import sqlalchemy as sa

from conftest import signup
from frontdesk.core.clock import FrozenClock
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime
from frontdesk.storage.links import (
    LinkRejected,
    StorageSigningKey,
    decode_token,
    encode_token,
    prune_link_uses,
    record_link_use,
    rotate_signing_keys,
    sign_download_link,
    sign_upload_link,
    verify_link,
)


@pytest.fixture
async def workspace_id(client: httpx.AsyncClient) -> uuid.UUID:
    tokens = await signup(client)
    return uuid.UUID(tokens["workspace"]["id"])


async def download_token(runtime: Runtime, workspace_id: uuid.UUID, expires_in: int = 600) -> str:
    async with unit_of_work(runtime) as uow:
        token, _claims = await sign_download_link(
            uow, workspace_id=workspace_id, object_id=uuid.uuid4(), expires_in=expires_in
        )
    return token


async def upload_token(runtime: Runtime, workspace_id: uuid.UUID) -> str:
    async with unit_of_work(runtime) as uow:
        token, _claims = await sign_upload_link(
            uow,
            workspace_id=workspace_id,
            bucket_id=uuid.uuid4(),
            key="a.png",
            expires_in=600,
            max_bytes=100,
            content_types=("image/png",),
        )
    return token


async def rejection(runtime: Runtime, token: str, method: str = "GET") -> str:
    async with unit_of_work(runtime) as uow:
        with pytest.raises(LinkRejected) as caught:
            await verify_link(uow, token, method)  # type: ignore[arg-type]
    return caught.value.code


async def test_valid_link_verifies(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    token = await download_token(runtime, workspace_id)

    async with unit_of_work(runtime) as uow:
        claims = await verify_link(uow, token, "GET")

    assert claims.workspace_id == workspace_id
    assert claims.method == "GET"


async def test_one_key_per_workspace(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    first = decode_token(await download_token(runtime, workspace_id))[0]
    second = decode_token(await download_token(runtime, workspace_id))[0]

    assert first.key_id == second.key_id
    async with runtime.sessionmaker() as session:
        row = await session.scalar(sa.select(StorageSigningKey))
    assert row is not None
    # The secret is stored encrypted, never as the raw 32 bytes.
    assert row.secret_encrypted.startswith("v1.")


async def test_expired_link(runtime: Runtime, workspace_id: uuid.UUID, clock: FrozenClock) -> None:
    token = await download_token(runtime, workspace_id, expires_in=60)
    clock.advance(seconds=59)
    async with unit_of_work(runtime) as uow:
        await verify_link(uow, token, "GET")

    clock.advance(seconds=1)

    assert await rejection(runtime, token) == "link_expired"


async def test_rotation_revokes(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    old = await download_token(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        await rotate_signing_keys(uow, workspace_id)

    assert await rejection(runtime, old) == "link_revoked"
    new = await download_token(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        await verify_link(uow, new, "GET")


async def test_other_workspace_claimed(
    runtime: Runtime, client: httpx.AsyncClient, workspace_id: uuid.UUID
) -> None:
    other = uuid.UUID((await signup(client))["workspace"]["id"])
    await download_token(runtime, other)
    token = await download_token(runtime, workspace_id)
    claims = decode_token(token)[0]
    # The payload names the other workspace; the signature is the original one.
    payload = encode_token(b"x" * 32, dataclasses.replace(claims, workspace_id=other))
    forged = f"{payload.partition('.')[0]}.{token.partition('.')[2]}"

    assert await rejection(runtime, forged) == "link_tampered"


async def test_method_mismatch(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    token = await download_token(runtime, workspace_id)

    assert await rejection(runtime, token, "PUT") == "link_tampered"


async def test_upload_single_use(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    token = await upload_token(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        claims = await verify_link(uow, token, "PUT")
        await record_link_use(uow, claims)

    assert await rejection(runtime, token, "PUT") == "link_used"


async def test_concurrent_use_rejected(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    token = await upload_token(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        claims = await verify_link(uow, token, "PUT")
    async with unit_of_work(runtime) as uow:
        await record_link_use(uow, claims)

    with pytest.raises(LinkRejected) as caught:
        async with unit_of_work(runtime) as uow:
            await record_link_use(uow, claims)
    assert caught.value.code == "link_used"


async def test_prune_expired_uses(
    runtime: Runtime, workspace_id: uuid.UUID, clock: FrozenClock
) -> None:
    token = await upload_token(runtime, workspace_id)
    async with unit_of_work(runtime) as uow:
        await record_link_use(uow, await verify_link(uow, token, "PUT"))
    async with unit_of_work(runtime) as uow:
        assert await prune_link_uses(uow) == 0

    clock.advance(seconds=600)

    async with unit_of_work(runtime) as uow:
        assert await prune_link_uses(uow) == 1


@pytest.mark.parametrize("expires_in", [59, 7 * 24 * 3600 + 1])
async def test_expires_in_bounds(
    runtime: Runtime, workspace_id: uuid.UUID, expires_in: int
) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        await download_token(runtime, workspace_id, expires_in=expires_in)
