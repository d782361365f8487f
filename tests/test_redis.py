"""The Redis broker and rate-limit store against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis as redis_sync

from conftest import make_settings
from frontdesk.core.ratelimit import RedisRateLimitStore
from frontdesk.realtime.brokers import RedisBroker
from redis_server import redis_url as redis_url

WAIT = 5.0


async def wait_for(values: list[int], expected: int) -> None:
    async with asyncio.timeout(WAIT):
        while expected not in values:
            await asyncio.sleep(0.01)


async def test_broker_crosses_instances(redis_url: str) -> None:
    sender, receiver = RedisBroker(redis_url), RedisBroker(redis_url)
    received: list[int] = []
    receiver.subscribe(received.append)
    await sender.start()
    await receiver.start()
    try:
        position = 1_000_000 + uuid.uuid4().int % 1_000_000
        await sender.publish(position)
        await wait_for(received, position)
        assert await sender.ping()
    finally:
        await sender.stop()
        await receiver.stop()


async def test_broker_resubscribes_after_drop(redis_url: str) -> None:
    broker = RedisBroker(redis_url, reconnect_delay=0.05)
    received: list[int] = []
    broker.subscribe(received.append)
    await broker.start()
    try:
        admin = redis_sync.Redis.from_url(redis_url)
        admin.client_kill_filter(_type="pubsub")
        admin.close()
        # Listeners receive -1 (catch up), then new positions flow again.
        await wait_for(received, -1)
        position = 2_000_000 + uuid.uuid4().int % 1_000_000
        async with asyncio.timeout(WAIT):
            while position not in received:
                await broker.publish(position)
                await asyncio.sleep(0.05)
    finally:
        await broker.stop()


async def test_broker_ping_false_when_down() -> None:
    broker = RedisBroker("redis://127.0.0.1:9/0")
    assert await broker.ping() is False
    await broker.stop()


async def test_rate_limit_counts_shared(redis_url: str) -> None:
    first, second = RedisRateLimitStore(redis_url), RedisRateLimitStore(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        assert await first.hit(key, 600, 60) == 1
        assert await second.hit(key, 600, 60) == 2
        assert await first.hit(key, 660, 60) == 1
        client = redis_sync.Redis.from_url(redis_url)
        ttl = client.ttl(f"{RedisRateLimitStore.PREFIX}{key}:600")
        client.close()
        assert 0 < ttl <= 65
    finally:
        await first.close()
        await second.close()


def test_redis_settings_need_url(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="FRONTDESK_REDIS_URL"):
        make_settings("sqlite+aiosqlite://", tmp_path, broker="redis")  # type: ignore[arg-type]
