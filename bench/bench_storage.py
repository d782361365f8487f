"""Upload and download throughput through the storage API against the backend used directly.

For each size class the same bytes are copied two ways in one run, and both ways end with
the bytes in a file on local disk:

- API: Frontdesk runs as a uvicorn server in its own process on 127.0.0.1, as it does in
  production. A plain HTTP/1.1 client in this process uploads the source file with
  ``POST /api/v1/storage/buckets/{id}/objects`` and downloads it with
  ``GET /api/v1/storage/objects/{id}/content`` into a destination file. The whole
  application is on the path: auth, the unit of work, content sniffing, SHA-256, quota and
  the object row.
- direct: this process calls the same backend's ``write`` with the source file's bytes and
  ``read`` into a destination file, without HTTP.

The client is a few lines over a blocking socket (``sendfile`` up, ``recv_into`` down), so
the figures measure the server rather than a Python HTTP client. The ratio API / direct
shows what the service costs on top of the storage itself.

    python bench/bench_storage.py                 # a 100 MB file and 1,000 files of 4 KiB
    python bench/bench_storage.py --smoke         # small sizes, to check that it runs
    FRONTDESK_STORAGE_BACKEND=s3 FRONTDESK_S3_...=... python bench/bench_storage.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from frontdesk.config import Settings
from frontdesk.core.migrate import upgrade
from frontdesk.storage.backends import build_backend

HOST = "127.0.0.1"
CHUNK = 1024 * 1024


def rate(total_bytes: int, seconds: float) -> float:
    return total_bytes / seconds / 1e6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def server_process(env: dict[str, str], port: int) -> Iterator[str]:
    """Run Frontdesk under uvicorn in a child process; yield its base URL once it answers."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "frontdesk.app:app_from_env",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env={**os.environ, **env})
    base_url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the Frontdesk server did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _read_head(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read a response's status line and headers; return them and the body bytes read so far."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = connection.recv(65536)
        if not data:
            raise SystemExit("the server closed the connection before answering")
        received += data
    head, rest = received.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def _request_head(method: str, path: str, token: str, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode("latin-1")


def http_upload(port: int, path: str, token: str, source: Path) -> dict[str, Any]:
    size = source.stat().st_size
    with socket.create_connection((HOST, port)) as connection, source.open("rb") as handle:
        extra = f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n"
        connection.sendall(_request_head("POST", path, token, extra))
        connection.sendfile(handle)
        status, _headers, body = _read_head(connection)
        while data := connection.recv(65536):
            body += data
    if status != 201:
        raise SystemExit(f"upload failed: {status} {body[:500]!r}")
    result: dict[str, Any] = json.loads(body)
    return result


def http_download(port: int, path: str, token: str, destination: Path) -> int:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with socket.create_connection((HOST, port)) as connection, destination.open("wb") as out:
        connection.sendall(_request_head("GET", path, token))
        status, headers, first = _read_head(connection)
        if status != 200:
            raise SystemExit(f"download failed: {status} {first[:500]!r}")
        out.write(first)
        received = len(first)
        expected = int(headers["content-length"])
        while received < expected:
            count = connection.recv_into(buffer)
            if count == 0:
                break
            out.write(view[:count])
            received += count
    return received


async def file_chunks(source: Path) -> AsyncIterator[bytes]:
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


async def direct_copies(
    settings: Settings, large: Path, large_bytes: int, smalls: list[Path], scratch: Path
) -> dict[str, float]:
    """Copy the files into the backend and back out with its own ``write`` and ``read``."""
    backend = build_backend(settings)
    limit = large_bytes + 1
    results: dict[str, float] = {}

    async def write(path: str, source: Path) -> None:
        await backend.write(
            path, file_chunks(source), max_bytes=limit, content_type="application/octet-stream"
        )

    async def read(path: str, destination: Path) -> None:
        with destination.open("wb") as out:
            async for chunk in backend.read(path):
                out.write(chunk)

    started = time.perf_counter()
    await write("bench-direct/large", large)
    results["direct_large_upload"] = rate(large_bytes, time.perf_counter() - started)
    started = time.perf_counter()
    await read("bench-direct/large", scratch / "direct-large.out")
    results["direct_large_download"] = rate(large_bytes, time.perf_counter() - started)

    started = time.perf_counter()
    for index, source in enumerate(smalls):
        await write(f"bench-direct/small-{index}", source)
    results["direct_small_upload"] = len(smalls) / (time.perf_counter() - started)
    started = time.perf_counter()
    for index in range(len(smalls)):
        await read(f"bench-direct/small-{index}", scratch / "direct-small.out")
    results["direct_small_download"] = len(smalls) / (time.perf_counter() - started)

    await backend.delete("bench-direct/large")
    for index in range(len(smalls)):
        await backend.delete(f"bench-direct/small-{index}")
    await backend.close()
    return results


def api_copies(
    base_url: str, port: int, large: Path, smalls: list[Path], scratch: Path
) -> dict[str, float]:
    """Copy the files through a running Frontdesk server with the plain socket client."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        signup = client.post(
            "/api/v1/auth/signup",
            json={
                "email": f"owner-{os.urandom(4).hex()}@example.com",
                "password": "bench-password-1",
                "full_name": "Bench Owner",
                "workspace_name": "Bench Studio",
            },
        )
        signup.raise_for_status()
        token = signup.json()["access_token"]
        bucket = client.post(
            "/api/v1/storage/buckets",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "bench", "visibility": "private"},
        )
        bucket.raise_for_status()
    objects_path = f"/api/v1/storage/buckets/{bucket.json()['id']}/objects"
    results: dict[str, float] = {}

    large_bytes = large.stat().st_size
    started = time.perf_counter()
    large_id = http_upload(port, f"{objects_path}?key=large.bin", token, large)["id"]
    results["api_large_upload"] = rate(large_bytes, time.perf_counter() - started)
    started = time.perf_counter()
    received = http_download(
        port, f"/api/v1/storage/objects/{large_id}/content", token, scratch / "api-large.out"
    )
    results["api_large_download"] = rate(large_bytes, time.perf_counter() - started)
    if received != large_bytes:
        raise SystemExit(f"the download returned {received} of {large_bytes} bytes")

    started = time.perf_counter()
    small_ids = [
        http_upload(port, f"{objects_path}?key=small/{index}.bin", token, source)["id"]
        for index, source in enumerate(smalls)
    ]
    results["api_small_upload"] = len(smalls) / (time.perf_counter() - started)
    started = time.perf_counter()
    for object_id in small_ids:
        http_download(
            port, f"/api/v1/storage/objects/{object_id}/content", token, scratch / "api-small.out"
        )
    results["api_small_download"] = len(smalls) / (time.perf_counter() - started)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--large-mb", type=int, default=100, help="size of the large file in MB (default 100)"
    )
    parser.add_argument(
        "--small-count", type=int, default=1000, help="number of small files (default 1000)"
    )
    parser.add_argument(
        "--small-kib", type=int, default=4, help="size of each small file in KiB (default 4)"
    )
    parser.add_argument("--smoke", action="store_true", help="a 2 MB file and 20 small files")
    args = parser.parse_args()
    large_bytes = (2 if args.smoke else args.large_mb) * 1_000_000
    small_count = 20 if args.smoke else args.small_count
    small_bytes = args.small_kib * 1024

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        data_dir = scratch / "data"
        data_dir.mkdir()
        large = scratch / "large.bin"
        large.write_bytes(os.urandom(large_bytes))
        smalls = []
        for index in range(small_count):
            small = scratch / f"small-{index}.bin"
            small.write_bytes(os.urandom(small_bytes))
            smalls.append(small)

        database_url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        upgrade(database_url)
        # Storage settings (backend, S3 endpoint and keys) come from the environment.
        env = {
            "FRONTDESK_DATABASE_URL": database_url,
            "FRONTDESK_DATA_DIR": str(data_dir),
            "FRONTDESK_SECRET_KEY": "bench-" + os.urandom(24).hex(),
            "FRONTDESK_ENCRYPTION_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
            "FRONTDESK_RATE_LIMITS_ENABLED": "false",
            "FRONTDESK_ARGON2_MEMORY_KIB": "8",
            "FRONTDESK_ARGON2_TIME_COST": "1",
            "FRONTDESK_STORAGE_MAX_OBJECT_BYTES": str(large_bytes + 1),
            "FRONTDESK_LOG_LEVEL": "WARNING",
            "FRONTDESK_LOG_FORMAT": "console",
        }
        port = free_port()
        with server_process(env, port) as base_url:
            results = api_copies(base_url, port, large, smalls, scratch)
        os.environ.update(env)
        settings = Settings()
        results.update(asyncio.run(direct_copies(settings, large, large_bytes, smalls, scratch)))

    print(
        f"storage throughput, backend {settings.storage_backend}, large file {large_bytes / 1e6:.0f} MB, "
        f"{small_count} files of {small_bytes} bytes"
    )
    for kind in ("upload", "download"):
        api, direct = results[f"api_large_{kind}"], results[f"direct_large_{kind}"]
        print(
            f"  large {kind:8}  API {api:8.1f} MB/s   direct {direct:8.1f} MB/s   ratio {api / direct:5.2f}"
        )
    for kind in ("upload", "download"):
        api, direct = results[f"api_small_{kind}"], results[f"direct_small_{kind}"]
        print(
            f"  small {kind:8}  API {api:8.1f} files/s direct {direct:8.1f} files/s ratio {api / direct:5.2f}"
        )


if __name__ == "__main__":
    main()
