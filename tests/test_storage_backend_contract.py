"""The contract of the storage backend port, run against every backend."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from frontdesk.storage.backends.base import BlobNotFound, BlobTooLarge, StorageBackend
from frontdesk.storage.backends.local import LocalBackend

DATA = bytes(range(256)) * 1000  # 256,000 bytes, more than one read chunk


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def chunks(data: bytes, size: int = 10_000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def new_path() -> str:
    return f"{uuid.uuid4()}/{uuid.uuid4()}"


async def read_all(backend: StorageBackend, path: str, **kwargs: int | None) -> bytes:
    return b"".join([chunk async for chunk in backend.read(path, **kwargs)])


async def all_paths(backend: StorageBackend, prefix: str = "") -> list[str]:
    return [path async for path in backend.list_paths(prefix)]


async def test_write_read_round_trip(storage_backend: StorageBackend) -> None:
    path = new_path()
    written = await storage_backend.write(
        path, stream(chunks(DATA)), max_bytes=len(DATA), content_type="application/octet-stream"
    )
    assert written.size == len(DATA)
    assert written.sha256 == hashlib.sha256(DATA).hexdigest()
    assert await read_all(storage_backend, path) == DATA
    assert await storage_backend.size(path) == len(DATA)


async def test_empty_blob(storage_backend: StorageBackend) -> None:
    path = new_path()
    written = await storage_backend.write(path, stream([]), max_bytes=10, content_type="text/plain")
    assert written.size == 0
    assert await read_all(storage_backend, path) == b""


@pytest.mark.parametrize(
    ("start", "end"), [(0, 0), (5, 9), (70_000, 200_000), (255_990, None), (0, None)]
)
async def test_read_range(storage_backend: StorageBackend, start: int, end: int | None) -> None:
    path = new_path()
    await storage_backend.write(path, stream([DATA]), max_bytes=len(DATA), content_type="x/y")
    expected = DATA[start : None if end is None else end + 1]
    assert await read_all(storage_backend, path, start=start, end=end) == expected


async def test_too_large_leaves_nothing(storage_backend: StorageBackend) -> None:
    path = new_path()
    with pytest.raises(BlobTooLarge):
        await storage_backend.write(
            path, stream(chunks(DATA)), max_bytes=len(DATA) - 1, content_type="x/y"
        )
    assert await all_paths(storage_backend) == []
    with pytest.raises(BlobNotFound):
        await storage_backend.size(path)


async def test_failing_stream_leaves_nothing(storage_backend: StorageBackend) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield DATA[:50_000]
        raise ConnectionResetError("client went away")

    path = new_path()
    with pytest.raises(ConnectionResetError):
        await storage_backend.write(path, broken(), max_bytes=len(DATA), content_type="x/y")
    assert await all_paths(storage_backend) == []
    with pytest.raises(BlobNotFound):
        await storage_backend.size(path)


async def test_overwrite_replaces(storage_backend: StorageBackend) -> None:
    path = new_path()
    await storage_backend.write(path, stream([b"first"]), max_bytes=100, content_type="x/y")
    await storage_backend.write(path, stream([b"second"]), max_bytes=100, content_type="x/y")
    assert await read_all(storage_backend, path) == b"second"


async def test_delete(storage_backend: StorageBackend) -> None:
    path = new_path()
    await storage_backend.write(path, stream([b"abc"]), max_bytes=100, content_type="x/y")
    await storage_backend.delete(path)
    with pytest.raises(BlobNotFound):
        await storage_backend.size(path)
    await storage_backend.delete(path)
    await storage_backend.delete(new_path())


async def test_missing_blob(storage_backend: StorageBackend) -> None:
    path = new_path()
    with pytest.raises(BlobNotFound):
        await storage_backend.size(path)
    with pytest.raises(BlobNotFound):
        await read_all(storage_backend, path)
    with pytest.raises(BlobNotFound):
        await storage_backend.copy(path, new_path())


async def test_copy(storage_backend: StorageBackend) -> None:
    source, destination = new_path(), new_path()
    await storage_backend.write(source, stream([DATA]), max_bytes=len(DATA), content_type="x/y")
    await storage_backend.copy(source, destination)
    await storage_backend.delete(source)
    assert await read_all(storage_backend, destination) == DATA


async def test_list_paths(storage_backend: StorageBackend) -> None:
    workspace_a, workspace_b = str(uuid.uuid4()), str(uuid.uuid4())
    paths = sorted([f"{workspace_a}/{uuid.uuid4()}", f"{workspace_a}/{uuid.uuid4()}"])
    other = f"{workspace_b}/{uuid.uuid4()}"
    for path in [*paths, other]:
        await storage_backend.write(path, stream([b"x"]), max_bytes=10, content_type="x/y")
    assert sorted(await all_paths(storage_backend, f"{workspace_a}/")) == paths
    assert sorted(await all_paths(storage_backend)) == sorted([*paths, other])


async def test_local_rejects_escaping_paths(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "files")
    for path in ["../outside", "a/../../b", "/etc/passwd", ".tmp/x", "a//b", ""]:
        with pytest.raises(ValueError, match="invalid blob path"):
            await backend.write(path, stream([b"x"]), max_bytes=10, content_type="x/y")
    assert list(tmp_path.rglob("*")) == []


async def test_local_sweeps_old_temp_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "files")
    temp_dir = tmp_path / "files" / ".tmp"
    temp_dir.mkdir(parents=True)
    old, fresh = temp_dir / "old", temp_dir / "fresh"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(old, (1_000_000, 1_000_000))
    assert await backend.sweep_temp_files(older_than_seconds=3600) == 1
    assert not old.exists()
    assert fresh.exists()
