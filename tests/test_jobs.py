"""The durable job queue: retries with backoff, dead letters, leases, scheduling."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from frontdesk.core.clock import FrozenClock
from frontdesk.core.jobs import (
    PermanentFailure,
    RetryLater,
    Worker,
    job_handler,
    periodic,
    schedule_periodic,
)
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime

CALLS: list[dict[str, Any]] = []
FAILURES_LEFT: dict[str, int] = {}


@job_handler("test.flaky")
async def flaky(uow: Any, payload: dict[str, Any]) -> None:
    CALLS.append(payload)
    key = payload["key"]
    if FAILURES_LEFT.get(key, 0) > 0:
        FAILURES_LEFT[key] -= 1
        raise ConnectionError("server unavailable")


@job_handler("test.permanent")
async def permanent(uow: Any, payload: dict[str, Any]) -> None:
    raise PermanentFailure("recipient does not exist")


@job_handler("test.retry_after")
async def retry_after(uow: Any, payload: dict[str, Any]) -> None:
    raise RetryLater("rate limited", delay_seconds=120)


@periodic("test.tick", every_seconds=60)
async def tick(uow: Any, payload: dict[str, Any]) -> None:
    CALLS.append({"tick": True})


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAILURES_LEFT.clear()


async def enqueue(runtime: Runtime, name: str, payload: dict[str, Any], **options: Any) -> Any:
    async with unit_of_work(runtime) as uow:
        job = uow.enqueue(name, payload, **options)
    return job.id


async def load(runtime: Runtime, job_id: Any) -> Job:
    async with runtime.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def test_job_runs_once(runtime: Runtime) -> None:
    job_id = await enqueue(runtime, "test.flaky", {"key": "a"})
    assert await Worker(runtime).run_until_idle() == 1
    job = await load(runtime, job_id)
    assert job.status == "succeeded"
    assert job.attempts == 1
    assert CALLS == [{"key": "a"}]


async def test_job_retries_with_backoff(runtime: Runtime, clock: FrozenClock) -> None:
    FAILURES_LEFT["b"] = 2
    job_id = await enqueue(runtime, "test.flaky", {"key": "b"})
    worker = Worker(runtime)
    await worker.run_until_idle()
    job = await load(runtime, job_id)
    assert job.status == "pending"
    assert job.attempts == 1
    assert job.last_error == "ConnectionError: server unavailable"
    assert job.run_at > clock.now()
    # Not due yet: nothing runs until the clock passes run_at.
    assert await worker.run_until_idle() == 0
    clock.advance(seconds=1)
    await worker.run_until_idle()
    clock.advance(seconds=1)
    await worker.run_until_idle()
    job = await load(runtime, job_id)
    assert job.status == "succeeded"
    assert job.attempts == 3
    assert len(CALLS) == 3


async def test_job_dead_after_max_attempts(runtime: Runtime, clock: FrozenClock) -> None:
    FAILURES_LEFT["c"] = 100
    job_id = await enqueue(runtime, "test.flaky", {"key": "c"}, max_attempts=3)
    worker = Worker(runtime)
    for _ in range(5):
        await worker.run_until_idle()
        clock.advance(seconds=1)
    job = await load(runtime, job_id)
    assert job.status == "dead"
    assert job.attempts == 3
    assert job.finished_at is not None


async def test_permanent_failure_is_dead_at_once(runtime: Runtime) -> None:
    job_id = await enqueue(runtime, "test.permanent", {})
    await Worker(runtime).run_until_idle()
    job = await load(runtime, job_id)
    assert job.status == "dead"
    assert job.attempts == 1
    assert "recipient does not exist" in (job.last_error or "")


async def test_retry_later_honours_delay(runtime: Runtime, clock: FrozenClock) -> None:
    job_id = await enqueue(runtime, "test.retry_after", {})
    await Worker(runtime).run_until_idle()
    job = await load(runtime, job_id)
    assert job.status == "pending"
    assert job.run_at >= clock.now() + timedelta(seconds=120)


async def test_unknown_job_name_is_dead(runtime: Runtime) -> None:
    job_id = await enqueue(runtime, "test.nobody_handles_this", {})
    await Worker(runtime).run_until_idle()
    job = await load(runtime, job_id)
    assert job.status == "dead"
    assert "no handler" in (job.last_error or "")


async def test_rolled_back_job_never_runs(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(runtime) as uow:
            uow.enqueue("test.flaky", {"key": "rolled back"})
            raise RuntimeError("the change failed")
    assert await Worker(runtime).run_until_idle() == 0
    assert CALLS == []


async def test_expired_lease_is_claimed_again(runtime: Runtime, clock: FrozenClock) -> None:
    job_id = await enqueue(runtime, "test.flaky", {"key": "lease"})
    crashed = Worker(runtime, name="crashed-worker")
    assert await crashed.claim(limit=1) == [job_id]
    # The worker died holding the lease; nobody can claim the job until the lease ends.
    survivor = Worker(runtime, name="survivor")
    assert await survivor.claim(limit=1) == []
    clock.advance(seconds=runtime.settings.job_lease_seconds + 1)
    assert await survivor.claim(limit=1) == [job_id]
    await survivor.run_job(job_id)
    job = await load(runtime, job_id)
    assert job.status == "succeeded"
    assert job.attempts == 2


async def test_concurrent_workers_claim_disjoint_jobs(runtime: Runtime) -> None:
    for index in range(20):
        await enqueue(runtime, "test.flaky", {"key": f"k{index}"})
    workers = [Worker(runtime, name=f"w{index}") for index in range(4)]
    claims = await asyncio.gather(*(worker.claim(limit=10) for worker in workers))
    claimed = [job_id for batch in claims for job_id in batch]
    assert len(claimed) == 20
    assert len(set(claimed)) == 20


async def test_periodic_occurrence_enqueued_once(runtime: Runtime, clock: FrozenClock) -> None:
    for _ in range(3):
        async with unit_of_work(runtime) as uow:
            await schedule_periodic(uow)
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.name == "test.tick")
        )
    assert count == 1
    clock.advance(seconds=60)
    async with unit_of_work(runtime) as uow:
        await schedule_periodic(uow)
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.name == "test.tick")
        )
    assert count == 2


async def test_worker_stop_finishes_jobs_in_flight(runtime: Runtime) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @job_handler("test.slow")
    async def slow(uow: Any, payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()
        CALLS.append(payload)

    job_id = await enqueue(runtime, "test.slow", {"key": "slow"})
    worker = Worker(runtime)
    worker.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    stopping = asyncio.create_task(worker.stop(grace_seconds=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, timeout=5)
    job = await load(runtime, job_id)
    assert job.status == "succeeded"
