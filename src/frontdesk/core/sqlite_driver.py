"""SQLAlchemy's aiosqlite adapter with one thread round trip per statement.

aiosqlite runs each SQLite connection in a thread of its own, and every call crosses to that
thread and back. SQLAlchemy's adapter makes four such calls per statement (open a cursor,
execute, fetch the rows, close the cursor). The cursor here does all four in one call, which
cuts the thread switches, and with them most of the waiting, of every query on SQLite.

A transaction's BEGIN is not sent on its own: the cursor keeps it and sends it in the same
call as the transaction's first statement. A transaction that runs no statement sends
neither BEGIN nor COMMIT. A failing BEGIN (another process holding the database past the
busy timeout, say) therefore raises from the first statement instead.

A statement executed with the execution option ``DEFERRED`` (see ``deferred``) is not sent
at once either: it waits for the connection's next statement, or its commit, and crosses to
the thread with it. It returns no rows and a rowcount of -1, and an error it raises comes
from that later statement or the commit. It suits writes whose outcome the caller does not
read, inside a transaction that holds the write lock.

A statement executed with the execution option ``INLINE`` (see ``inline``) runs on the
event loop's thread, with the deferred statements before it, when its transaction already
holds the write lock and has sent its BEGIN. It then waits for no lock, and it skips the
trip to the connection's thread, which took 0.3 to 0.45 ms a statement on the benchmark
machine, 0.07 to 0.27 ms of it before the thread even started the statement. It suits short
statements inside write transactions. Elsewhere it takes the thread as usual.

Server-side cursors (``stream_results``) keep SQLAlchemy's own adapter, which fetches in
batches.

The adapter also queues this process's write transactions on an asyncio lock. SQLite lets
one connection write at a time, and a ``BEGIN IMMEDIATE`` that finds the lock taken sleeps in
SQLite's busy handler, for up to 100 ms between tries. Waiting on the asyncio lock instead
hands the database to the next writer as soon as the previous one commits or rolls back.
Other processes that write to the same file still meet the busy handler.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# The statement that starts a write transaction (see frontdesk.core.db).
WRITE_BEGIN = "BEGIN IMMEDIATE"

# The execution option that defers a statement (see the module's description).
DEFERRED = "frontdesk_deferred"
# The execution option that runs a statement on the event loop's thread (see ``inline``).
INLINE = "frontdesk_inline"

# The result of one statement: description, rowcount, lastrowid and the rows.
_Outcome = tuple[Any, int, int | None, list[Any]]
# A deferred statement: its text, its parameters and whether it runs with executemany.
_Deferred = tuple[str, Any, bool]


# The statements that begin a transaction: they are sent with the transaction's first
# statement instead of on their own.
_BEGINS = frozenset({WRITE_BEGIN, "BEGIN"})


def deferred(statement: Executable) -> Executable:
    """Return ``statement`` with the ``DEFERRED`` execution option; other drivers ignore it."""
    return statement.execution_options(**{DEFERRED: True})


def inline(statement: Executable) -> Executable:
    """Return ``statement`` with the ``INLINE`` execution option; other drivers ignore it.

    Mark only statements that touch a few rows through an index: while one runs, the event
    loop runs nothing else.
    """
    return statement.execution_options(**{INLINE: True})


def _send_pending(
    connection: sqlite3.Connection, begin: str | None, statements: list[_Deferred]
) -> None:
    """Send ``begin`` if given, then the deferred statements."""
    if begin is not None:
        connection.execute(begin)
    for operation, parameters, many in statements:
        if many:
            connection.executemany(operation, parameters)
        else:
            connection.execute(operation, () if parameters is None else parameters)


def _commit(connection: sqlite3.Connection, begin: str | None, statements: list[_Deferred]) -> None:
    """Send ``begin`` if given and the deferred statements, then commit; runs in the
    connection's thread.

    When a statement or the commit fails, the transaction is rolled back here, before the
    caller releases the write lock.
    """
    try:
        _send_pending(connection, begin, statements)
        connection.commit()
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise


def _run_statement(
    connection: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None = None,
    statements: list[_Deferred] | None = None,
) -> _Outcome:
    """Execute one statement, after ``begin`` and the deferred ``statements`` if given, and
    read all its rows; runs in the connection's thread."""
    _send_pending(connection, begin, statements or [])
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement and rows cross threads once."""

    __slots__ = ("_defer", "_description", "_inline", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor is opened: each statement opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        # Set for one execution by the engine's hook when the statement has DEFERRED.
        self._defer = False
        # Set for one execution by the engine's hook when the statement has INLINE.
        self._inline = False

    def defer_next(self) -> None:
        """Keep the next statement for the connection's next trip to its thread."""
        self._defer = True

    def inline_next(self) -> None:
        """Run the next statement on the event loop's thread when its transaction holds the
        write lock."""
        self._inline = True

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:  # type: ignore[override]
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        if operation in _BEGINS and not many and parameters in (None, (), []):
            # Kept until the transaction's first statement, which carries it to the thread:
            # a BEGIN on its own would cost a round trip of its own.
            if operation == WRITE_BEGIN:
                await adapted.acquire_write_lock()
            adapted.pending_begin = operation
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = collections.deque()
            return
        if self._defer:
            self._defer = False
            adapted.deferred.append((operation, parameters, many))
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = collections.deque()
            return
        run_inline, self._inline = self._inline, False
        raw: sqlite3.Connection | None = connection._connection
        outcome: _Outcome
        if (
            run_inline
            and adapted.holds_write_lock
            and adapted.pending_begin is None
            and raw is not None
            and raw.in_transaction
            and not adapted._execute_mutex.locked()
        ):
            # The transaction already holds SQLite's write lock, so the statement cannot wait
            # for a lock, and the thread has no call of this connection's in flight.
            statements, adapted.deferred = adapted.deferred, []
            outcome = _run_statement(raw, operation, parameters, many, None, statements)
        else:
            begin, adapted.pending_begin = adapted.pending_begin, None
            statements, adapted.deferred = adapted.deferred, []
            async with self._adapt_connection._execute_mutex:
                outcome = await connection._execute(
                    _run_statement, connection._conn, operation, parameters, many, begin, statements
                )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """A connection that keeps its DBAPI's write lock from BEGIN IMMEDIATE to the end."""

    __slots__ = ("_has_write_lock", "deferred", "pending_begin")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]
    dbapi: OneTripDBAPI

    def __init__(self, dbapi: OneTripDBAPI, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._has_write_lock = False
        # A BEGIN not sent yet (see OneTripCursor._run).
        self.pending_begin: str | None = None
        # Deferred statements not sent yet, in the order they were executed.
        self.deferred: list[_Deferred] = []

    async def acquire_write_lock(self) -> None:
        if self._has_write_lock:
            return
        lock = self.dbapi.write_lock()
        if not lock.locked():
            # A free lock is taken without waiting, so the timer and task of wait_for are
            # not needed.
            await lock.acquire()
            self._has_write_lock = True
            return
        try:
            await asyncio.wait_for(lock.acquire(), self.dbapi.lock_timeout_seconds)
        except TimeoutError:
            # The message SQLite itself gives when its busy timeout runs out.
            raise sqlite3.OperationalError("database is locked") from None
        self._has_write_lock = True

    @property
    def holds_write_lock(self) -> bool:
        return self._has_write_lock

    def _in_transaction(self) -> bool:
        """Return whether SQLite has a transaction open on this connection, or cannot tell."""
        raw = self._connection._connection
        return raw is None or raw.in_transaction

    def release_write_lock(self) -> None:
        if self._has_write_lock:
            self._has_write_lock = False
            self.dbapi.write_lock().release()

    def commit(self) -> None:
        begin, statements = self.pending_begin, self.deferred
        self.pending_begin, self.deferred = None, []
        try:
            if statements:
                # The deferred statements and the commit cross to the thread together.
                try:
                    await_(
                        self._connection._execute(
                            _commit, self._connection._conn, begin, statements
                        )
                    )
                except Exception as error:
                    self._handle_exception(error)
            elif begin is None and self._in_transaction():
                # A transaction whose BEGIN was never sent ran no statement, and a connection
                # outside a transaction has nothing to commit.
                super().commit()
        finally:
            self.release_write_lock()

    def rollback(self) -> None:
        self.pending_begin = None
        # Deferred statements were never sent, so dropping them undoes them.
        self.deferred = []
        try:
            # The pool rolls back every connection it takes back, most of them already
            # committed. Outside a transaction SQLite has nothing to roll back, so that
            # needs no trip to the connection's thread.
            if self._in_transaction():
                super().rollback()
        finally:
            self.release_write_lock()

    def close(self) -> None:
        self.pending_begin = None
        self.deferred = []
        try:
            super().close()
        finally:
            self.release_write_lock()

    def terminate(self) -> None:
        self.pending_begin = None
        self.deferred = []
        try:
            super().terminate()
        finally:
            self.release_write_lock()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI adapter, handing out connections with :class:`OneTripCursor`.

    One instance serves one engine, and its write lock orders that engine's writers.
    """

    def __init__(self, *, lock_timeout_seconds: float) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.lock_timeout_seconds = lock_timeout_seconds
        self._write_lock: asyncio.Lock | None = None

    def write_lock(self) -> asyncio.Lock:
        # Created on first use, inside the event loop that runs the engine.
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi(*, lock_timeout_seconds: float) -> OneTripDBAPI:
    """Return the DBAPI module to pass as ``module=`` to an ``sqlite+aiosqlite`` engine.

    A writer that waits longer than ``lock_timeout_seconds`` for the write lock gets
    ``sqlite3.OperationalError("database is locked")``.
    """
    return OneTripDBAPI(lock_timeout_seconds=lock_timeout_seconds)
