"""A fake clamd for tests: an asyncio TCP server on 127.0.0.1 that speaks clamd's protocol.

It implements PING and INSTREAM with the ``z`` (NUL-terminated) and ``n`` (newline-terminated)
command prefixes. INSTREAM reads chunks framed by a 4-byte big-endian length until a zero
length, then replies ``stream: Eicar-Signature FOUND`` when the data contains the EICAR test
string and ``stream: OK`` otherwise. ``mode`` switches the answer to an ERROR reply or to a
dropped connection; ``stop()`` and ``start()`` keep the port, to test an outage.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Eicar-Signature"
# Like clamd's StreamMaxLength, a longer stream gets an ERROR reply and the connection closes.
STREAM_MAX_BYTES = 25 * 1024 * 1024

Mode = Literal["normal", "error", "drop"]


class FakeClamd:
    def __init__(self) -> None:
        self.mode: Mode = "normal"
        self.port = 0
        self.scanned: list[bytes] = []
        self.commands: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=listener)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def settings(self) -> dict[str, Any]:
        return {"clamd_host": "127.0.0.1", "clamd_port": self.port, "clamd_timeout_seconds": 5}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        prefix = await reader.readexactly(1)
        if prefix == b"z":
            terminator = b"\0"
        elif prefix == b"n":
            terminator = b"\n"
        else:
            writer.write(b"UNKNOWN COMMAND\n")
            return
        command = (await reader.readuntil(terminator))[:-1].decode()
        self.commands.append(command)
        if command == "PING":
            writer.write(b"PONG" + terminator)
        elif command == "INSTREAM":
            reply = await self._instream(reader)
            if reply is None:
                return
            writer.write(reply.encode() + terminator)
        else:
            writer.write(b"UNKNOWN COMMAND" + terminator)
        await writer.drain()

    async def _instream(self, reader: asyncio.StreamReader) -> str | None:
        data = bytearray()
        while True:
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            if length == 0:
                break
            data += await reader.readexactly(length)
            if len(data) > STREAM_MAX_BYTES:
                return "INSTREAM size limit exceeded. ERROR"
        if self.mode == "drop":
            return None
        if self.mode == "error":
            return "stream: Can't allocate memory ERROR"
        self.scanned.append(bytes(data))
        if EICAR in data:
            return f"stream: {SIGNATURE} FOUND"
        return "stream: OK"


@pytest.fixture
async def clamd() -> AsyncIterator[FakeClamd]:
    server = FakeClamd()
    await server.start()
    yield server
    await server.stop()
