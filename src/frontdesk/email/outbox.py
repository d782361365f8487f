"""Read the outbox and the job queue for admins, and retry dead jobs.

A ``workspace_id`` of None means the instance administrator's view: every row, including
account emails and jobs that belong to no workspace.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import Conflict, NotFound
from frontdesk.core.jobs import retry_dead_job
from frontdesk.core.models import Job
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.models import EmailMessage
from frontdesk.email.schemas import JobOut, JobPage, OutboxMessage, OutboxPage

log = structlog.get_logger()

JOB_STATUSES = ("pending", "running", "succeeded", "dead")


async def list_messages(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID | None,
    to: str | None,
    kind: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> OutboxPage:
    """List messages newest first; ``to`` matches the whole address, case-insensitively."""
    query = sa.select(EmailMessage)
    if workspace_id is not None:
        query = query.where(EmailMessage.workspace_id == workspace_id)
    if to:
        query = query.where(sa.func.lower(EmailMessage.to_address) == to.strip().lower())
    if kind:
        query = query.where(EmailMessage.kind == kind)
    if status:
        query = query.where(EmailMessage.status == status)
    rows, next_cursor = await fetch_newest_first(
        uow.session, query, EmailMessage, cursor=cursor, limit=limit
    )
    return OutboxPage(
        items=[OutboxMessage.model_validate(row) for row in rows], next_cursor=next_cursor
    )


async def get_message(
    uow: UnitOfWork, message_id: uuid.UUID, *, workspace_id: uuid.UUID | None
) -> EmailMessage:
    """Load one message; another workspace's message is not found."""
    query = sa.select(EmailMessage).where(EmailMessage.id == message_id)
    if workspace_id is not None:
        query = query.where(EmailMessage.workspace_id == workspace_id)
    message = await uow.session.scalar(query)
    if message is None:
        raise NotFound(f"No email with id {message_id} exists in the outbox.")
    return message


async def list_jobs(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID | None,
    status: str | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> JobPage:
    """List jobs newest first."""
    query = sa.select(Job)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    if status:
        query = query.where(Job.status == status)
    if name:
        query = query.where(Job.name == name)
    rows, next_cursor = await fetch_newest_first(
        uow.session, query, Job, cursor=cursor, limit=limit
    )
    return JobPage(items=[JobOut.model_validate(row) for row in rows], next_cursor=next_cursor)


async def retry_job(uow: UnitOfWork, job_id: uuid.UUID, *, workspace_id: uuid.UUID | None) -> Job:
    """Put a dead job back in the queue with its attempts reset."""
    query = sa.select(Job).where(Job.id == job_id).with_for_update()
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    job = await uow.session.scalar(query)
    if job is None:
        raise NotFound(f"No job with id {job_id} exists.")
    if job.status != "dead":
        raise Conflict(
            f"Job {job_id} is {job.status}, and only dead jobs can be retried.", code="job_not_dead"
        )
    await retry_dead_job(uow, job)
    log.info("job.retry_requested", job_id=str(job.id), job=job.name)
    return job
