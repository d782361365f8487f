"""Virus scanning with clamd: the INSTREAM client, the quarantine and the ``storage.scan`` job.

The INSTREAM exchange: send ``zINSTREAM\\0``, then the data as chunks, each
prefixed by its length as a 4-byte unsigned big-endian integer, then a chunk of length zero.
clamd replies ``stream: OK``, ``stream: <signature> FOUND`` or a line ending in ``ERROR``
(for example when the stream exceeds its StreamMaxLength), terminated by NUL because the
command began with ``z``.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.config import Settings
from frontdesk.core.db import Base
from frontdesk.core.errors import Conflict, ProblemError
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.models import StoredObject
from frontdesk.storage.service import DELETE_BLOB_JOB, blob_path

log = structlog.get_logger()

# Bytes per INSTREAM chunk. A stream longer than clamd's StreamMaxLength gets an ERROR reply.
CHUNK_BYTES = 64 * 1024
# An INSTREAM or PING reply is one short line, so a longer one is not from clamd.
_MAX_REPLY_BYTES = 4096


class ScannerUnavailable(Exception):
    """clamd was unreachable, timed out or replied ERROR, so a later scan may succeed."""


@dataclass(frozen=True)
class ScanResult:
    clean: bool
    # The name of the signature that matched, for an infected stream.
    signature: str | None = None


def parse_reply(reply: str) -> ScanResult:
    """Interpret an INSTREAM reply; raises ScannerUnavailable for ERROR or anything unknown."""
    text = reply.strip().rstrip("\0").strip()
    if text.endswith("ERROR"):
        raise ScannerUnavailable(f"clamd returned an error: {text[:200]}")
    if text == "stream: OK":
        return ScanResult(clean=True)
    if text.startswith("stream: ") and text.endswith(" FOUND"):
        signature = text[len("stream: ") : -len(" FOUND")].strip()
        return ScanResult(clean=False, signature=signature or "unknown")
    raise ScannerUnavailable(f"clamd returned an unexpected reply: {text[:200]!r}")


class ClamdClient:
    """Talks to one clamd over TCP; every call opens its own connection."""

    def __init__(self, host: str, port: int, *, timeout_seconds: float) -> None:
        self.host = host
        self.port = port
        self.timeout_seconds = timeout_seconds

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_seconds
            )
        except (OSError, TimeoutError) as exc:
            raise ScannerUnavailable(
                f"cannot connect to clamd at {self.host}:{self.port}: {exc!r}"
            ) from exc

    async def _read_reply(self, reader: asyncio.StreamReader) -> str:
        try:
            reply = await reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as exc:
            raise ScannerUnavailable("clamd closed the connection without a reply") from exc
        except asyncio.LimitOverrunError as exc:
            raise ScannerUnavailable("clamd sent an over-long reply") from exc
        if len(reply) > _MAX_REPLY_BYTES:
            raise ScannerUnavailable("clamd sent an over-long reply")
        return reply[:-1].decode("utf-8", errors="replace")

    async def ping(self) -> bool:
        """Return whether clamd replies PONG to PING."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                reader, writer = await self._connect()
                try:
                    writer.write(b"zPING\0")
                    await writer.drain()
                    return (await self._read_reply(reader)) == "PONG"
                finally:
                    writer.close()
        except (ScannerUnavailable, OSError, TimeoutError):
            return False

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        """Stream ``chunks`` to clamd with INSTREAM and return its verdict.

        The whole exchange, reading the source included, must end within the timeout.
        Raises ScannerUnavailable on connection failures, timeouts and ERROR replies.
        """
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._scan(chunks)
        except TimeoutError as exc:
            raise ScannerUnavailable(
                f"the clamd scan timed out after {self.timeout_seconds} seconds"
            ) from exc

    async def _scan(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        reader, writer = await self._connect()
        try:
            writer.write(b"zINSTREAM\0")
            async for chunk in chunks:
                for start in range(0, len(chunk), CHUNK_BYTES):
                    piece = chunk[start : start + CHUNK_BYTES]
                    writer.write(struct.pack(">I", len(piece)) + piece)
                    await writer.drain()
            writer.write(struct.pack(">I", 0))
            await writer.drain()
            return parse_reply(await self._read_reply(reader))
        except ConnectionError as exc:
            # clamd closes the socket after a size-limit ERROR, which can break the write
            # before the reply is read.
            raise ScannerUnavailable(f"the connection to clamd failed: {exc!r}") from exc
        finally:
            writer.close()


# --- Quarantine and the scan job ---------------------------------------------------------------

SCAN_JOB = "storage.scan"
QUARANTINED = "quarantined"
AVAILABLE = "available"
INFECTED = "infected"


class ObjectScan(Base):
    """The scan state of an object uploaded by the public while scanning is on.

    Objects without a row (staff uploads, uploads while scanning was off) are available.
    """

    __tablename__ = "storage_object_scans"

    object_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("storage_objects.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    # quarantined, available or infected.
    status: Mapped[str] = mapped_column(sa.String(20))
    # The clamd signature name of an infected object.
    signature: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column()
    scanned_at: Mapped[datetime | None] = mapped_column()


class Locked(ProblemError):
    status = 423
    code = "locked"
    title = "Locked"


def scanning_enabled(settings: Settings) -> bool:
    return bool(settings.clamd_host)


def clamd_client(settings: Settings) -> ClamdClient:
    assert settings.clamd_host is not None
    return ClamdClient(
        settings.clamd_host, settings.clamd_port, timeout_seconds=settings.clamd_timeout_seconds
    )


async def quarantine(uow: UnitOfWork, stored: StoredObject) -> str:
    """Hold a public upload until clamd has scanned it; returns the object's scan status.

    Without ``clamd_host`` the object is available at once and nothing is recorded.
    """
    if not scanning_enabled(uow.settings):
        return AVAILABLE
    uow.session.add(
        ObjectScan(
            object_id=stored.id,
            workspace_id=stored.workspace_id,
            status=QUARANTINED,
            signature=None,
            created_at=uow.now(),
            scanned_at=None,
        )
    )
    await uow.session.flush()
    uow.enqueue(SCAN_JOB, {"object_id": str(stored.id)}, workspace_id=stored.workspace_id)
    log.info("storage.object_quarantined", object_id=str(stored.id))
    return QUARANTINED


async def scan_status(uow: UnitOfWork, object_id: uuid.UUID) -> ObjectScan | None:
    return await uow.session.get(ObjectScan, object_id)


async def ensure_downloadable(uow: UnitOfWork, stored: StoredObject) -> None:
    """Raise unless the object's bytes may be served: not quarantined and not infected."""
    scan = await scan_status(uow, stored.id)
    if scan is None or scan.status == AVAILABLE:
        return
    if scan.status == QUARANTINED:
        raise Locked(
            "The file is being scanned for viruses; try again in a minute.",
            code="object_quarantined",
            headers={"Retry-After": "30"},
        )
    raise Conflict(
        "The file was rejected because the virus scanner found malware in it; it cannot be "
        "downloaded.",
        code="object_infected",
    )


@job_handler(SCAN_JOB)
async def scan_object(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Stream a quarantined object's blob to clamd and record the verdict.

    The blob is read and scanned before this job's transaction writes anything, so on SQLite
    the write lock is not held while clamd works. ScannerUnavailable propagates, so the worker
    retries with backoff.
    """
    object_id = uuid.UUID(payload["object_id"])
    async with uow.rt.read_sessionmaker() as session:
        scan = await session.get(ObjectScan, object_id)
        if scan is None or scan.status != QUARANTINED:
            return
        path = blob_path(scan.workspace_id, object_id)
    if not scanning_enabled(uow.settings):
        raise ScannerUnavailable("clamd_host is not set, so the quarantined object waits")
    try:
        result = await clamd_client(uow.settings).scan(uow.rt.storage.read(path))
    except ScannerUnavailable as exc:
        log.warning("storage.scan_failed", object_id=str(object_id), error=str(exc))
        raise
    except BlobNotFound:
        # The object was deleted while the job waited; its row and scan row are gone too.
        log.info("storage.scan_skipped", object_id=str(object_id), reason="blob_missing")
        return

    scan = await uow.session.get(ObjectScan, object_id, with_for_update=True)
    if scan is None or scan.status != QUARANTINED:
        return
    scan.scanned_at = uow.now()
    if result.clean:
        scan.status = AVAILABLE
        log.info("storage.object_scanned", object_id=str(object_id), status=AVAILABLE)
        return
    scan.status = INFECTED
    scan.signature = (result.signature or "unknown")[:200]
    # The blob goes once this transaction commits; the row stays so that the uploader and the
    # staff see why the file is gone.
    uow.enqueue(DELETE_BLOB_JOB, {"path": path}, workspace_id=scan.workspace_id)
    uow.record_event(
        "storage.object.infected",
        {"object_id": str(object_id), "signature": scan.signature},
        workspace_id=scan.workspace_id,
    )
    log.warning(
        "storage.object_infected",
        object_id=str(object_id),
        workspace_id=str(scan.workspace_id),
        signature=scan.signature,
    )
