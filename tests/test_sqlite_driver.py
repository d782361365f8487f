"""The one-round-trip SQLite cursor behaves like SQLAlchemy's aiosqlite adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from frontdesk.core.db import autocommit_engine, configure_sqlite, create_engine
from frontdesk.core.sqlite_driver import (
    OneTripCursor,
    OneTripDBAPI,
    deferred,
    inline,
    one_trip_dbapi,
)

ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(ITEMS.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_cursor_class_used(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()

        cursor = raw.dbapi_connection.cursor()  # type: ignore[union-attr]

    assert isinstance(cursor, OneTripCursor)


async def test_insert_reports_primary_key(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(ITEMS.insert().values(name="first"))
        second = await connection.execute(ITEMS.insert().values(name="second"))

    assert first.inserted_primary_key == (1,)
    assert second.inserted_primary_key == (2,)


async def test_update_reports_rowcount(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert(), [{"name": f"item {i}"} for i in range(5)])
        result = await connection.execute(
            ITEMS.update().where(ITEMS.c.id > 2).values(name=ITEMS.c.name + " changed")
        )

    assert result.rowcount == 3


async def test_executemany_inserts_all(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert(), [{"name": f"item {i}"} for i in range(50)])
        count = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))

    assert count == 50


async def test_rows_and_returning(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        returned = await connection.execute(
            ITEMS.insert().values(name="returned").returning(ITEMS.c.id, ITEMS.c.name)
        )
        row = returned.one()
        names = (await connection.execute(sa.select(ITEMS.c.name))).scalars().all()

    assert tuple(row) == (1, "returned")
    assert names == ["returned"]


async def test_constraint_error_raised(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert().values(name="same"))

    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert().values(name="same"))

    async with engine.connect() as connection:
        count = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))
    assert count == 1


async def test_rollback_discards(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(ITEMS.insert().values(name="discarded"))
        await transaction.rollback()
        count = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))

    assert count == 0


async def test_streamed_results(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert(), [{"name": f"item {i:03}"} for i in range(300)])

    async with engine.connect() as connection:
        result = await connection.stream(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))
        names = [name async for name in result.scalars()]

    assert len(names) == 300
    assert names[0] == "item 000"
    assert names[-1] == "item 299"


def _write_lock(engine: AsyncEngine) -> asyncio.Lock:
    dbapi = engine.sync_engine.dialect.dbapi
    assert isinstance(dbapi, OneTripDBAPI)
    return dbapi.write_lock()


async def test_writers_take_turns(engine: AsyncEngine) -> None:
    order: list[str] = []
    first_inside = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert().values(name="first"))
            order.append("first in")
            first_inside.set()
            await asyncio.sleep(0.2)
            order.append("first out")

    async def second() -> None:
        await first_inside.wait()
        async with engine.begin() as connection:
            order.append("second in")
            await connection.execute(ITEMS.insert().values(name="second"))

    await asyncio.gather(first(), second())

    assert order == ["first in", "first out", "second in"]
    assert not _write_lock(engine).locked()


async def test_lock_held_during_write(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert().values(name="held"))

        assert _write_lock(engine).locked()

    assert not _write_lock(engine).locked()


async def test_lock_released_after_error(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert().values(name="undone"))
            raise RuntimeError("handler failed")

    assert not _write_lock(engine).locked()
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert().values(name="next"))
        count = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))
    assert count == 1


async def test_lock_wait_times_out(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'timeout.db'}"
    engine = create_async_engine(url, module=one_trip_dbapi(lock_timeout_seconds=0.1))
    configure_sqlite(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(ITEMS.metadata.create_all)
        async with engine.begin() as holder:
            await holder.execute(ITEMS.insert().values(name="holder"))

            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                async with engine.begin() as waiter:
                    await waiter.execute(ITEMS.insert().values(name="waiter"))
            waited = time.monotonic() - started

        # SQLite's own busy timeout is 30 s here, so only the lock's 0.1 s ends this early.
        assert waited < 10
    finally:
        await engine.dispose()


async def test_readers_skip_lock(engine: AsyncEngine, tmp_path: Path) -> None:
    reader = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}", read_only=True)
    try:
        async with engine.begin() as writer:
            await writer.execute(ITEMS.insert().values(name="uncommitted"))
            async with reader.connect() as connection:
                count = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))
        assert count == 0
    finally:
        await reader.dispose()


# --- Deferred statements ----------------------------------------------------------------------


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of each call that crosses to a connection's thread."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def _names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list(
            (await connection.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))).scalars()
        )


async def test_deferred_statement_goes_with_the_next(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        result = await connection.execute(deferred(ITEMS.insert()), {"name": "deferred"})
        assert trips == []
        assert result.rowcount == -1
        seen = await connection.scalar(sa.select(sa.func.count()).select_from(ITEMS))
        assert len(trips) == 1

    assert seen == 1
    assert await _names(engine) == ["deferred"]


async def test_deferred_statements_go_with_the_commit(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.begin() as connection:
        await connection.execute(deferred(ITEMS.insert()), {"name": "one"})
        await connection.execute(deferred(ITEMS.insert()), [{"name": "two"}, {"name": "three"}])

    # BEGIN, the three rows and COMMIT in one trip.
    assert len(trips) == 1
    assert await _names(engine) == ["one", "two", "three"]
    assert not _write_lock(engine).locked()


async def test_rollback_drops_deferred_statements(engine: AsyncEngine, trips: list[str]) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as connection:
            await connection.execute(deferred(ITEMS.insert()), {"name": "dropped"})
            raise RuntimeError("handler failed")

    assert trips == []
    assert not _write_lock(engine).locked()
    assert await _names(engine) == []


async def test_deferred_error_comes_from_the_next_statement(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert().values(name="taken"))

    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
        async with engine.begin() as connection:
            await connection.execute(deferred(ITEMS.insert()), {"name": "taken"})
            await connection.execute(sa.select(ITEMS.c.id))
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert().values(name="new"))
            await connection.execute(deferred(ITEMS.insert()), {"name": "taken"})

    assert not _write_lock(engine).locked()
    assert await _names(engine) == ["taken"]


async def test_inline_skips_thread(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        # The first statement carries BEGIN IMMEDIATE to the thread, even when marked.
        await connection.execute(inline(ITEMS.insert().values(name="first")))
        assert len(trips) == 1
        await connection.execute(deferred(ITEMS.insert()), {"name": "deferred"})
        renamed = await connection.execute(
            inline(ITEMS.update().where(ITEMS.c.name == "first").values(name="renamed"))
        )
        names = (await connection.execute(inline(sa.select(ITEMS.c.name)))).scalars().all()
        assert len(trips) == 1

    assert renamed.rowcount == 1
    assert sorted(names) == ["deferred", "renamed"]
    # Only the COMMIT crossed to the thread after the first statement.
    assert len(trips) == 2
    assert await _names(engine) == ["renamed", "deferred"]


async def test_inline_error_raised_and_rolled_back(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert().values(name="taken"))

    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert().values(name="new"))
            await connection.execute(inline(ITEMS.insert().values(name="taken")))

    assert not _write_lock(engine).locked()
    assert await _names(engine) == ["taken"]


async def test_inline_without_write_lock_uses_thread(
    engine: AsyncEngine, tmp_path: Path, trips: list[str]
) -> None:
    reader = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}", read_only=True)
    try:
        # Opened first, so that their setup statements are not counted.
        await _names(reader)
        await _names(engine)
        trips.clear()
        async with reader.begin() as connection:
            await connection.execute(inline(sa.select(ITEMS.c.name)))
            await connection.execute(inline(sa.select(ITEMS.c.name)))
        async with autocommit_engine(engine).connect() as connection:
            await connection.execute(inline(sa.select(ITEMS.c.name)))
    finally:
        await reader.dispose()

    # Each SELECT crossed to its connection's thread: the read engine runs no hook, and the
    # autocommit connection holds no write lock.
    assert trips.count("_run_statement") == 3


# --- Statements without a transaction -------------------------------------------------------


async def test_autocommit_engine_sends_no_begin_or_commit(
    engine: AsyncEngine, tmp_path: Path, trips: list[str]
) -> None:
    reader = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}", read_only=True)
    statements = autocommit_engine(reader)
    try:
        async with engine.begin() as writer:
            await writer.execute(ITEMS.insert().values(name="committed"))
        # The pool's connection is opened and set up by a first session.
        async with AsyncSession(statements) as session:
            await session.execute(sa.select(ITEMS.c.id))
        trips.clear()
        async with AsyncSession(statements) as session:
            count = await session.scalar(sa.select(sa.func.count()).select_from(ITEMS))
            raw = await (await session.connection()).get_raw_connection()
            in_transaction = raw.driver_connection._connection.in_transaction  # type: ignore[union-attr]
            await session.commit()

        assert count == 1
        assert not in_transaction
        # The SELECT alone: no BEGIN and no COMMIT crossed to the thread.
        assert len(trips) == 1
    finally:
        await reader.dispose()
