"""Stripe webhook ingestion per second: Frontdesk against a bare handler, in one run.

Frontdesk's path is POST /webhooks/stripe/{token}: find the workspace by its token, decrypt
its signing secret, verify ``Stripe-Signature``, parse the event, insert the StripeEvent row
unless its id is stored, enqueue the ``payments.stripe_event`` job and commit. The bare
handler does the least any such endpoint must: verify the HMAC with a secret it holds in
memory, read the event id and insert one row in its own transaction on the same database.

Both run under uvicorn in a child process on 127.0.0.1 (``serve_socket.py``) with the same
uvicorn options, and this process sends them the same number of distinct signed events over
real sockets with the same concurrency. Jobs do not run during the measurement (the
Frontdesk server runs without its worker). The target is a ratio of at least 2/3.

    python bench/bench_stripe_webhooks.py               # 2,000 events per side
    python bench/bench_stripe_webhooks.py --smoke       # a few, to check that it runs
    python bench/bench_stripe_webhooks.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from chat_support import (
    cpu_seconds,
    frontdesk_environment,
    machine_summary,
    new_secret_key,
    print_options,
    server_process,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

TARGET_RATIO = 2 / 3
BARE_TABLE = sa.Table(
    "bench_stripe_events",
    sa.MetaData(),
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(100)),
    sa.Column("payload", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True)),
)


# --- The servers (uvicorn factories) ----------------------------------------------------------


def frontdesk_app() -> Any:
    """Factory: Frontdesk from FRONTDESK_* variables, without its job worker."""
    from frontdesk.app import create_app
    from frontdesk.config import Settings
    from frontdesk.core.logging import configure_logging

    settings = Settings()
    configure_logging(settings)
    return create_app(settings, run_worker=False)


def bare_app() -> Starlette:
    """Factory: verify the HMAC and insert the row, nothing else."""
    from frontdesk.core.db import create_engine

    engine = create_engine(os.environ["BENCH_DATABASE_URL"])
    secret = os.environ["BENCH_WEBHOOK_SECRET"].encode()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        header = request.headers.get("stripe-signature", "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        timestamp = parts.get("t", "")
        expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            return JSONResponse({"error": "signature"}, status_code=400)
        event = json.loads(body)
        async with engine.begin() as connection:
            await connection.execute(
                BARE_TABLE.insert().values(
                    event_id=event["id"],
                    type=event["type"],
                    payload=body.decode(),
                    received_at=datetime.now(UTC),
                )
            )
        return JSONResponse({"received": True})

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/hook", receive, methods=["POST"]),
            Route("/healthz", health),
        ]
    )


# --- Setup ------------------------------------------------------------------------------------


async def seed_workspace(env: dict[str, str], webhook_secret: str) -> str:
    """Insert a workspace with Stripe keys and return its webhook token."""
    from frontdesk.config import Settings
    from frontdesk.core.ids import new_token, uuid7
    from frontdesk.core.uow import unit_of_work
    from frontdesk.payments.models import StripeAccount
    from frontdesk.runtime import build_runtime
    from frontdesk.workspaces.models import Workspace

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=env["FRONTDESK_DATABASE_URL"],
        data_dir=Path(env["FRONTDESK_DATA_DIR"]),
        secret_key=env["FRONTDESK_SECRET_KEY"],
        encryption_keys=env["FRONTDESK_ENCRYPTION_KEYS"],
    )
    runtime = build_runtime(settings)
    token = new_token(24)
    try:
        async with unit_of_work(runtime) as uow:
            now = uow.now()
            workspace = Workspace(
                id=uuid7(),
                name="Bench Studio",
                default_country="US",
                settings={},
                created_at=now,
                updated_at=now,
            )
            uow.session.add(workspace)
            await uow.session.flush()
            associated = f"stripe-account:{workspace.id}".encode()
            uow.session.add(
                StripeAccount(
                    workspace_id=workspace.id,
                    secret_key_encrypted=runtime.cipher.encrypt_text(
                        "sk_test_bench", associated_data=associated
                    ),
                    webhook_secret_encrypted=runtime.cipher.encrypt_text(
                        webhook_secret, associated_data=associated
                    ),
                    webhook_token=token,
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await runtime.close()
    return token


async def create_bare_table(database_url: str) -> None:
    from frontdesk.core.db import create_engine

    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(BARE_TABLE.metadata.drop_all)
        await connection.run_sync(BARE_TABLE.metadata.create_all)
    await engine.dispose()


def signed_events(count: int, secret: str, prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    """Build ``count`` distinct payment_intent.succeeded deliveries, signed now."""
    deliveries = []
    timestamp = int(time.time())
    for index in range(count):
        event = {
            "id": f"evt_{prefix}_{index}_{uuid.uuid4().hex[:8]}",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": timestamp,
            "type": "payment_intent.succeeded",
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {
                "object": {
                    "id": f"pi_{uuid.uuid4().hex[:24]}",
                    "object": "payment_intent",
                    "amount": 2000 + index,
                    "currency": "eur",
                    "status": "succeeded",
                    "latest_charge": f"ch_{uuid.uuid4().hex[:24]}",
                    "metadata": {},
                }
            },
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        signature = hmac.new(
            secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        deliveries.append(
            (
                body,
                {
                    "Stripe-Signature": f"t={timestamp},v1={signature}",
                    "Content-Type": "application/json; charset=utf-8",
                },
            )
        )
    return deliveries


async def measure(
    url: str, deliveries: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> float:
    """POST every delivery with ``concurrency`` in flight; return deliveries per second."""
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)
    failures: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def sender() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return len(deliveries) / elapsed


async def count_rows(database_url: str, table: str) -> int:
    from frontdesk.core.db import create_engine

    engine = create_engine(database_url)
    async with engine.connect() as connection:
        found = await connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))
    await engine.dispose()
    return int(found or 0)


# --- Main -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    from frontdesk.core.migrate import upgrade

    print_options(args)
    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as tmp:
        data_dir = Path(tmp)
        database_url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        upgrade(database_url)
        env = frontdesk_environment(database_url, data_dir, new_secret_key())
        webhook_secret = "whsec_" + os.urandom(24).hex()
        token = asyncio.run(seed_workspace(env, webhook_secret))
        asyncio.run(create_bare_table(database_url))
        bare_env = {
            **env,
            "BENCH_DATABASE_URL": database_url,
            "BENCH_WEBHOOK_SECRET": webhook_secret,
        }
        warmup = min(50, args.count)
        # A database given with --database-url may hold rows of earlier runs.
        events_before = asyncio.run(count_rows(database_url, "stripe_events"))
        jobs_before = asyncio.run(count_rows(database_url, "jobs"))

        with server_process(
            "bench_stripe_webhooks:frontdesk_app", env, data_dir / "frontdesk.log"
        ) as server:
            url = f"{server.http_url}/webhooks/stripe/{token}"
            asyncio.run(measure(url, signed_events(warmup, webhook_secret, "fw"), 4))
            deliveries = signed_events(args.count, webhook_secret, "f")
            cpu_before = cpu_seconds(server.process.pid)
            frontdesk_rate = asyncio.run(measure(url, deliveries, args.concurrency))
            frontdesk_cpu = cpu_seconds(server.process.pid) - cpu_before
        with server_process(
            "bench_stripe_webhooks:bare_app", bare_env, data_dir / "bare.log"
        ) as server:
            url = f"{server.http_url}/hook"
            asyncio.run(measure(url, signed_events(warmup, webhook_secret, "bw"), 4))
            deliveries = signed_events(args.count, webhook_secret, "b")
            cpu_before = cpu_seconds(server.process.pid)
            bare_rate = asyncio.run(measure(url, deliveries, args.concurrency))
            bare_cpu = cpu_seconds(server.process.pid) - cpu_before

        stored = asyncio.run(count_rows(database_url, "stripe_events")) - events_before
        jobs = asyncio.run(count_rows(database_url, "jobs")) - jobs_before
        if stored != args.count + warmup or jobs != stored:
            raise SystemExit(
                f"expected {args.count + warmup} new events and jobs, found {stored} and {jobs}"
            )

    ratio = frontdesk_rate / bare_rate
    print(f"bare handler (verify + insert):      {bare_rate:8.1f} events per second")
    print(f"Frontdesk (verify + store + enqueue): {frontdesk_rate:8.1f} events per second")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"ratio {ratio:.2f} (target {TARGET_RATIO:.2f}: {verdict})")
    # Server CPU per event, user and system, over the measured events only: this varies
    # less between runs than the rates, which also depend on the client and the machine.
    print(
        f"server CPU per event: bare {1000 * bare_cpu / args.count:.2f} ms, "
        f"Frontdesk {1000 * frontdesk_cpu / args.count:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000, help="events per side (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--database-url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--smoke", action="store_true", help="send 20 events, to check it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count = 20
    run(args)


if __name__ == "__main__":
    main()
