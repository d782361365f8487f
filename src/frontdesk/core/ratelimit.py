"""Fixed-window rate limits with an in-process store or a database store shared by processes."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from redis import asyncio as redis_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.core.clock import Clock
from frontdesk.core.db import dialect_name
from frontdesk.core.errors import RateLimited
from frontdesk.core.models import RateLimitCounter


@dataclass(frozen=True)
class Limit:
    name: str
    max_requests: int
    window_seconds: int


class RateLimitStore(Protocol):
    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        """Count one request in the window and return the window's count."""
        ...

    async def reset(self) -> None: ...


class MemoryRateLimitStore:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()

    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        async with self._lock:
            if len(self._counts) > 100_000:
                self._drop_expired(window_start)
            count = self._counts.get((key, window_start), 0) + 1
            self._counts[(key, window_start)] = count
            return count

    def _drop_expired(self, current_window_start: int) -> None:
        for stored_key in [k for k in self._counts if k[1] < current_window_start - 86_400]:
            del self._counts[stored_key]

    async def reset(self) -> None:
        self._counts.clear()


class DatabaseRateLimitStore:
    """Counters in the application database, so that every process shares them."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        async with self._sessionmaker() as session:
            dialect = dialect_name(session)
            values = {
                "key": key,
                "window_start": window_start,
                "count": 1,
                "expires_at": window_start + window_seconds,
            }
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            upsert = (
                insert(RateLimitCounter)
                .values(values)
                .on_conflict_do_update(
                    index_elements=["key", "window_start"],
                    set_={"count": RateLimitCounter.count + 1},
                )
                .returning(RateLimitCounter.count)
            )
            count = (await session.execute(upsert)).scalar_one()
            await session.commit()
            return int(count)

    async def reset(self) -> None:
        async with self._sessionmaker() as session:
            await session.execute(sa.delete(RateLimitCounter))
            await session.commit()

    async def prune(self, now: int) -> None:
        async with self._sessionmaker() as session:
            await session.execute(
                sa.delete(RateLimitCounter).where(RateLimitCounter.expires_at < now)
            )
            await session.commit()


class RedisRateLimitStore:
    """Counters shared by every process through Redis: INCR, expiring with the window."""

    PREFIX = "frontdesk:ratelimit:"

    def __init__(self, redis_url: str) -> None:
        self._client: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=5, socket_timeout=5
        )

    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        name = f"{self.PREFIX}{key}:{window_start}"
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            # A little past the window, so a counter never expires while it still counts.
            pipe.expire(name, window_seconds + 5)
            count, _ = await pipe.execute()
        return int(count)

    async def reset(self) -> None:
        async for name in self._client.scan_iter(match=f"{self.PREFIX}*"):
            await self._client.delete(name)

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    def __init__(self, store: RateLimitStore, clock: Clock, *, enabled: bool = True) -> None:
        self.store = store
        self.clock = clock
        self.enabled = enabled

    async def check(self, *checks: tuple[Limit, str]) -> None:
        """Count a request against each (limit, subject) pair; raise 429 if any is exceeded.

        Every pair is counted even when an earlier one is already exceeded, so an attacker
        cannot spread attempts over subjects that are checked later.
        """
        if not self.enabled:
            return
        now = self.clock.now().timestamp()
        retry_after = 0
        for limit, subject in checks:
            window_start = int(now // limit.window_seconds * limit.window_seconds)
            count = await self.store.hit(
                f"{limit.name}:{subject}", window_start, limit.window_seconds
            )
            if count > limit.max_requests:
                remaining = window_start + limit.window_seconds - now
                retry_after = max(retry_after, math.ceil(remaining))
        if retry_after:
            raise RateLimited(max(retry_after, 1))
