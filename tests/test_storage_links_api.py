"""Signed links through the API: creation, downloads, uploads and every rejection."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from factories import Staff, member, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.runtime import Runtime
from frontdesk.storage.links import decode_token, encode_token
from frontdesk.storage.models import StoredObject

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def make_bucket(client: httpx.AsyncClient, staff: Staff, **fields: Any) -> str:
    response = await client.post(
        "/api/v1/storage/buckets",
        headers=staff.headers,
        json={"name": f"files-{uuid.uuid4().hex[:8]}", **fields},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def upload(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, key: str, content: bytes
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/objects",
        headers=staff.headers,
        params={"key": key},
        content=content,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://frontdesk.test"
    return parts.path


async def download_link(
    client: httpx.AsyncClient, staff: Staff, object_id: str, expires_in: int = 600
) -> str:
    response = await client.post(
        f"/api/v1/storage/objects/{object_id}/links",
        headers=staff.headers,
        json={"expires_in": expires_in},
    )
    assert response.status_code == 201, response.text
    return path_of(response.json()["url"])


async def upload_link(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, **fields: Any
) -> str:
    response = await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/upload-links",
        headers=staff.headers,
        json={"key": "from-client.txt", "expires_in": 600, **fields},
    )
    assert response.status_code == 201, response.text
    return path_of(response.json()["url"])


def assert_rejected(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.fixture
async def staff(client: httpx.AsyncClient) -> Staff:
    return await owner(client)


@pytest.fixture
async def bucket_id(client: httpx.AsyncClient, staff: Staff) -> str:
    return await make_bucket(client, staff)


async def test_download_link_serves_object(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "notes/hello.txt", b"hello world")
    path = await download_link(client, staff, stored["id"])

    response = await client.get(path)

    assert response.status_code == 200, response.text
    assert response.content == b"hello world"
    assert response.headers["etag"] == stored["etag"]
    assert "hello.txt" in response.headers["content-disposition"]


async def test_download_link_without_body(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, clock: FrozenClock
) -> None:
    stored = await upload(client, staff, bucket_id, "notes/default.txt", b"default")
    response = await client.post(
        f"/api/v1/storage/objects/{stored['id']}/links", headers=staff.headers
    )
    assert response.status_code == 201, response.text
    expires_at = datetime.fromisoformat(response.json()["expires_at"])
    # Links expire on a whole second.
    assert 3599 <= (expires_at - clock.now()).total_seconds() <= 3600


async def test_download_link_range_and_etag(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"0123456789")
    path = await download_link(client, staff, stored["id"])

    partial = await client.get(path, headers={"Range": "bytes=2-4"})
    cached = await client.get(path, headers={"If-None-Match": stored["etag"]})

    assert partial.status_code == 206
    assert partial.content == b"234"
    assert cached.status_code == 304


async def test_download_link_reusable(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"again")
    path = await download_link(client, staff, stored["id"])

    first = await client.get(path)
    second = await client.get(path)

    assert first.status_code == 200
    assert second.status_code == 200


async def test_tampered_token_rejected(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"secret")
    path = await download_link(client, staff, stored["id"])
    prefix, token = path.rsplit("/", 1)

    for index in (0, len(token) // 2, len(token) - 1):
        replacement = "A" if token[index] != "A" else "B"
        changed = token[:index] + replacement + token[index + 1 :]
        response = await client.get(f"{prefix}/{changed}")
        assert_rejected(response, 403, "link_tampered")


async def test_deeply_nested_token_rejected(client: httpx.AsyncClient) -> None:
    # A payload nested deeper than Python's JSON parser goes, within the token size limit.
    payload = base64.urlsafe_b64encode(b"[" * 2800 + b"]" * 2800).decode().rstrip("=")

    response = await client.get(f"/storage/links/{payload}.c2lnbmF0dXJl")

    assert_rejected(response, 403, "link_tampered")


async def test_link_for_other_object_rejected(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    first = await upload(client, staff, bucket_id, "a.txt", b"first")
    second = await upload(client, staff, bucket_id, "b.txt", b"second")
    path = await download_link(client, staff, first["id"])
    prefix, token = path.rsplit("/", 1)
    claims, _signature = decode_token(token)
    # The first link's signature with a payload naming the second object.
    other = dataclasses.replace(claims, object_id=uuid.UUID(second["id"]))
    payload = encode_token(b"x" * 32, other).partition(".")[0]
    forged = f"{payload}.{token.partition('.')[2]}"

    response = await client.get(f"{prefix}/{forged}")

    assert_rejected(response, 403, "link_tampered")


async def test_expired_link_rejected(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, clock: FrozenClock
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"soon gone")
    path = await download_link(client, staff, stored["id"], expires_in=60)

    clock.advance(seconds=61)
    response = await client.get(path)

    assert_rejected(response, 403, "link_expired")


async def test_rotation_revokes_links(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"rotate")
    old_download = await download_link(client, staff, stored["id"])
    old_upload = await upload_link(client, staff, bucket_id)

    rotated = await client.post("/api/v1/storage/signing-keys/rotate", headers=staff.headers)

    assert rotated.status_code == 200, rotated.text
    assert_rejected(await client.get(old_download), 403, "link_revoked")
    assert_rejected(await client.put(old_upload, content=b"x"), 403, "link_revoked")
    new_download = await download_link(client, staff, stored["id"])
    assert (await client.get(new_download)).status_code == 200


async def test_rotation_needs_admin(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff
) -> None:
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    admin = await member(client, runtime, staff.workspace_id, role="admin")

    as_agent = await client.post("/api/v1/storage/signing-keys/rotate", headers=agent.headers)
    as_admin = await client.post("/api/v1/storage/signing-keys/rotate", headers=admin.headers)

    assert_rejected(as_agent, 403, "forbidden")
    assert as_admin.status_code == 200


async def test_agent_creates_links(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    stored = await upload(client, staff, bucket_id, "a.txt", b"agent")

    path = await download_link(client, agent, stored["id"])
    upload_path = await upload_link(client, agent, bucket_id)

    assert (await client.get(path)).status_code == 200
    assert upload_path.startswith("/storage/links/")


async def test_other_workspace_object_404(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"mine")
    stranger = await owner(client)

    link = await client.post(
        f"/api/v1/storage/objects/{stored['id']}/links",
        headers=stranger.headers,
        json={"expires_in": 600},
    )
    upload_to = await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/upload-links",
        headers=stranger.headers,
        json={"key": "x.txt"},
    )

    assert_rejected(link, 404, "not_found")
    assert_rejected(upload_to, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in": 59}, "expires_in"),
        ({"expires_in": 7 * 24 * 3600 + 1}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"lifetime": 60}, "lifetime"),
    ],
)
async def test_download_link_invalid_input(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, body: dict[str, Any], field: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"x")

    response = await client.post(
        f"/api/v1/storage/objects/{stored['id']}/links", headers=staff.headers, json=body
    )

    assert_rejected(response, 422, "validation_failed")
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "../etc/passwd"}, "key"),
        ({"key": ""}, "key"),
        ({"key": "a.txt", "max_bytes": 0}, "max_bytes"),
        ({"key": "a.txt", "max_bytes": 10**12}, "max_bytes"),
        ({"key": "a.txt", "content_types": ["not a type"]}, "content_types.0"),
        ({"key": "a.txt", "expires_in": 30}, "expires_in"),
    ],
)
async def test_upload_link_invalid_input(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/upload-links", headers=staff.headers, json=body
    )

    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_upload_link_type_outside_bucket(client: httpx.AsyncClient, staff: Staff) -> None:
    images = await make_bucket(client, staff, allowed_content_types=["image/*"])

    response = await client.post(
        f"/api/v1/storage/buckets/{images}/upload-links",
        headers=staff.headers,
        json={"key": "a.pdf", "content_types": ["application/pdf"]},
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "content_types.0"


async def test_upload_link_stores_object(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id, key="inbox/scan.png")

    response = await client.put(path, content=PNG, headers={"Content-Type": "image/png"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"] == "inbox/scan.png"
    assert body["content_type"] == "image/png"
    assert body["size"] == len(PNG)
    assert body["status"] == "available"
    async with runtime.sessionmaker() as session:
        stored = await session.get(StoredObject, uuid.UUID(body["id"]))
    assert stored is not None
    assert stored.workspace_id == staff.workspace_id
    assert stored.owner_id is None


async def test_upload_link_replay_rejected(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id)
    first = await client.put(path, content=b"once")

    second = await client.put(path, content=b"twice")

    assert first.status_code == 201, first.text
    assert_rejected(second, 403, "link_used")


async def test_upload_link_to_taken_key(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    first = await upload_link(client, staff, bucket_id, key="inbox/taken.txt")
    second = await upload_link(client, staff, bucket_id, key="inbox/taken.txt")
    stored = await client.put(first, content=b"first")

    response = await client.put(second, content=b"second")

    assert stored.status_code == 201, stored.text
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "key_exists"
    assert "overwrite" not in response.json()["detail"]
    assert "new link" in response.json()["detail"]


async def test_upload_link_over_max_size(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id, max_bytes=10)

    too_big = await client.put(path, content=b"x" * 11)
    fits = await client.put(path, content=b"x" * 10)

    assert_rejected(too_big, 413, "object_too_large")
    # The failed upload did not use the link up.
    assert fits.status_code == 201, fits.text


async def test_upload_link_large_stream(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id, max_bytes=20_000)

    response = await client.put(path, content=b"y" * 30_000)

    assert_rejected(response, 413, "object_too_large")
    async with runtime.sessionmaker() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(StoredObject))
    assert count == 0


async def test_upload_link_wrong_type(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id, content_types=["image/png"])

    response = await client.put(path, content=b"plain text, not an image")

    assert_rejected(response, 415, "unsupported_media_type")
    async with runtime.sessionmaker() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(StoredObject))
    assert count == 0


async def test_upload_link_as_download_rejected(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"x")
    download = await download_link(client, staff, stored["id"])
    upload_path = await upload_link(client, staff, bucket_id)

    assert_rejected(await client.get(upload_path), 403, "link_tampered")
    assert_rejected(await client.put(download, content=b"x"), 403, "link_tampered")


async def test_deleted_object_link_404(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.txt", b"x")
    path = await download_link(client, staff, stored["id"])
    deleted = await client.delete(f"/api/v1/storage/objects/{stored['id']}", headers=staff.headers)

    response = await client.get(path)

    assert deleted.status_code == 204
    assert_rejected(response, 404, "not_found")
