"""Contacts API: list and search, read, and staff edits."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.auth.dependencies import AgentDep
from frontdesk.contacts import service
from frontdesk.contacts.normalize import check_query_text
from frontdesk.contacts.schemas import ContactDetail, ContactOut, ContactUpdate
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery, Page
from frontdesk.enquiries.service import count_enquiries_by_contact
from frontdesk.workspaces.models import Workspace

router = APIRouter(prefix="/contacts", tags=["contacts"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such contact in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=Page[ContactOut], responses=_ERRORS)
@read_only
async def list_contacts(
    uow: UowDep,
    actor: AgentDep,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Text to find in the name, email or phone."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ContactOut]:
    """List the workspace's contacts, newest first."""
    contacts, next_cursor = await service.list_contacts(
        uow,
        workspace_id=actor.workspace_id,
        q=check_query_text(q, "q"),
        limit=limit,
        cursor=cursor,
    )
    return Page[ContactOut](
        items=[ContactOut.model_validate(contact) for contact in contacts],
        next_cursor=next_cursor,
    )


@router.get("/{contact_id}", response_model=ContactDetail, responses=_ERRORS)
@read_only
async def get_contact(uow: UowDep, actor: AgentDep, contact_id: uuid.UUID) -> ContactDetail:
    """Read a contact with the number of its enquiries (list them with /enquiries?contact_id=)."""
    contact = await service.get_contact(uow, workspace_id=actor.workspace_id, contact_id=contact_id)
    counts = await count_enquiries_by_contact(
        uow, workspace_id=actor.workspace_id, contact_ids=[contact.id]
    )
    return ContactDetail(
        **ContactOut.model_validate(contact).model_dump(),
        enquiries_count=counts.get(contact.id, 0),
    )


@router.patch(
    "/{contact_id}",
    response_model=ContactDetail,
    responses={**_ERRORS, 409: {"model": Problem, "description": "The email is taken."}},
)
async def update_contact(
    uow: UowDep, actor: AgentDep, contact_id: uuid.UUID, body: ContactUpdate
) -> ContactDetail:
    """Edit a contact. Sent fields overwrite the stored values; null clears one."""
    workspace = await uow.session.get(Workspace, actor.workspace_id)
    default_country = workspace.default_country if workspace else "US"
    contact = await service.update_contact(
        uow,
        workspace_id=actor.workspace_id,
        contact_id=contact_id,
        changes=body,
        default_country=default_country,
    )
    counts = await count_enquiries_by_contact(
        uow, workspace_id=actor.workspace_id, contact_ids=[contact.id]
    )
    return ContactDetail(
        **ContactOut.model_validate(contact).model_dump(),
        enquiries_count=counts.get(contact.id, 0),
    )
