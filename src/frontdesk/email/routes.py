"""Outbox API (the emails a workspace sent or queued) and the dead-letter job views.

Workspace admins see their workspace's emails and jobs; the instance administrator sees all,
including account emails (verification, password reset) that belong to no workspace.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from frontdesk.auth.dependencies import AdminDep, InstanceAdminDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery
from frontdesk.email import outbox
from frontdesk.email.schemas import JobOut, JobPage, OutboxMessageDetail, OutboxPage

router = APIRouter(tags=["outbox"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such email or job, or not yours."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_RETRY_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    409: {"model": Problem, "description": "The job is not dead."},
}

MessageStatus = Literal["queued", "sent", "failed", "suppressed"]
JobStatus = Literal["pending", "running", "succeeded", "dead"]
# Control characters are never part of a valid filter, and PostgreSQL rejects NUL in text.
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
ToQuery = Annotated[
    str | None,
    Query(max_length=320, pattern=NO_CONTROLS, description="Recipient address, case-insensitive."),
]
KindQuery = Annotated[
    str | None, Query(max_length=50, pattern=NO_CONTROLS, description="Kind of email.")
]
JobNameQuery = Annotated[str | None, Query(max_length=100, pattern=NO_CONTROLS)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def _detail(message: object) -> OutboxMessageDetail:
    return OutboxMessageDetail.model_validate(message)


@router.get("/outbox", response_model=OutboxPage, responses=_ERRORS)
@read_only
async def list_outbox(
    uow: UowDep,
    actor: AdminDep,
    to: ToQuery = None,
    kind: KindQuery = None,
    status: MessageStatus | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> OutboxPage:
    """List this workspace's emails, newest first."""
    return await outbox.list_messages(
        uow,
        workspace_id=actor.workspace_id,
        to=to,
        kind=kind,
        status=status,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/outbox/{email_id}",
    response_model=OutboxMessageDetail,
    response_model_by_alias=True,
    responses=_ERRORS,
)
@read_only
async def get_outbox_message(
    uow: UowDep, actor: AdminDep, email_id: uuid.UUID
) -> OutboxMessageDetail:
    """Return one of this workspace's emails with its bodies and headers."""
    return _detail(await outbox.get_message(uow, email_id, workspace_id=actor.workspace_id))


@router.get("/admin/outbox", response_model=OutboxPage, responses=_ERRORS)
@read_only
async def list_all_outbox(
    uow: UowDep,
    admin: InstanceAdminDep,
    to: ToQuery = None,
    kind: KindQuery = None,
    status: MessageStatus | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> OutboxPage:
    """List every email of the instance, newest first (instance administrator)."""
    return await outbox.list_messages(
        uow, workspace_id=None, to=to, kind=kind, status=status, cursor=cursor, limit=limit
    )


@router.get(
    "/admin/outbox/{email_id}",
    response_model=OutboxMessageDetail,
    response_model_by_alias=True,
    responses=_ERRORS,
)
@read_only
async def get_any_outbox_message(
    uow: UowDep, admin: InstanceAdminDep, email_id: uuid.UUID
) -> OutboxMessageDetail:
    """Return any email with its bodies and headers (instance administrator)."""
    return _detail(await outbox.get_message(uow, email_id, workspace_id=None))


@router.get("/jobs", response_model=JobPage, responses=_ERRORS)
@read_only
async def list_workspace_jobs(
    uow: UowDep,
    actor: AdminDep,
    status: JobStatus | None = None,
    name: JobNameQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> JobPage:
    """List this workspace's background jobs, newest first; `status=dead` shows failures."""
    return await outbox.list_jobs(
        uow,
        workspace_id=actor.workspace_id,
        status=status,
        name=name,
        cursor=cursor,
        limit=limit,
    )


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=_RETRY_ERRORS)
async def retry_workspace_job(uow: UowDep, actor: AdminDep, job_id: uuid.UUID) -> JobOut:
    """Queue one of this workspace's dead jobs again."""
    job = await outbox.retry_job(uow, job_id, workspace_id=actor.workspace_id)
    return JobOut.model_validate(job)


@router.get("/admin/jobs", response_model=JobPage, responses=_ERRORS)
@read_only
async def list_all_jobs(
    uow: UowDep,
    admin: InstanceAdminDep,
    status: JobStatus | None = None,
    name: JobNameQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> JobPage:
    """List every background job, newest first; `status=dead` shows the dead letters."""
    return await outbox.list_jobs(
        uow, workspace_id=None, status=status, name=name, cursor=cursor, limit=limit
    )


@router.post("/admin/jobs/{job_id}/retry", response_model=JobOut, responses=_RETRY_ERRORS)
async def retry_any_job(uow: UowDep, admin: InstanceAdminDep, job_id: uuid.UUID) -> JobOut:
    """Queue any dead job again (instance administrator)."""
    job = await outbox.retry_job(uow, job_id, workspace_id=None)
    return JobOut.model_validate(job)
