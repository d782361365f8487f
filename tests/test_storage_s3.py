"""The S3 backend against moto's S3 server: multipart uploads, aborts, copies, presigned URLs.

The port's general contract runs on this backend in test_storage_backend_contract.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import make_settings
from frontdesk.storage.backends import build_backend
from frontdesk.storage.backends.base import BlobNotFound, BlobTooLarge, StorageUnavailable
from frontdesk.storage.backends.s3 import S3Backend
from s3_server import BUCKET, s3_backend, s3_settings, sync_client

__all__ = ["s3_backend", "s3_settings"]

MIB = 1024 * 1024


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def chunks(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def new_path() -> str:
    return f"{uuid.uuid4()}/{uuid.uuid4()}"


async def read_all(backend: S3Backend, path: str, **kwargs: int | None) -> bytes:
    return b"".join([chunk async for chunk in backend.read(path, **kwargs)])


def pending_uploads(settings: dict[str, Any]) -> list[Any]:
    uploads: list[Any] = (
        sync_client(settings).list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    )
    return uploads


def object_keys(settings: dict[str, Any]) -> list[str]:
    listed = sync_client(settings).list_objects_v2(Bucket=BUCKET)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
async def backend(s3_backend: S3Backend) -> AsyncIterator[S3Backend]:
    yield s3_backend
    await s3_backend.close()


@pytest.fixture
async def small_parts(
    s3_backend: S3Backend, s3_settings: dict[str, Any], tmp_path: Path
) -> AsyncIterator[S3Backend]:
    """A backend with 5 MiB parts, copying in parts above 5 MiB, listing 3 keys a page.

    It takes ``s3_backend`` only so that the bucket is emptied after the test.
    """
    settings = make_settings(
        "sqlite+aiosqlite://", tmp_path, **s3_settings, s3_multipart_part_bytes=5 * MIB
    )
    custom = S3Backend(settings, list_page_size=3, max_single_copy_bytes=5 * MIB)
    yield custom
    await custom.close()
    await s3_backend.close()


async def test_factory_builds_s3(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    built = build_backend(make_settings("sqlite+aiosqlite://", tmp_path, **s3_settings))
    assert isinstance(built, S3Backend)
    await built.close()


async def test_small_write_is_one_put(backend: S3Backend, s3_settings: dict[str, Any]) -> None:
    path = new_path()
    data = os.urandom(300_000)
    written = await backend.write(path, stream(chunks(data)), max_bytes=MIB, content_type="a/b")
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    head = sync_client(s3_settings).head_object(Bucket=BUCKET, Key=path)
    assert "-" not in head["ETag"]
    assert head["ContentType"] == "a/b"
    assert await read_all(backend, path) == data


async def test_large_write_is_multipart(
    small_parts: S3Backend, s3_settings: dict[str, Any]
) -> None:
    path = new_path()
    data = os.urandom(12 * MIB)
    written = await small_parts.write(
        path, stream(chunks(data)), max_bytes=20 * MIB, content_type="video/mp4"
    )
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    head = sync_client(s3_settings).head_object(Bucket=BUCKET, Key=path)
    # A multipart object's ETag ends in "-<number of parts>": 5 + 5 + 2 MiB.
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "video/mp4"
    assert await read_all(small_parts, path) == data
    assert (
        await read_all(small_parts, path, start=5 * MIB - 3, end=5 * MIB + 2)
        == (data[5 * MIB - 3 : 5 * MIB + 3])
    )
    assert pending_uploads(s3_settings) == []


async def test_exactly_one_part_is_one_put(
    small_parts: S3Backend, s3_settings: dict[str, Any]
) -> None:
    path = new_path()
    data = os.urandom(5 * MIB)
    await small_parts.write(path, stream(chunks(data)), max_bytes=5 * MIB, content_type="a/b")
    head = sync_client(s3_settings).head_object(Bucket=BUCKET, Key=path)
    assert "-" not in head["ETag"]
    assert await read_all(small_parts, path) == data


async def test_too_large_aborts_upload(small_parts: S3Backend, s3_settings: dict[str, Any]) -> None:
    path = new_path()
    data = os.urandom(12 * MIB)
    with pytest.raises(BlobTooLarge):
        await small_parts.write(path, stream(chunks(data)), max_bytes=11 * MIB, content_type="a/b")
    assert object_keys(s3_settings) == []
    assert pending_uploads(s3_settings) == []


async def test_failing_stream_aborts_upload(
    small_parts: S3Backend, s3_settings: dict[str, Any]
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        for chunk in chunks(os.urandom(11 * MIB)):
            yield chunk
        raise ConnectionResetError("client went away")

    path = new_path()
    with pytest.raises(ConnectionResetError):
        await small_parts.write(path, broken(), max_bytes=20 * MIB, content_type="a/b")
    assert object_keys(s3_settings) == []
    assert pending_uploads(s3_settings) == []
    with pytest.raises(BlobNotFound):
        await small_parts.size(path)


async def test_copy_in_parts(small_parts: S3Backend, s3_settings: dict[str, Any]) -> None:
    source, destination = new_path(), new_path()
    data = os.urandom(12 * MIB)
    await small_parts.write(
        source, stream(chunks(data)), max_bytes=20 * MIB, content_type="text/csv"
    )
    await small_parts.copy(source, destination)
    head = sync_client(s3_settings).head_object(Bucket=BUCKET, Key=destination)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "text/csv"
    assert await read_all(small_parts, destination) == data
    assert pending_uploads(s3_settings) == []


async def test_copy_keeps_content_type(backend: S3Backend, s3_settings: dict[str, Any]) -> None:
    source, destination = new_path(), new_path()
    await backend.write(source, stream([b"a,b\n"]), max_bytes=100, content_type="text/csv")
    await backend.copy(source, destination)
    head = sync_client(s3_settings).head_object(Bucket=BUCKET, Key=destination)
    assert head["ContentType"] == "text/csv"
    assert await read_all(backend, destination) == b"a,b\n"


async def test_list_paths_pages(small_parts: S3Backend) -> None:
    prefix = f"{uuid.uuid4()}/"
    paths = sorted(f"{prefix}{uuid.uuid4()}" for _ in range(8))
    for path in [*paths, new_path()]:
        await small_parts.write(path, stream([b"x"]), max_bytes=10, content_type="a/b")
    listed = [path async for path in small_parts.list_paths(prefix)]
    assert sorted(listed) == paths
    everything = [path async for path in small_parts.list_paths()]
    assert len(everything) == 9


async def test_presigned_download(backend: S3Backend) -> None:
    path = new_path()
    await backend.write(path, stream([b"hello"]), max_bytes=10, content_type="a/b")
    url = await backend.presigned_download_url(
        path, expires_in=300, filename="Rapport d'été.pdf", content_type="application/pdf"
    )
    assert urlsplit(url).hostname == "127.0.0.1"
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Rapport d\'_t_.pdf"')
    assert "filename*=UTF-8''Rapport%20d%27%C3%A9t%C3%A9.pdf" in disposition


async def test_presigned_upload(backend: S3Backend) -> None:
    path = new_path()
    url = await backend.presigned_upload_url(path, expires_in=300, content_type="image/png")
    assert urlsplit(url).hostname == "127.0.0.1"
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert "content-type" in query["X-Amz-SignedHeaders"][0].split(";")
    async with httpx.AsyncClient() as http:
        response = await http.put(url, content=b"\x89PNG", headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert await read_all(backend, path) == b"\x89PNG"
    assert await backend.size(path) == 4


async def test_presigned_expiry_checked(backend: S3Backend) -> None:
    for expires_in in [0, 7 * 24 * 3600 + 1]:
        with pytest.raises(ValueError, match="expires_in"):
            await backend.presigned_upload_url(
                new_path(), expires_in=expires_in, content_type="a/b"
            )


def test_settings_checked(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"s3_bucket": None}, "FRONTDESK_S3_BUCKET"),
        ({"s3_secret_access_key": None}, "both"),
        ({"s3_multipart_part_bytes": 5 * MIB - 1}, "FRONTDESK_S3_MULTIPART_PART_BYTES"),
    ]
    for overrides, message in cases:
        settings = make_settings("sqlite+aiosqlite://", tmp_path, **{**s3_settings, **overrides})
        with pytest.raises(ValueError, match=message):
            S3Backend(settings)


async def test_cancelled_write_aborts_upload(
    small_parts: S3Backend, s3_settings: dict[str, Any]
) -> None:
    first_part_sent = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        for chunk in chunks(os.urandom(6 * MIB)):
            yield chunk
        first_part_sent.set()
        await asyncio.Event().wait()
        yield b"never"

    write = asyncio.create_task(
        small_parts.write(new_path(), stalled(), max_bytes=20 * MIB, content_type="a/b")
    )
    await asyncio.wait_for(first_part_sent.wait(), timeout=30)
    assert len(pending_uploads(s3_settings)) == 1
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert pending_uploads(s3_settings) == []
    assert object_keys(s3_settings) == []


async def test_missing_bucket_reported(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    settings = make_settings(
        "sqlite+aiosqlite://", tmp_path, **{**s3_settings, "s3_bucket": "no-such-bucket"}
    )
    backend = S3Backend(settings)
    try:
        with pytest.raises(StorageUnavailable, match="no-such-bucket"):
            await backend.check_ready()
        with pytest.raises(StorageUnavailable) as raised:
            await backend.write(new_path(), stream([b"data"]), max_bytes=10, content_type="a/b")
        assert raised.value.status == 503
        assert "NoSuchBucket" in raised.value.detail
    finally:
        await backend.close()
