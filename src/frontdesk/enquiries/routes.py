"""Enquiries API: list with filters, read, change, tag, timeline, and manual creation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.auth.dependencies import AgentDep
from frontdesk.contacts.normalize import check_query_text
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem, ValidationFailed
from frontdesk.core.fields import DateTimeText
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery, Page
from frontdesk.core.query_params import parse_assignee, parse_statuses, time_range
from frontdesk.enquiries import queries, service
from frontdesk.enquiries.schemas import (
    SOURCES,
    STATUSES,
    ActivityOut,
    EnquiryCreate,
    EnquiryOut,
    EnquiryUpdate,
    TagsIn,
    Timeline,
)
from frontdesk.workspaces.models import Workspace

router = APIRouter(prefix="/enquiries", tags=["enquiries"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such enquiry in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=Page[EnquiryOut], responses=_ERRORS)
@read_only
async def list_enquiries(
    uow: UowDep,
    actor: AgentDep,
    status: Annotated[
        list[str],
        Query(description="Statuses to include; repeat the parameter or separate with commas."),
    ] = [],  # noqa: B006  (FastAPI copies query defaults)
    assignee: Annotated[
        str | None, Query(description="A user id, 'me' or 'none' (unassigned).")
    ] = None,
    source: Annotated[str | None, Query(description="form, manual or email")] = None,
    created_after: Annotated[
        DateTimeText | None, Query(description="ISO 8601; included. Without an offset: UTC.")
    ] = None,
    created_before: Annotated[
        DateTimeText | None, Query(description="ISO 8601; excluded. Without an offset: UTC.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Text to find, case-insensitively, in the subject, answers and contact.",
        ),
    ] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    contact_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[EnquiryOut]:
    """List the workspace's enquiries, newest first; pass `next_cursor` as `cursor` for more."""
    if source is not None and source not in SOURCES:
        raise ValidationFailed("source", f"Use one of: {', '.join(SOURCES)}.", "invalid_choice")
    normalized_tag = None
    if tag is not None:
        try:
            normalized_tag = service.normalize_tag(tag)
        except ValueError as exc:
            raise ValidationFailed("tag", str(exc), "invalid_tag") from exc
    after, before = time_range(created_after, created_before, ("created_after", "created_before"))
    filters = queries.EnquiryFilters(
        statuses=parse_statuses(status, STATUSES),
        assignee=parse_assignee(assignee),
        source=source or None,
        created_after=after,
        created_before=before,
        q=check_query_text(q, "q"),
        tag=normalized_tag,
        contact_id=contact_id,
    )
    return await queries.list_enquiries(
        uow,
        workspace_id=actor.workspace_id,
        caller_id=actor.user_id,
        filters=filters,
        limit=limit,
        cursor=cursor,
    )


@router.post("", status_code=201, response_model=EnquiryOut, responses=_ERRORS)
async def create_enquiry(uow: UowDep, actor: AgentDep, body: EnquiryCreate) -> EnquiryOut:
    """Enter an enquiry by hand (source "manual"), for example from a phone call."""
    workspace = await uow.session.get(Workspace, actor.workspace_id)
    default_country = workspace.default_country if workspace else "US"
    _enquiry, data = await service.create_manual_enquiry(
        uow,
        workspace_id=actor.workspace_id,
        actor_id=actor.user_id,
        data=body,
        default_country=default_country,
    )
    return EnquiryOut.model_validate(data)


@router.get("/{enquiry_id}", response_model=EnquiryOut, responses=_ERRORS)
@read_only
async def get_enquiry(uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID) -> EnquiryOut:
    """Read an enquiry with its contact, assignee and tags."""
    enquiry = await queries.get_enquiry(uow, workspace_id=actor.workspace_id, enquiry_id=enquiry_id)
    return await queries.enquiry_view(uow, enquiry)


@router.patch("/{enquiry_id}", response_model=EnquiryOut, responses=_ERRORS)
async def update_enquiry(
    uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID, body: EnquiryUpdate
) -> EnquiryOut:
    """Change the status (any status may follow any other), the assignee or the subject."""
    return await service.update_enquiry(
        uow,
        workspace_id=actor.workspace_id,
        enquiry_id=enquiry_id,
        changes=body,
        actor_id=actor.user_id,
    )


@router.post("/{enquiry_id}/tags", response_model=EnquiryOut, responses=_ERRORS)
async def add_tags(uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID, body: TagsIn) -> EnquiryOut:
    """Add tags (trimmed, lower-cased, 1 to 50 characters); existing tags are kept once."""
    return await service.add_tags(
        uow,
        workspace_id=actor.workspace_id,
        enquiry_id=enquiry_id,
        tags=body.tags,
        actor_id=actor.user_id,
    )


@router.delete("/{enquiry_id}/tags/{tag:path}", response_model=EnquiryOut, responses=_ERRORS)
async def remove_tag(uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID, tag: str) -> EnquiryOut:
    """Remove a tag; removing an absent tag changes nothing and succeeds."""
    return await service.remove_tag(
        uow,
        workspace_id=actor.workspace_id,
        enquiry_id=enquiry_id,
        tag=tag,
        actor_id=actor.user_id,
    )


@router.get("/{enquiry_id}/timeline", response_model=Timeline, responses=_ERRORS)
@read_only
async def get_timeline(uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID) -> Timeline:
    """List the enquiry's activities, oldest first."""
    enquiry = await queries.get_enquiry(uow, workspace_id=actor.workspace_id, enquiry_id=enquiry_id)
    activities = await queries.list_activities(uow, enquiry)
    return Timeline(items=[ActivityOut.model_validate(activity) for activity in activities])
