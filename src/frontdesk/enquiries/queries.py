"""Reading enquiries: the workspace chokepoint, API views built in bulk, the list and timeline."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from frontdesk.auth.models import User
from frontdesk.contacts.models import Contact
from frontdesk.contacts.schemas import ContactSummary
from frontdesk.contacts.service import search_condition, search_country
from frontdesk.core.errors import NotFound
from frontdesk.core.pagination import Page, fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry, EnquiryActivity, EnquiryTag
from frontdesk.enquiries.schemas import AssigneeSummary, EnquiryOut


async def get_enquiry(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, enquiry_id: uuid.UUID
) -> Enquiry:
    """Load an enquiry of the workspace; another workspace's enquiry is not found."""
    enquiry = await uow.session.get(Enquiry, enquiry_id)
    if enquiry is None or enquiry.workspace_id != workspace_id:
        raise NotFound(f"No enquiry with id {enquiry_id} in this workspace.")
    return enquiry


async def enquiry_views(uow: UnitOfWork, enquiries: Sequence[Enquiry]) -> list[EnquiryOut]:
    """Build the API representation of enquiries with three queries, whatever their number."""
    if not enquiries:
        return []
    session = uow.session
    contact_ids = {e.contact_id for e in enquiries if e.contact_id is not None}
    assignee_ids = {e.assignee_id for e in enquiries if e.assignee_id is not None}
    enquiry_ids = [e.id for e in enquiries]

    contacts: dict[uuid.UUID, ContactSummary] = {}
    if contact_ids:
        rows = await session.execute(
            sa.select(Contact.id, Contact.name, Contact.email, Contact.phone).where(
                Contact.id.in_(contact_ids)
            )
        )
        for row in rows:
            contacts[row.id] = ContactSummary(
                id=row.id, name=row.name, email=row.email, phone=row.phone
            )

    assignees: dict[uuid.UUID, AssigneeSummary] = {}
    if assignee_ids:
        rows = await session.execute(
            sa.select(User.id, User.full_name).where(User.id.in_(assignee_ids))
        )
        for row in rows:
            assignees[row.id] = AssigneeSummary(id=row.id, full_name=row.full_name)

    tags: dict[uuid.UUID, list[str]] = defaultdict(list)
    rows = await session.execute(
        sa.select(EnquiryTag.enquiry_id, EnquiryTag.tag)
        .where(EnquiryTag.enquiry_id.in_(enquiry_ids))
        .order_by(EnquiryTag.tag)
    )
    for row in rows:
        tags[row.enquiry_id].append(row.tag)

    return [
        EnquiryOut(
            id=e.id,
            status=e.status,  # type: ignore[arg-type]
            source=e.source,
            source_details=e.source_details,
            subject=e.subject,
            answers=e.answers,
            consent=e.consent,
            form_id=e.form_id,
            form_version=e.form_version,
            contact=contacts.get(e.contact_id) if e.contact_id else None,
            assignee=assignees.get(e.assignee_id) if e.assignee_id else None,
            tags=tags.get(e.id, []),
            created_at=e.created_at,
            updated_at=e.updated_at,
        )
        for e in enquiries
    ]


async def enquiry_view(uow: UnitOfWork, enquiry: Enquiry) -> EnquiryOut:
    return (await enquiry_views(uow, [enquiry]))[0]


async def enquiry_api_dict(uow: UnitOfWork, enquiry: Enquiry) -> dict[str, Any]:
    """Return the enquiry exactly as GET /api/v1/enquiries/{id} returns it (event data)."""
    return (await enquiry_view(uow, enquiry)).model_dump(mode="json")


@dataclass
class EnquiryFilters:
    statuses: list[str] = field(default_factory=list)
    # A user id, "me" (the caller) or "none" (unassigned).
    assignee: uuid.UUID | Literal["me", "none"] | None = None
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    tag: str | None = None
    contact_id: uuid.UUID | None = None


async def list_enquiries(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    caller_id: uuid.UUID,
    filters: EnquiryFilters,
    limit: int,
    cursor: str | None,
) -> Page[EnquiryOut]:
    """Return one page of the workspace's enquiries, newest first by (created_at, id)."""
    statement = sa.select(Enquiry).where(Enquiry.workspace_id == workspace_id)
    if filters.statuses:
        statement = statement.where(Enquiry.status.in_(filters.statuses))
    if filters.assignee == "me":
        statement = statement.where(Enquiry.assignee_id == caller_id)
    elif filters.assignee == "none":
        statement = statement.where(Enquiry.assignee_id.is_(None))
    elif isinstance(filters.assignee, uuid.UUID):
        statement = statement.where(Enquiry.assignee_id == filters.assignee)
    if filters.source:
        statement = statement.where(Enquiry.source == filters.source)
    if filters.created_after:
        statement = statement.where(Enquiry.created_at >= filters.created_after)
    if filters.created_before:
        statement = statement.where(Enquiry.created_at < filters.created_before)
    if filters.contact_id:
        statement = statement.where(Enquiry.contact_id == filters.contact_id)
    if filters.tag:
        statement = statement.where(
            sa.exists().where(EnquiryTag.enquiry_id == Enquiry.id, EnquiryTag.tag == filters.tag)
        )
    if filters.q and filters.q.strip():
        country = await search_country(uow, workspace_id)
        statement = statement.outerjoin(Contact, Contact.id == Enquiry.contact_id).where(
            sa.or_(
                search_condition(Enquiry.search_text, filters.q, country),
                search_condition(Contact.search_text, filters.q, country),
            )
        )
    rows, next_cursor = await fetch_newest_first(
        uow.session, statement, Enquiry, cursor=cursor, limit=limit
    )
    return Page[EnquiryOut](items=await enquiry_views(uow, rows), next_cursor=next_cursor)


async def list_activities(uow: UnitOfWork, enquiry: Enquiry) -> list[EnquiryActivity]:
    """Return the enquiry's timeline, oldest first."""
    statement = (
        sa.select(EnquiryActivity)
        .where(EnquiryActivity.enquiry_id == enquiry.id)
        .order_by(EnquiryActivity.created_at, EnquiryActivity.id)
    )
    return list((await uow.session.execute(statement)).scalars())


async def count_enquiries_by_contact(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not contact_ids:
        return {}
    statement = (
        sa.select(Enquiry.contact_id, sa.func.count())
        .where(Enquiry.workspace_id == workspace_id, Enquiry.contact_id.in_(contact_ids))
        .group_by(Enquiry.contact_id)
    )
    rows = await uow.session.execute(statement)
    return {row[0]: int(row[1]) for row in rows if row[0] is not None}
