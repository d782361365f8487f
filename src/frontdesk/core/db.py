"""Database engine, declarative base and the column types shared by every domain."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from frontdesk.core.ids import uuid7
from frontdesk.core.sqlite_driver import DEFERRED, INLINE, one_trip_dbapi

# Stable constraint names keep migrations identical on SQLite and Postgres.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The execution option under which a SQLite connection sends no BEGIN: each statement is a
# transaction of its own (see ``autocommit_engine``).
NO_TRANSACTION = "frontdesk_no_transaction"

# How long a SQLite writer waits for the write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# A pooled PostgreSQL connection idle longer than this is pinged before it is used again.
PING_AFTER_IDLE_SECONDS = 5.0
# The key under which a pooled connection's record keeps the time it was last checked in.
_CHECKED_IN = "frontdesk_checked_in"
# The largest integer a column can hold: SQLite's INTEGER and PostgreSQL's BIGINT are 64-bit.
# Integer inputs are bounded by it, so a larger one gets a 422 instead of a driver error.
MAX_SQL_INTEGER = 2**63 - 1


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on both databases (SQLite stores it naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[dict[str, Any]]: JSONType,
        list[str]: JSONType,
    }


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)


def dialect_name(session: AsyncSession) -> str:
    """Name of the session's database dialect: "sqlite" or "postgresql"."""
    return session.get_bind().dialect.name


def create_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, foreign keys and immediate transactions.

    SQLite statements go through :mod:`frontdesk.core.sqlite_driver`, one thread round trip
    each.

    On SQLite a ``read_only`` engine starts deferred transactions, which read a WAL snapshot
    without taking the write lock, so readers neither wait for a writer nor block one.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            module=one_trip_dbapi(lock_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS),
            # Statements marked INLINE run on the event loop's thread, not aiosqlite's.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        configure_sqlite(engine, read_only=read_only)
        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    ping_after_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Make the engine's pool ping a connection before its use when it sat idle longer than
    ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout. On asyncpg that ping is BEGIN, an
    empty query and ROLLBACK: three round trips before each request's first statement. A
    connection that was used a moment ago is almost never dead, while one that sat idle may
    have been closed by a database restart, a proxy or a firewall. A dead one is replaced, and
    every pooled connection older than it is replaced on its next checkout. A connection that
    breaks while in use fails its statement, and SQLAlchemy then replaces the pool's
    connections the same way.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.pop(_CHECKED_IN, None)
        if checked_in is None or time.monotonic() - checked_in <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.InvalidatePoolError(f"idle connection failed its ping: {exc!r}") from exc


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """Return ``engine`` with every statement in a transaction of its own.

    A session on it sends no BEGIN and no COMMIT, which saves two round trips to SQLite's
    thread or to PostgreSQL. It suits work that reads a statement or two and needs no
    snapshot across them, such as checking a login before a group commit does the writes.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{NO_TRANSACTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def configure_sqlite(engine: AsyncEngine, *, read_only: bool = False) -> None:
    """Set the pragmas on every new connection and start the engine's transactions.

    A ``read_only`` engine starts deferred transactions and its connections have
    ``query_only`` set, so a statement that would write raises instead of writing outside
    the process's write lock. A writing engine also holds back statements executed with
    ``DEFERRED`` (see ``frontdesk.core.sqlite_driver``).
    """
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Manage transactions ourselves so that each one starts with BEGIN IMMEDIATE:
        # a deferred transaction that reads and then writes fails with SQLITE_BUSY
        # instead of waiting when another connection writes at the same time.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if not connection.get_execution_options().get(NO_TRANSACTION):
            connection.exec_driver_sql(begin)

    if read_only:
        # Nothing is deferred on connections that only read, so their statements skip the hook.
        return

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_execute(
        _connection: sa.Connection,
        cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if context is None:
            return
        options = context.execution_options
        if options.get(DEFERRED):
            cursor.defer_next()
        elif options.get(INLINE):
            cursor.inline_next()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
