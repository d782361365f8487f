"""Virus scanning with clamd: the INSTREAM client.

The INSTREAM exchange: send ``zINSTREAM\\0``, then the data as chunks, each
prefixed by its length as a 4-byte unsigned big-endian integer, then a chunk of length zero.
clamd replies ``stream: OK``, ``stream: <signature> FOUND`` or a line ending in ``ERROR``
(for example when the stream exceeds its StreamMaxLength), terminated by NUL because the
command began with ``z``.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterable
from dataclasses import dataclass

import structlog

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
