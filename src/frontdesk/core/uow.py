"""The unit of work: one transaction per request or job, with its after-commit effects.

Services receive a ``UnitOfWork``, change state through its session and record events and
jobs with it. They flush and never commit; the request or job boundary commits once. Events
and jobs are rows in the same transaction, so a rollback discards them with the change.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk.core.events import insert_numbered_events
from frontdesk.core.ids import uuid7
from frontdesk.core.models import Event, Job

if TYPE_CHECKING:
    from frontdesk.config import Settings
    from frontdesk.runtime import Runtime


_JOB_INSERT = sa.insert(Job.__table__)  # type: ignore[arg-type]


class UnitOfWork:
    def __init__(self, rt: Runtime, session: AsyncSession) -> None:
        self.rt = rt
        self.session = session
        self.settings = rt.settings
        self._events: list[Event] = []
        self._jobs_enqueued = False

    def now(self) -> datetime:
        return self.rt.clock.now()

    async def release_connection(self) -> None:
        """Return the session's database connection to the pool before a long wait.

        Loaded objects stay usable as they are. A later statement checks out a connection
        again. It suits work that only read so far, because it ends the transaction.
        """
        await self.session.close()

    def record_event(
        self,
        name: str,
        data: dict[str, Any],
        *,
        workspace_id: uuid.UUID | None,
        user_id: uuid.UUID | None = None,
        audience: str = "staff",
        conversation_id: uuid.UUID | None = None,
    ) -> Event:
        """Record a domain event; it is published to live clients after the commit."""
        event = Event(
            name=name,
            data=data,
            workspace_id=workspace_id,
            user_id=user_id,
            audience=audience,
            conversation_id=conversation_id,
            created_at=self.now(),
        )
        # Inserted at the commit, with its position (see ``commit``).
        self._events.append(event)
        return event

    def enqueue(
        self,
        name: str,
        payload: dict[str, Any],
        *,
        run_at: datetime | None = None,
        unique_key: str | None = None,
        workspace_id: uuid.UUID | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Add a durable job that runs after this transaction commits."""
        now = self.now()
        job = Job(
            id=uuid7(),
            name=name,
            payload=payload,
            status="pending",
            attempts=0,
            max_attempts=max_attempts or self.settings.job_max_attempts,
            run_at=run_at or now,
            unique_key=unique_key,
            workspace_id=workspace_id,
            created_at=now,
        )
        self.session.add(job)
        self._jobs_enqueued = True
        return job

    async def commit(self) -> None:
        events, jobs = self._events, self._jobs_enqueued
        numbered: dict[int, int] = {}
        if events:
            # Inserting the events last, numbered under a lock kept until the commit, gives
            # positions in commit order without the sequencer's second transaction.
            numbered = await insert_numbered_events(self.session, events)
        await self.session.commit()
        self._events = []
        self._jobs_enqueued = False
        await self.rt.publish_numbered(events, numbered)
        if jobs:
            self.rt.wake_worker()

    async def finish(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """Commit, or roll back when ``exc`` is set, then close the session.

        It has the signature of an exit callback and returns False, so an exception
        propagates.
        """
        try:
            if exc is None:
                await self.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()
        return False


async def insert_job(
    connection: AsyncConnection,
    settings: Settings,
    now: datetime,
    name: str,
    payload: dict[str, Any],
    *,
    workspace_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Add a durable job, due now, with one INSERT and return its id.

    It is the job that ``UnitOfWork.enqueue`` adds, for paths that work on a connection
    without an ORM session, such as webhook intake. The caller wakes the worker after the
    commit.
    """
    job_id = uuid7()
    await connection.execute(
        _JOB_INSERT,
        {
            "id": job_id,
            "name": name,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "max_attempts": settings.job_max_attempts,
            "run_at": now,
            "locked_until": None,
            "locked_by": None,
            "last_error": None,
            "unique_key": None,
            "workspace_id": workspace_id,
            "created_at": now,
            "finished_at": None,
        },
    )
    return job_id


@asynccontextmanager
async def unit_of_work(rt: Runtime) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; commit when the block ends, roll back if it raises."""
    uow = UnitOfWork(rt, rt.sessionmaker())
    try:
        yield uow
    except BaseException as exc:
        await uow.finish(type(exc), exc, exc.__traceback__)
        raise
    await uow.finish(None, None, None)
