"""Upload and download throughput through the storage API against the backend used directly.

For each size class the same bytes go through two paths in one run:

- API: ``POST /api/v1/storage/buckets/{id}/objects`` with a streamed body, then
  ``GET /api/v1/storage/objects/{id}/content``, through the whole application (auth, the
  unit of work, content sniffing, SHA-256, quota, the object row) over httpx's ASGI
  transport in this process;
- direct: the same backend's ``write`` and ``read`` called without the API.

The ratio API / direct shows what the service costs on top of the storage itself.

    python bench/bench_storage.py                 # a 100 MB file and 1,000 files of 4 KiB
    python bench/bench_storage.py --smoke         # small sizes, to check that it runs
    FRONTDESK_STORAGE_BACKEND=s3 FRONTDESK_S3_...=... python bench/bench_storage.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from frontdesk.app import create_app
from frontdesk.config import Settings
from frontdesk.core.logging import configure_logging
from frontdesk.core.migrate import upgrade

CHUNK = 1024 * 1024


async def chunks_of(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def rate(total_bytes: int, seconds: float) -> float:
    return total_bytes / seconds / 1e6


async def run(
    settings: Settings, large_bytes: int, small_count: int, small_bytes: int
) -> dict[str, float]:
    app = create_app(settings, run_worker=False)
    runtime = app.state.runtime
    backend = runtime.storage
    large = os.urandom(large_bytes)
    smalls = [os.urandom(small_bytes) for _ in range(small_count)]
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=None
        ) as client:
            signup = await client.post(
                "/api/v1/auth/signup",
                json={
                    "email": f"owner-{os.urandom(4).hex()}@example.com",
                    "password": "bench-password-1",
                    "full_name": "Bench Owner",
                    "workspace_name": "Bench Studio",
                },
            )
            signup.raise_for_status()
            headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            bucket = await client.post(
                "/api/v1/storage/buckets",
                headers=headers,
                json={"name": "bench", "visibility": "private"},
            )
            bucket.raise_for_status()
            objects_url = f"/api/v1/storage/buckets/{bucket.json()['id']}/objects"

            async def api_upload(key: str, data: bytes) -> str:
                response = await client.post(
                    objects_url,
                    params={"key": key},
                    headers={**headers, "Content-Type": "application/octet-stream"},
                    content=chunks_of(data),
                )
                if response.status_code != 201:
                    raise SystemExit(f"upload failed: {response.status_code} {response.text}")
                object_id: str = response.json()["id"]
                return object_id

            async def api_download(object_id: str) -> int:
                response = await client.get(
                    f"/api/v1/storage/objects/{object_id}/content", headers=headers
                )
                if response.status_code != 200:
                    raise SystemExit(f"download failed: {response.status_code} {response.text}")
                return len(response.content)

            started = time.perf_counter()
            large_id = await api_upload("large.bin", large)
            results["api_large_upload"] = rate(large_bytes, time.perf_counter() - started)
            started = time.perf_counter()
            assert await api_download(large_id) == large_bytes
            results["api_large_download"] = rate(large_bytes, time.perf_counter() - started)

            started = time.perf_counter()
            small_ids = [
                await api_upload(f"small/{index}.bin", data) for index, data in enumerate(smalls)
            ]
            results["api_small_upload"] = small_count / (time.perf_counter() - started)
            started = time.perf_counter()
            for object_id in small_ids:
                await api_download(object_id)
            results["api_small_download"] = small_count / (time.perf_counter() - started)

        limit = large_bytes + 1

        async def direct_read(path: str) -> int:
            return sum([len(chunk) async for chunk in backend.read(path)])

        started = time.perf_counter()
        await backend.write(
            "bench-direct/large",
            chunks_of(large),
            max_bytes=limit,
            content_type="application/octet-stream",
        )
        results["direct_large_upload"] = rate(large_bytes, time.perf_counter() - started)
        started = time.perf_counter()
        assert await direct_read("bench-direct/large") == large_bytes
        results["direct_large_download"] = rate(large_bytes, time.perf_counter() - started)

        started = time.perf_counter()
        for index, data in enumerate(smalls):
            await backend.write(
                f"bench-direct/small-{index}",
                chunks_of(data),
                max_bytes=limit,
                content_type="application/octet-stream",
            )
        results["direct_small_upload"] = small_count / (time.perf_counter() - started)
        started = time.perf_counter()
        for index in range(small_count):
            await direct_read(f"bench-direct/small-{index}")
        results["direct_small_download"] = small_count / (time.perf_counter() - started)
        await backend.delete("bench-direct/large")
        for index in range(small_count):
            await backend.delete(f"bench-direct/small-{index}")
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

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch)
        database_url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        upgrade(database_url)
        overrides: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": data_dir,
            "secret_key": "bench-" + os.urandom(24).hex(),
            "encryption_keys": "b1:" + base64.b64encode(os.urandom(32)).decode(),
            "rate_limits_enabled": False,
            "argon2_memory_kib": 8,
            "argon2_time_cost": 1,
            "storage_max_object_bytes": large_bytes + 1,
            "log_level": "WARNING",
            "log_format": "console",
        }
        # Storage settings (backend, S3 endpoint and keys) come from the environment.
        settings = Settings(**overrides)
        configure_logging(settings)
        results = asyncio.run(run(settings, large_bytes, small_count, small_bytes))

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
