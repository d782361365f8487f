"""Brokers that tell every process that new events were sequenced, and carry ephemeral signals.

A broker carries two kinds of messages. Wake-up signals hold the highest sequenced position;
the events themselves are read from the events table, which keeps one order for every
process. Ephemeral messages are small JSON objects (typing and presence) that reach only the
processes listening at that moment, are never stored and are not sent again when lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
import structlog
from redis import asyncio as redis_asyncio
from redis import exceptions as redis_exceptions

log = structlog.get_logger()

CHANNEL = "frontdesk_events"
EPHEMERAL_CHANNEL = "frontdesk_ephemeral"
# Largest encoded ephemeral message, in bytes. PostgreSQL rejects NOTIFY payloads of 8000
# bytes or more (default build), and every broker applies the same limit so that code tested
# on one broker works on the others.
MAX_EPHEMERAL_BYTES = 7999

Listener = Callable[[int], None]
EphemeralListener = Callable[[dict[str, Any]], None]


class EphemeralTooLarge(ValueError):
    """Raised when an ephemeral message does not fit in MAX_EPHEMERAL_BYTES."""


class Broker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, position: int) -> None: ...

    def subscribe(self, listener: Listener) -> None: ...

    def unsubscribe(self, listener: Listener) -> None: ...

    async def publish_ephemeral(self, message: dict[str, Any]) -> None: ...

    def subscribe_ephemeral(self, listener: EphemeralListener) -> None: ...

    def unsubscribe_ephemeral(self, listener: EphemeralListener) -> None: ...

    async def ping(self) -> bool: ...


def encode_ephemeral(message: dict[str, Any]) -> str:
    """Encode an ephemeral message; raises EphemeralTooLarge over MAX_EPHEMERAL_BYTES."""
    text = json.dumps(message, separators=(",", ":"))
    if len(text.encode()) > MAX_EPHEMERAL_BYTES:
        raise EphemeralTooLarge(f"ephemeral message over {MAX_EPHEMERAL_BYTES} bytes")
    return text


class _EphemeralListeners:
    """The ephemeral listeners of one broker, and delivery of a received payload to them."""

    def __init__(self) -> None:
        self.ephemeral_listeners: list[EphemeralListener] = []

    def subscribe_ephemeral(self, listener: EphemeralListener) -> None:
        self.ephemeral_listeners.append(listener)

    def unsubscribe_ephemeral(self, listener: EphemeralListener) -> None:
        with contextlib.suppress(ValueError):
            self.ephemeral_listeners.remove(listener)

    def deliver_ephemeral(self, payload: str | bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("broker.ephemeral_invalid")
            return
        if not isinstance(message, dict):
            return
        for listener in list(self.ephemeral_listeners):
            try:
                listener(message)
            except Exception as exc:
                # One failing listener must not stop the others or the broker's reader.
                log.error("broker.ephemeral_listener_failed", error=repr(exc), exc_info=exc)


class MemoryBroker(_EphemeralListeners):
    """Delivers signals to listeners in this process only."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[Listener] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._listeners.clear()
        self.ephemeral_listeners.clear()

    async def publish(self, position: int) -> None:
        for listener in list(self._listeners):
            listener(position)

    async def publish_ephemeral(self, message: dict[str, Any]) -> None:
        self.deliver_ephemeral(encode_ephemeral(message))

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def ping(self) -> bool:
        return True


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """Turn ``postgresql+asyncpg://...`` into a DSN that asyncpg accepts."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgresql") else sqlalchemy_url


class PostgresBroker(_EphemeralListeners):
    """LISTEN/NOTIFY on one dedicated connection, reconnecting with backoff when it drops.

    Positions go on CHANNEL and ephemeral messages on EPHEMERAL_CHANNEL.
    """

    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(database_url)
        self._listeners: list[Listener] = []
        self._connection: asyncpg.Connection | None = None
        self._reconnect_delay = reconnect_delay
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        # asyncpg runs one query at a time per connection.
        self._query_lock = asyncio.Lock()

    async def start(self) -> None:
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="frontdesk-pg-broker")

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        await connection.add_listener(CHANNEL, self._on_notify)
        await connection.add_listener(EPHEMERAL_CHANNEL, self._on_ephemeral)
        connection.add_termination_listener(lambda _conn: self._lost.set())
        self._connection = connection
        self._lost.clear()

    async def _supervise(self) -> None:
        while not self._stopping:
            await self._lost.wait()
            if self._stopping:
                return
            log.warning("broker.connection_lost", broker="postgres")
            delay = self._reconnect_delay
            while not self._stopping:
                try:
                    await self._connect()
                    log.info("broker.reconnected", broker="postgres")
                    # Events may have been sequenced while disconnected: wake listeners to catch up.
                    for listener in list(self._listeners):
                        listener(-1)
                    break
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("broker.reconnect_failed", error=repr(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30)

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            return
        for listener in list(self._listeners):
            listener(position)

    def _on_ephemeral(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self.deliver_ephemeral(payload)

    async def stop(self) -> None:
        self._stopping = True
        self._lost.set()
        if self._supervisor:
            await self._supervisor
        if self._connection and not self._connection.is_closed():
            await self._connection.close(timeout=5)

    async def publish(self, position: int) -> None:
        if self._connection is None or self._connection.is_closed():
            return
        async with self._query_lock:
            await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, str(position))

    async def publish_ephemeral(self, message: dict[str, Any]) -> None:
        """Send the message with NOTIFY; dropped while the connection is down."""
        payload = encode_ephemeral(message)
        if self._connection is None or self._connection.is_closed():
            return
        async with self._query_lock:
            await self._connection.execute("SELECT pg_notify($1, $2)", EPHEMERAL_CHANNEL, payload)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def ping(self) -> bool:
        if self._connection is None or self._connection.is_closed():
            return False
        try:
            async with self._query_lock:
                await self._connection.fetchval("SELECT 1", timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True


class RedisBroker(_EphemeralListeners):
    """Redis pub/sub on two channels, resubscribing with backoff when the connection drops.

    Like the Postgres broker it carries positions on CHANNEL, and every process reads the
    events themselves from the database; ephemeral messages go on EPHEMERAL_CHANNEL.
    """

    def __init__(self, redis_url: str, *, reconnect_delay: float = 1.0) -> None:
        super().__init__()
        # Publishing and pings time out after 5 s. The subscription has a client of its own
        # without a read timeout, because it waits for messages as long as none come.
        self._client: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=10, socket_timeout=5
        )
        self._subscriber: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=10, health_check_interval=30
        )
        self._listeners: list[Listener] = []
        self._reconnect_delay = reconnect_delay
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        await self._client.ping()
        self._reader = asyncio.create_task(self._read(), name="frontdesk-redis-broker")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def _read(self) -> None:
        delay = self._reconnect_delay
        first = True
        while not self._stopping:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL, EPHEMERAL_CHANNEL)
                self._subscribed.set()
                if not first:
                    log.info("broker.reconnected", broker="redis")
                    # Events may have been sequenced while disconnected: wake listeners.
                    for listener in list(self._listeners):
                        listener(-1)
                first = False
                delay = self._reconnect_delay
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    channel = message.get("channel")
                    if channel in (EPHEMERAL_CHANNEL, EPHEMERAL_CHANNEL.encode()):
                        self.deliver_ephemeral(message.get("data") or b"")
                    else:
                        self._deliver(message.get("data"))
            except asyncio.CancelledError:
                raise
            except (OSError, redis_exceptions.RedisError) as exc:
                if self._stopping:
                    return
                log.warning("broker.connection_lost", broker="redis", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, data: object) -> None:
        try:
            position = int(data.decode() if isinstance(data, bytes) else str(data))
        except ValueError:
            return
        for listener in list(self._listeners):
            listener(position)

    async def stop(self) -> None:
        self._stopping = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._client.aclose()
        await self._subscriber.aclose()

    async def publish(self, position: int) -> None:
        try:
            await self._client.publish(CHANNEL, str(position))
        except (OSError, redis_exceptions.RedisError) as exc:
            # Listeners catch up through the poll safety net.
            log.warning("broker.publish_failed", broker="redis", error=repr(exc))

    async def publish_ephemeral(self, message: dict[str, Any]) -> None:
        """PUBLISH the message; a failure is logged and the message dropped."""
        payload = encode_ephemeral(message)
        try:
            await self._client.publish(EPHEMERAL_CHANNEL, payload)
        except (OSError, redis_exceptions.RedisError) as exc:
            log.warning("broker.publish_failed", broker="redis", error=repr(exc), ephemeral=True)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._client.ping(), timeout=2))
        except (OSError, TimeoutError, redis_exceptions.RedisError):
            return False
