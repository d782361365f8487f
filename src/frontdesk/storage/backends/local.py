"""The local-disk backend: one file per blob under the storage folder.

Layout: ``{root}/{workspace_id}/{object_id}`` for blobs and ``{root}/.tmp/{uuid}`` for writes
in progress. A write goes to a temporary file, is fsynced and then renamed into place with
``os.replace``, which is atomic on one file system, so a crash never leaves a partial blob at
a blob path. File I/O runs in worker threads to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

import structlog

from frontdesk.storage.backends.base import BlobNotFound, BlobTooLarge, WrittenBlob

log = structlog.get_logger()

TEMP_DIR = ".tmp"
READ_CHUNK_BYTES = 1024 * 1024
WRITE_BLOCK_BYTES = 1024 * 1024


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _resolve(self, path: str) -> Path:
        """Map an internal path to a file under the root, rejecting anything that escapes it.

        The service builds paths from ids only, so a rejected path is a programming error.
        """
        parts = path.split("/")
        if not path or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            raise ValueError(f"invalid blob path: {path!r}")
        return self.root.joinpath(*parts)

    def _temp_dir(self) -> Path:
        return self.root / TEMP_DIR

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, max_bytes: int, content_type: str
    ) -> WrittenBlob:
        target = self._resolve(path)
        temp_dir = self._temp_dir()
        await asyncio.to_thread(temp_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        temp = temp_dir / uuid.uuid4().hex
        handle: BinaryIO = await asyncio.to_thread(open, temp, "xb")
        digest = hashlib.sha256()
        size = 0
        # Chunks are gathered into blocks of WRITE_BLOCK_BYTES. A worker thread hashes and
        # writes one block while the event loop receives the next, so disk and network overlap.
        block = bytearray()
        in_flight: asyncio.Future[None] | None = None
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"the stream is larger than {max_bytes} bytes")
                    block += chunk
                    if len(block) >= WRITE_BLOCK_BYTES:
                        if in_flight is not None:
                            await in_flight
                        in_flight = asyncio.ensure_future(
                            asyncio.to_thread(_hash_and_write, digest, handle, bytes(block))
                        )
                        block.clear()
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                await asyncio.to_thread(_hash_and_write, digest, handle, bytes(block))
                await asyncio.to_thread(_flush_and_sync, handle)
            finally:
                if in_flight is not None:
                    # The handle stays open until the thread that writes to it is done.
                    await asyncio.shield(asyncio.wait([in_flight]))
                    if not in_flight.cancelled():
                        in_flight.exception()  # Marks the thread's error as seen; the first error propagates.
                await asyncio.shield(asyncio.to_thread(handle.close))
            await asyncio.to_thread(_move_into_place, temp, target)
        except BaseException:
            # Cancellation (a client that disconnects) lands here too, so the temporary
            # file goes whatever stopped the write.
            await asyncio.shield(asyncio.to_thread(_unlink_quietly, temp))
            raise
        return WrittenBlob(size=size, sha256=digest.hexdigest())

    async def read(
        self, path: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        target = self._resolve(path)
        try:
            handle: BinaryIO = await asyncio.to_thread(open, target, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(path) from exc
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                want = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def size(self, path: str) -> int:
        target = self._resolve(path)
        try:
            stat = await asyncio.to_thread(target.stat)
        except FileNotFoundError as exc:
            raise BlobNotFound(path) from exc
        return stat.st_size

    async def delete(self, path: str) -> None:
        await asyncio.to_thread(_unlink_quietly, self._resolve(path))

    async def copy(self, source: str, destination: str) -> None:
        source_file = self._resolve(source)
        target = self._resolve(destination)
        temp_dir = self._temp_dir()
        await asyncio.to_thread(temp_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        temp = temp_dir / uuid.uuid4().hex
        try:
            await asyncio.to_thread(_copy_synced, source_file, temp)
            await asyncio.to_thread(_move_into_place, temp, target)
        except FileNotFoundError as exc:
            await asyncio.to_thread(_unlink_quietly, temp)
            raise BlobNotFound(source) from exc
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_unlink_quietly, temp))
            raise

    async def list_paths(self, prefix: str = "") -> AsyncIterator[str]:
        paths = await asyncio.to_thread(self._walk)
        for path in paths:
            if path.startswith(prefix):
                yield path

    def _walk(self) -> list[str]:
        paths: list[str] = []
        if not self.root.is_dir():
            return paths
        for directory in sorted(self.root.iterdir()):
            if directory.name.startswith(".") or not directory.is_dir():
                continue
            for file in sorted(directory.iterdir()):
                if file.is_file():
                    paths.append(f"{directory.name}/{file.name}")
        return paths

    async def sweep_temp_files(self, *, older_than_seconds: float) -> int:
        """Delete writes in progress older than the age; return how many were deleted.

        A temporary file survives only a crash during a write, because every other stop
        deletes it.
        """
        return await asyncio.to_thread(self._sweep, older_than_seconds)

    def _sweep(self, older_than_seconds: float) -> int:
        temp_dir = self._temp_dir()
        if not temp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for file in temp_dir.iterdir():
            try:
                if file.stat().st_mtime < cutoff:
                    file.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            log.info("storage.temp_files_swept", count=removed)
        return removed

    async def close(self) -> None:
        return None


def _hash_and_write(digest: hashlib._Hash, handle: BinaryIO, block: bytes) -> None:
    digest.update(block)
    handle.write(block)


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _move_into_place(temp: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.replace(temp, target)
    # Sync the folder so that the rename itself survives a power loss.
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _copy_synced(source: Path, temp: Path) -> None:
    with open(source, "rb") as reader, open(temp, "xb") as writer:
        shutil.copyfileobj(reader, writer, READ_CHUNK_BYTES)
        writer.flush()
        os.fsync(writer.fileno())


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
