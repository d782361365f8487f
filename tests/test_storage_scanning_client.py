"""The clamd INSTREAM client against the fake clamd of tests/clamd_server.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clamd_server import EICAR, SIGNATURE, FakeClamd
from clamd_server import clamd as clamd
from frontdesk.storage.scanning import (
    CHUNK_BYTES,
    ClamdClient,
    ScannerUnavailable,
    parse_reply,
)


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def client_for(server: FakeClamd, timeout: float = 5) -> ClamdClient:
    return ClamdClient("127.0.0.1", server.port, timeout_seconds=timeout)


async def test_clean_stream(clamd: FakeClamd) -> None:
    result = await client_for(clamd).scan(chunks_of(b"hello ", b"world"))

    assert result.clean
    assert result.signature is None
    assert clamd.scanned == [b"hello world"]
    assert clamd.commands == ["INSTREAM"]


async def test_large_chunk_split(clamd: FakeClamd) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 128 + 3)

    result = await client_for(clamd).scan(chunks_of(data))

    assert result.clean
    assert clamd.scanned == [data]


async def test_eicar_found(clamd: FakeClamd) -> None:
    result = await client_for(clamd).scan(chunks_of(EICAR[:10], EICAR[10:]))

    assert not result.clean
    assert result.signature == SIGNATURE


async def test_error_reply_raises(clamd: FakeClamd) -> None:
    clamd.mode = "error"

    with pytest.raises(ScannerUnavailable, match="ERROR"):
        await client_for(clamd).scan(chunks_of(b"data"))


async def test_dropped_connection_raises(clamd: FakeClamd) -> None:
    clamd.mode = "drop"

    with pytest.raises(ScannerUnavailable, match="without a reply"):
        await client_for(clamd).scan(chunks_of(b"data"))


async def test_server_down_raises(clamd: FakeClamd) -> None:
    await clamd.stop()

    with pytest.raises(ScannerUnavailable, match="cannot connect"):
        await client_for(clamd).scan(chunks_of(b"data"))
    assert not await client_for(clamd).ping()


async def test_ping(clamd: FakeClamd) -> None:
    assert await client_for(clamd).ping()
    assert clamd.commands == ["PING"]


async def test_slow_source_times_out(clamd: FakeClamd) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(5)
        yield b"b"

    with pytest.raises(ScannerUnavailable, match="timed out"):
        await client_for(clamd, timeout=0.2).scan(slow())


@pytest.mark.parametrize(
    ("reply", "clean", "signature"),
    [
        ("stream: OK", True, None),
        ("stream: OK\0", True, None),
        ("stream: Win.Test.EICAR_HDB-1 FOUND", False, "Win.Test.EICAR_HDB-1"),
    ],
)
def test_parse_reply(reply: str, clean: bool, signature: str | None) -> None:
    result = parse_reply(reply)

    assert result.clean is clean
    assert result.signature == signature


@pytest.mark.parametrize(
    "reply", ["INSTREAM size limit exceeded. ERROR", "stream: lstat() failed ERROR", "hello", ""]
)
def test_parse_reply_rejects(reply: str) -> None:
    with pytest.raises(ScannerUnavailable):
        parse_reply(reply)
