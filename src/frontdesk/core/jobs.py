"""The durable job queue kept in the application database, its worker and its scheduler.

Jobs are rows written in the transaction of the change that needs them. Workers claim due
jobs with ``FOR UPDATE SKIP LOCKED`` on Postgres (SQLite has a single writer, so a claim there
is already exclusive) and hold a lease; a job whose worker died is claimed again when the
lease ends, so delivery is at least once and handlers must be idempotent. A failure is
retried with exponential backoff and full jitter until ``max_attempts``, then the job moves
to the ``dead`` state, where admins can see and retry it.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from prometheus_client import Counter

from frontdesk.core.db import dialect_name
from frontdesk.core.models import Job
from frontdesk.core.uow import UnitOfWork, unit_of_work

if TYPE_CHECKING:
    from frontdesk.runtime import Runtime

log = structlog.get_logger()

JOBS_FINISHED = Counter(
    "frontdesk_jobs_total", "Jobs finished, by name and outcome", ["name", "outcome"]
)

JobHandler = Callable[[UnitOfWork, dict[str, Any]], Awaitable[None]]


class RetryLater(Exception):
    """Raise from a handler to retry after a given delay, such as a server's Retry-After."""

    def __init__(self, reason: str, *, delay_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class PermanentFailure(Exception):
    """Raise from a handler when retrying cannot help; the job goes to ``dead`` at once."""


@dataclass(frozen=True)
class JobContext:
    """A leased job as the worker hands it to a handler: its name, payload and attempt count."""

    id: uuid.UUID
    name: str
    attempts: int
    max_attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_seconds: int


_HANDLERS: dict[str, JobHandler] = {}
_PERIODIC: dict[str, PeriodicTask] = {}

# A handler of several due jobs of one name at once. It returns the exception of each job
# that failed; the others are marked succeeded in the unit of work it was given.
BatchHandler = Callable[[UnitOfWork, list[JobContext]], Awaitable[dict[uuid.UUID, Exception]]]
_BATCH_HANDLERS: dict[str, tuple[BatchHandler, int]] = {}


def batch_job_handler(name: str, *, max_batch: int) -> Callable[[BatchHandler], BatchHandler]:
    """Register a handler that runs up to ``max_batch`` due jobs of ``name`` together.

    Batching saves the per-job transactions of jobs that are many and small, such as
    sending email. The handler must tolerate running a job twice, like any handler.
    """

    def register(function: BatchHandler) -> BatchHandler:
        _BATCH_HANDLERS[name] = (function, max_batch)
        return function

    return register


def job_handler(name: str) -> Callable[[JobHandler], JobHandler]:
    """Register the handler of the job ``name``; handlers must tolerate running twice."""

    def register(function: JobHandler) -> JobHandler:
        _HANDLERS[name] = function
        return function

    return register


def periodic(name: str, *, every_seconds: int) -> Callable[[JobHandler], JobHandler]:
    """Register a job that the scheduler enqueues once per interval across all workers."""

    def register(function: JobHandler) -> JobHandler:
        _HANDLERS[name] = function
        _PERIODIC[name] = PeriodicTask(name, every_seconds)
        return function

    return register


def registered_handlers() -> set[str]:
    """Return the names of every job that has a handler."""
    return set(_HANDLERS) | set(_BATCH_HANDLERS)


def backoff_delay(attempts: int, *, base: float, maximum: float) -> float:
    """Full-jitter exponential backoff: a random delay up to ``base * 2**(attempts-1)``."""
    ceiling = min(maximum, base * (2 ** max(attempts - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (not for security)


async def schedule_periodic(uow: UnitOfWork) -> None:
    """Enqueue the current occurrence of every periodic task unless it exists already."""
    now = uow.now()
    epoch = int(now.timestamp())
    for task in _PERIODIC.values():
        occurrence = epoch - epoch % task.interval_seconds
        key = f"{task.name}@{occurrence}"
        exists = await uow.session.scalar(sa.select(Job.id).where(Job.unique_key == key))
        if exists is None:
            # A unique index on unique_key settles races between workers.
            await _insert_ignoring_duplicate(uow, task.name, key)


async def _insert_ignoring_duplicate(uow: UnitOfWork, name: str, key: str) -> None:
    now = uow.now()
    dialect = dialect_name(uow.session)
    values = {
        "id": uuid.uuid4(),
        "name": name,
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "max_attempts": 3,
        "run_at": now,
        "unique_key": key,
        "created_at": now,
    }
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert = pg_insert(Job).values(values).on_conflict_do_nothing(index_elements=["unique_key"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = (
            sqlite_insert(Job).values(values).on_conflict_do_nothing(index_elements=["unique_key"])
        )
    await uow.session.execute(insert)


class Worker:
    """Claims and runs due jobs until stopped; several may run against one database."""

    def __init__(self, rt: Runtime, *, concurrency: int = 4, name: str | None = None) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        # Jobs this worker leased, by id, until run_job takes them.
        self._claimed: dict[uuid.UUID, JobContext] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._last_schedule = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="frontdesk-worker")
        log.info("worker.started", worker=self.name)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming, then wait up to ``grace_seconds`` for the jobs in flight."""
        self._stopping.set()
        self._wake.set()
        if self._loop_task:
            await self._loop_task
        if self._running:
            _done, pending = await asyncio.wait(self._running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("worker.jobs_abandoned", count=len(pending))
        log.info("worker.stopped", worker=self.name)

    async def run_until_idle(self, max_rounds: int = 100) -> int:
        """Run due jobs in this task until none is due; returns how many ran (for tests)."""
        ran = 0
        for _ in range(max_rounds):
            claimed = await self.claim(limit=self.concurrency)
            if not claimed:
                return ran
            for batch in await self._batches(claimed):
                await self.run_batch(batch)
                ran += len(batch)
        return ran

    async def _loop(self) -> None:
        poll = self.rt.settings.job_poll_interval_seconds
        while not self._stopping.is_set():
            # Cleared before looking for work, so a job that finishes while this iteration
            # claims wakes the wait below instead of being lost until the next poll.
            self._wake.clear()
            try:
                await self._maybe_schedule()
                free = self.concurrency - len(self._running)
                claimed = await self.claim(limit=free) if free > 0 else []
                for batch in await self._batches(claimed):
                    task = asyncio.create_task(self.run_batch(batch))
                    self._running.add(task)
                    task.add_done_callback(self._job_done)
                if claimed and len(claimed) == free:
                    continue
            except Exception as exc:
                log.error("worker.loop_failed", error=repr(exc), exc_info=exc)
            try:
                # asyncio.timeout rather than wait_for, which on Python 3.11 can drop a
                # cancellation that arrives as the event is set.
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _maybe_schedule(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_schedule < 5:
            return
        self._last_schedule = loop_time
        async with unit_of_work(self.rt) as uow:
            await schedule_periodic(uow)

    async def _batches(self, claimed: list[uuid.UUID]) -> list[list[uuid.UUID]]:
        """Group claimed jobs into the runs of one task each.

        A job with a batch handler leases more due jobs of its name, up to the batch size,
        and runs together with them. Any other job runs alone.
        """
        batches: list[list[uuid.UUID]] = []
        grouped: dict[str, list[uuid.UUID]] = {}
        for job_id in claimed:
            context = self._claimed.get(job_id)
            if context is not None and context.name in _BATCH_HANDLERS:
                grouped.setdefault(context.name, []).append(job_id)
            else:
                batches.append([job_id])
        for name, ids in grouped.items():
            max_batch = _BATCH_HANDLERS[name][1]
            room = max_batch * len(ids) - len(ids)
            if room > 0:
                ids = ids + await self.claim(limit=room, name=name)
            batches.extend(
                ids[start : start + max_batch] for start in range(0, len(ids), max_batch)
            )
        return batches

    async def claim(self, *, limit: int, name: str | None = None) -> list[uuid.UUID]:
        """Lease up to ``limit`` due jobs (of ``name`` when given) to this worker; return their ids."""
        async with unit_of_work(self.rt) as uow:
            now = uow.now()
            due = sa.or_(
                sa.and_(Job.status == "pending", Job.run_at <= now),
                sa.and_(Job.status == "running", Job.locked_until < now),
            )
            if name is not None:
                due = sa.and_(due, Job.name == name)
            query = (
                sa.select(Job.id, Job.name, Job.payload, Job.attempts, Job.max_attempts)
                .where(due)
                .order_by(Job.run_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = (await uow.session.execute(query)).all()
            ids = [row.id for row in rows]
            if ids:
                lease = now + timedelta(seconds=self.rt.settings.job_lease_seconds)
                await uow.session.execute(
                    sa.update(Job)
                    .where(Job.id.in_(ids))
                    .values(
                        status="running",
                        locked_by=self.name,
                        locked_until=lease,
                        attempts=Job.attempts + 1,
                    )
                )
        # Kept for run_job, which then needs no query of its own; the lease is taken.
        for row in rows:
            self._claimed[row.id] = JobContext(
                row.id, row.name, row.attempts + 1, row.max_attempts, dict(row.payload)
            )
        return ids

    async def run_batch(self, job_ids: list[uuid.UUID]) -> None:
        """Run claimed jobs: several of a batch handler together, any other one alone."""
        first = self._claimed.get(job_ids[0])
        if first is None or first.name not in _BATCH_HANDLERS:
            for job_id in job_ids:
                await self.run_job(job_id)
            return
        contexts = [context for job_id in job_ids if (context := self._claimed.pop(job_id, None))]
        name = first.name
        handler = _BATCH_HANDLERS[name][0]
        structlog.contextvars.bind_contextvars(job=name, batch=len(contexts))
        try:
            async with unit_of_work(self.rt) as uow:
                failures = await handler(uow, contexts)
                succeeded = [context.id for context in contexts if context.id not in failures]
                if succeeded:
                    await uow.session.execute(
                        sa.update(Job)
                        .where(Job.id.in_(succeeded))
                        .values(
                            status="succeeded",
                            finished_at=uow.now(),
                            locked_until=None,
                            last_error=None,
                        )
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The batch's own transaction failed; every job of it is retried or dead.
            failures = {context.id: exc for context in contexts}
            succeeded = []
        finally:
            structlog.contextvars.unbind_contextvars("job", "batch")
        if succeeded:
            JOBS_FINISHED.labels(name, "succeeded").inc(len(succeeded))
        for context in contexts:
            failure = failures.get(context.id)
            if failure is not None:
                structlog.contextvars.bind_contextvars(job_id=str(context.id), job=name)
                try:
                    await self._record_failure(
                        context.id, name, context.attempts, context.max_attempts, failure
                    )
                finally:
                    structlog.contextvars.unbind_contextvars("job_id", "job")

    async def run_job(self, job_id: uuid.UUID) -> None:
        claimed = self._claimed.get(job_id)
        if claimed is None:
            # A read: on SQLite the read engine takes no write lock for it.
            async with self.rt.read_sessionmaker() as session:
                job = await session.get(Job, job_id)
                if job is None or job.status != "running" or job.locked_by != self.name:
                    return
                claimed = JobContext(
                    job_id, job.name, job.attempts, job.max_attempts, dict(job.payload)
                )
            self._claimed[job_id] = claimed
        if claimed.name in _BATCH_HANDLERS:
            await self.run_batch([job_id])
            return
        del self._claimed[job_id]
        name, payload = claimed.name, claimed.payload
        attempts, max_attempts = claimed.attempts, claimed.max_attempts
        handler = _HANDLERS.get(name)
        structlog.contextvars.bind_contextvars(job_id=str(job_id), job=name)
        try:
            if handler is None:
                raise PermanentFailure(f"no handler is registered for job '{name}'")
            async with unit_of_work(self.rt) as uow:
                await handler(uow, payload)
                await uow.session.execute(
                    sa.update(Job)
                    .where(Job.id == job_id)
                    .values(
                        status="succeeded",
                        finished_at=uow.now(),
                        locked_until=None,
                        last_error=None,
                    )
                )
            JOBS_FINISHED.labels(name, "succeeded").inc()
            log.info("job.succeeded", attempts=attempts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._record_failure(job_id, name, attempts, max_attempts, exc)
        finally:
            structlog.contextvars.unbind_contextvars("job_id", "job")

    async def _record_failure(
        self, job_id: uuid.UUID, name: str, attempts: int, max_attempts: int, exc: Exception
    ) -> None:
        settings = self.rt.settings
        permanent = isinstance(exc, PermanentFailure) or attempts >= max_attempts
        async with unit_of_work(self.rt) as uow:
            now = uow.now()
            values: dict[str, Any] = {
                "last_error": f"{type(exc).__name__}: {exc}"[:2000],
                "locked_until": None,
            }
            if permanent:
                values.update(status="dead", finished_at=now)
            else:
                delay = backoff_delay(
                    attempts,
                    base=settings.job_backoff_base_seconds,
                    maximum=settings.job_backoff_max_seconds,
                )
                if isinstance(exc, RetryLater) and exc.delay_seconds is not None:
                    delay = max(delay, exc.delay_seconds)
                values.update(status="pending", run_at=now + timedelta(seconds=delay))
            await uow.session.execute(sa.update(Job).where(Job.id == job_id).values(**values))
        if permanent:
            JOBS_FINISHED.labels(name, "dead").inc()
            log.error("job.dead", attempts=attempts, error=str(exc))
        else:
            JOBS_FINISHED.labels(name, "retry").inc()
            log.warning("job.retrying", attempts=attempts, error=str(exc))


async def retry_dead_job(uow: UnitOfWork, job: Job) -> None:
    job.status = "pending"
    job.run_at = uow.now()
    job.attempts = 0
    job.finished_at = None


def next_run_after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
