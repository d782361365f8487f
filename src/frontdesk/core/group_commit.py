"""Group commit: units of work that arrive together share one transaction.

Every transaction that writes pays a fixed price besides its own statements: a session, its
BEGIN and COMMIT, the event numbering and, on SQLite, the process's one write lock, which
serializes writers. When many clients send chat messages at once, that price is most of the
cost of each message. ``GroupCommit.run`` queues a unit, an async function of a
``UnitOfWork``. One writer task runs the queued units, in the order they arrived, in one
transaction that commits once. Units that arrive while it runs join it, up to
``MAX_GROUP_SIZE``; those that arrive during its commit wait for the next one. Nothing is
held back by a timer: alone, a unit gets a transaction of its own at once.

A unit reads the changes of the units before it in the same transaction, as if they had
committed first. When a unit raises, or the commit fails, the transaction rolls back
and every unit of that group runs again in a transaction of its own, so the others are
stored and each caller gets its own result or error. A unit may therefore run twice: it
must act only through its unit of work (statements, events, jobs) and must not commit.

A unit whose statement failed on a conflict with another transaction that has since
committed raises ``RerunAlone``. The unit then runs once more in a transaction of its own,
even when it was alone in its group, and reads what the other transaction stored.

A unit that finds, before it has written anything, that it cannot do its work (a
conversation that does not exist, say) returns ``Rejection(error)`` instead of raising. The
group then goes on without a rerun, and ``run`` raises the error to that unit's caller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from prometheus_client import Counter

from frontdesk.core.uow import UnitOfWork, unit_of_work

if TYPE_CHECKING:
    from frontdesk.runtime import Runtime

log = structlog.get_logger()

GROUP_TRANSACTIONS = Counter(
    "frontdesk_group_commit_transactions",
    "Transactions run by the group commit, counting the reruns of a failed group's units.",
)
GROUP_UNITS = Counter("frontdesk_group_commit_units", "Units of work run by the group commit.")
GROUP_FAILURES = Counter(
    "frontdesk_group_commit_failed_groups",
    "Groups of several units rolled back because one failed; each unit ran again alone.",
)

T = TypeVar("T")

# The maximum number of units in one transaction. It bounds how long one transaction keeps SQLite's
# write lock, which the process's other writers wait for.
MAX_GROUP_SIZE = 64


@dataclass(frozen=True)
class Rejection:
    """The outcome of a unit that rejected its work before writing anything."""

    error: Exception


class RerunAlone(Exception):
    """The error a unit raises when its transaction conflicted with another one that has
    since committed, so that the unit runs again in a transaction of its own.

    When the rerun fails the same way, the caller gets the error this one was raised from.
    """


@dataclass(eq=False)
class _Unit(Generic[T]):
    work: Callable[[UnitOfWork], Awaitable[T | Rejection]]
    result: asyncio.Future[T | Rejection] = field(repr=False)


class GroupCommit:
    """Run units of work, grouping those that wait at the same time into one transaction."""

    def __init__(self, runtime: Runtime, *, max_group_size: int = MAX_GROUP_SIZE) -> None:
        self._runtime = runtime
        self._max_group_size = max_group_size
        self._queue: deque[_Unit[Any]] = deque()
        self._writer: asyncio.Task[None] | None = None
        # How many transactions ran and how many units they held, for tests and metrics.
        self.transactions = 0
        self.units = 0

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T | Rejection]]) -> T:
        """Run ``work`` in a transaction that may contain other units and return its result.

        The result is ready once the transaction committed and its events were handed to the
        realtime gateway. When ``work`` raised, or returned a ``Rejection``, that error is
        raised instead. Cancelling the caller does not cancel the unit.
        """
        result: asyncio.Future[T | Rejection] = asyncio.get_running_loop().create_future()
        self._queue.append(_Unit(work, result))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        value = await result
        if isinstance(value, Rejection):
            raise value.error
        return value

    async def _write(self) -> None:
        try:
            while self._queue:
                group: list[_Unit[Any]] = []
                try:
                    await self._run_group(group)
                except BaseException as exc:
                    for unit in group:
                        _fail(unit, exc)
                    raise
        finally:
            self._writer = None
            if self._queue:
                # Only when this task was cancelled with units still queued (at shutdown).
                for unit in self._queue:
                    _fail(unit, asyncio.CancelledError())
                self._queue.clear()

    async def _run_group(self, group: list[_Unit[Any]]) -> None:
        """Run queued units in one transaction, moving each into ``group`` as it starts.

        Units that arrive while the group runs join it, up to the group size, so that a
        burst of sends shares one commit.
        """
        self.transactions += 1
        GROUP_TRANSACTIONS.inc()
        results: list[Any] = []
        try:
            async with unit_of_work(self._runtime) as uow:
                while self._queue and len(group) < self._max_group_size:
                    unit = self._queue.popleft()
                    group.append(unit)
                    results.append(await unit.work(uow))
        except Exception as exc:
            self._count_units(len(group))
            if len(group) == 1 and not isinstance(exc, RerunAlone):
                _fail(group[0], exc)
                return
            if len(group) > 1:
                GROUP_FAILURES.inc()
            log.debug("group_commit.retry_alone", units=len(group), error=repr(exc))
            for unit in group:
                self.transactions += 1
                GROUP_TRANSACTIONS.inc()
                await self._run_alone(unit)
            return
        self._count_units(len(group))
        for unit, value in zip(group, results, strict=True):
            if not unit.result.done():
                unit.result.set_result(value)

    def _count_units(self, units: int) -> None:
        self.units += units
        GROUP_UNITS.inc(units)

    async def _run_alone(self, unit: _Unit[Any]) -> None:
        try:
            async with unit_of_work(self._runtime) as uow:
                value = await unit.work(uow)
        except RerunAlone as exc:
            _fail(unit, exc.__cause__ or exc)
            return
        except Exception as exc:
            _fail(unit, exc)
            return
        if not unit.result.done():
            unit.result.set_result(value)

    async def close(self) -> None:
        """Wait until the queued units have run."""
        if self._writer is not None:
            await asyncio.wait([self._writer])


def _fail(unit: _Unit[Any], exc: BaseException) -> None:
    if unit.result.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        unit.result.cancel()
    else:
        unit.result.set_exception(exc)
