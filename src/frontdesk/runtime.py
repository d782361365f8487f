"""The runtime: every long-lived object of one process, built from the settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from frontdesk.config import Settings
from frontdesk.core.clock import Clock, SystemClock
from frontdesk.core.crypto import EnvelopeCipher
from frontdesk.core.db import autocommit_engine, create_engine, create_sessionmaker
from frontdesk.core.events import number_pending_events
from frontdesk.core.group_commit import GroupCommit
from frontdesk.core.jobs import Worker
from frontdesk.core.models import Event
from frontdesk.core.passwords import PasswordHasher
from frontdesk.core.ratelimit import (
    DatabaseRateLimitStore,
    MemoryRateLimitStore,
    RateLimiter,
    RateLimitStore,
    RedisRateLimitStore,
)
from frontdesk.core.secrets import Secrets, resolve_secrets
from frontdesk.realtime.brokers import Broker, MemoryBroker, PostgresBroker, RedisBroker
from frontdesk.storage.backends import build_backend
from frontdesk.storage.backends.base import StorageBackend

log = structlog.get_logger()


@dataclass
class Runtime:
    settings: Settings
    secrets: Secrets
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # For code that only reads, such as the realtime gateway. On SQLite its transactions do
    # not take the write lock; on Postgres it is the same as ``sessionmaker``.
    read_sessionmaker: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    # Sessions whose statements each commit on their own, on the read engine (see
    # ``frontdesk.core.db.autocommit_engine``).
    autocommit_sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    limiter: RateLimiter
    cipher: EnvelopeCipher
    broker: Broker
    storage: StorageBackend
    worker: Worker | None = None
    # Callback set by this process's realtime gateway. It receives the events this process
    # committed, with their positions, so the gateway does not read them back.
    event_sink: Callable[[list[Event]], None] | None = field(default=None, repr=False)
    # Runs units of work that arrive together in one transaction (the chat send paths).
    group_commit: GroupCommit = field(init=False, repr=False)
    _started: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self)

    def wake_worker(self) -> None:
        """Wake this process's job worker, if it runs one, after jobs were committed."""
        if self.worker is not None:
            self.worker.wake()

    async def publish_numbered(self, events: Sequence[Event], numbered: dict[int, int]) -> None:
        """Hand this process's newly numbered events to its gateway, then tell every process
        that events up to the highest position are numbered and committed."""
        if not numbered:
            return
        self._hand_over(events, numbered)
        try:
            await self.broker.publish(max(numbered.values()))
        except Exception as exc:
            log.error("events.publish_failed", error=repr(exc), exc_info=exc)

    async def publish_pending_events(self) -> None:
        """Number the committed events that have no position yet and publish the highest.

        A failure loses nothing, because the rows are committed and the periodic sweep numbers
        and publishes them later.
        """
        try:
            numbered = await number_pending_events(self.sessionmaker)
        except Exception as exc:
            log.error("events.publish_failed", error=repr(exc), exc_info=exc)
            return
        await self.publish_numbered((), numbered)

    def _hand_over(self, events: Sequence[Event], numbered: dict[int, int]) -> None:
        """Pass the numbered ones of ``events``, which carry their positions, to the gateway."""
        known = [event for event in events if event.id in numbered]
        if self.event_sink is not None and known:
            self.event_sink(sorted(known, key=lambda event: event.position or 0))

    async def start(self) -> None:
        """Connect the broker and check that the file store can be used.

        A missing S3 bucket or wrong credentials stop the start with StorageUnavailable,
        whose message names what to check, instead of failing every later upload.
        """
        if not self._started:
            check_ready = getattr(self.storage, "check_ready", None)
            if check_ready is not None:
                await check_ready()
            await self.broker.start()
            self._started = True

    async def close(self) -> None:
        await self.group_commit.close()
        if self._started:
            await self.broker.stop()
            self._started = False
        await self.storage.close()
        close_store = getattr(self.limiter.store, "close", None)
        if close_store is not None:
            await close_store()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def prepare_data_dir(settings: Settings) -> None:
    """Create the data folder and an empty database file readable by this user only.

    SQLite gives its -wal and -shm files the permissions of the database file, so the
    personal data and password hashes in them stay private too.
    """
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if url.startswith("sqlite") and ":memory:" not in url:
        database = Path(url.split("///", 1)[1])
        if not database.exists():
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """Create the runtime's objects; nothing connects until ``start``."""
    secrets = resolve_secrets(settings)
    if settings.is_sqlite:
        prepare_data_dir(settings)
    engine = create_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    sessionmaker = create_sessionmaker(engine)
    read_engine = (
        create_engine(settings.resolved_database_url, read_only=True)
        if settings.is_sqlite
        else engine
    )
    clock = clock or SystemClock()
    store: RateLimitStore
    if settings.rate_limit_store == "database":
        store = DatabaseRateLimitStore(sessionmaker)
    elif settings.rate_limit_store == "redis":
        assert settings.redis_url is not None  # checked by Settings
        store = RedisRateLimitStore(settings.redis_url)
    else:
        store = MemoryRateLimitStore()
    broker: Broker
    if settings.resolved_broker == "postgres":
        broker = PostgresBroker(settings.resolved_database_url)
    elif settings.resolved_broker == "redis":
        assert settings.redis_url is not None
        broker = RedisBroker(settings.redis_url)
    else:
        broker = MemoryBroker()
    return Runtime(
        settings=settings,
        secrets=secrets,
        clock=clock,
        engine=engine,
        sessionmaker=sessionmaker,
        read_engine=read_engine,
        read_sessionmaker=create_sessionmaker(read_engine),
        autocommit_sessionmaker=create_sessionmaker(autocommit_engine(read_engine)),
        hasher=PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
        ),
        limiter=RateLimiter(store, clock, enabled=settings.rate_limits_enabled),
        cipher=EnvelopeCipher(secrets.encryption_keys),
        broker=broker,
        storage=build_backend(settings),
    )
