"""Public form submissions per second: Frontdesk against a bare baseline, in one run.

Frontdesk's path does everything a real submission does: rate limits, spam checks, field
validation, contact matching, the enquiry with its timeline entry, a notification per member,
the acknowledgement email row and its job, and the event, all in one transaction. The
baseline is the least any such endpoint must do: a FastAPI route that validates a JSON body
and inserts one row in its own transaction on the same database engine. Both run in this
process through httpx's ASGI transport, so the figure measures the application, not the
network. Background jobs do not run during the measurement.

    python bench/bench_form_submissions.py              # 2,000 submissions
    python bench/bench_form_submissions.py --smoke      # a few, to check that it runs
    python bench/bench_form_submissions.py --database-url postgresql+asyncpg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel, EmailStr

from frontdesk.app import create_app
from frontdesk.config import Settings
from frontdesk.core.db import create_engine
from frontdesk.core.logging import configure_logging
from frontdesk.core.migrate import upgrade


class BaselineSubmission(BaseModel):
    name: str
    email: EmailStr
    message: str


def baseline_app(database_url: str) -> FastAPI:
    engine = create_engine(database_url)
    table = sa.Table(
        "bench_baseline",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("email", sa.String),
        sa.Column("message", sa.Text),
    )
    app = FastAPI()

    @app.post("/submit", status_code=201)
    async def submit(body: BaselineSubmission) -> dict[str, str]:
        async with engine.begin() as connection:
            await connection.execute(table.insert().values(**body.model_dump()))
        return {"status": "received"}

    async def prepare() -> None:
        async with engine.begin() as connection:
            await connection.run_sync(table.metadata.drop_all)
            await connection.run_sync(table.metadata.create_all)

    app.state.prepare = prepare
    app.state.engine = engine
    return app


async def measure(
    count: int, concurrency: int, send: Callable[[int], Awaitable[httpx.Response]]
) -> float:
    """Send ``count`` requests with ``concurrency`` in flight; return requests per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def run() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            response = await send(index)
            if response.status_code != 201:
                raise SystemExit(f"request {index} failed: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def submission(index: int) -> dict[str, Any]:
    return {
        "name": f"Customer {index}",
        "email": f"customer{index}@example.com",
        "message": "We would like to book the studio for a day in spring.",
    }


async def bench_frontdesk(database_url: str, data_dir: Path, count: int, concurrency: int) -> float:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        secret_key="bench-" + os.urandom(24).hex(),
        encryption_keys="b1:" + base64.b64encode(os.urandom(32)).decode(),
        rate_limits_enabled=False,
        form_min_fill_seconds=0,
        argon2_memory_kib=8,
        argon2_time_cost=1,
        log_level="WARNING",
        log_format="console",
    )
    configure_logging(settings)
    app = create_app(settings, run_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
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
            form = await client.post(
                "/api/v1/forms",
                headers=headers,
                json={
                    "name": "Booking",
                    "fields": [
                        {"key": "name", "type": "text", "label": "Name", "required": True},
                        {"key": "email", "type": "email", "label": "Email", "required": True},
                        {
                            "key": "message",
                            "type": "long_text",
                            "label": "Message",
                            "required": True,
                        },
                    ],
                },
            )
            form.raise_for_status()
            path = httpx.URL(form.json()["public_url"]).path

            async def send(index: int) -> httpx.Response:
                return await client.post(path, json=submission(index))

            return await measure(count, concurrency, send)


async def bench_baseline(database_url: str, count: int, concurrency: int) -> float:
    app = baseline_app(database_url)
    await app.state.prepare()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def send(index: int) -> httpx.Response:
                return await client.post("/submit", json=submission(index))

            return await measure(count, concurrency, send)
    finally:
        await app.state.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=2000, help="submissions per side (default 2000)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument(
        "--smoke", action="store_true", help="20 submissions, to check that it runs"
    )
    args = parser.parse_args()
    count = 20 if args.smoke else args.count

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch)
        database_url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        upgrade(database_url)
        baseline = asyncio.run(bench_baseline(database_url, count, args.concurrency))
        frontdesk = asyncio.run(bench_frontdesk(database_url, data_dir, count, args.concurrency))

    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"form submissions, {count} per side, {args.concurrency} in flight, {backend}, Python {sys.version.split()[0]}"
    )
    print(f"  baseline (validate + insert one row): {baseline:8.1f} per second")
    print(f"  frontdesk (full submission path):     {frontdesk:8.1f} per second")
    print(f"  ratio frontdesk / baseline:           {frontdesk / baseline:8.2f}")


if __name__ == "__main__":
    main()
