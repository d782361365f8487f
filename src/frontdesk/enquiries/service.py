"""Enquiry use cases: creation, staff changes, tags; each change is on the timeline and an event."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite

from frontdesk.contacts.models import Contact
from frontdesk.contacts.normalize import InvalidValue, fold_text, normalize_email, normalize_phone
from frontdesk.contacts.service import match_or_create_contact
from frontdesk.core.errors import FieldError, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry, EnquiryActivity, EnquiryTag
from frontdesk.enquiries.queries import (
    count_enquiries_by_contact,
    enquiry_api_dict,
    enquiry_view,
    get_enquiry,
)
from frontdesk.enquiries.schemas import (
    MAX_TAG_LENGTH,
    MAX_TAGS_PER_ENQUIRY,
    EnquiryCreate,
    EnquiryOut,
    EnquiryUpdate,
)
from frontdesk.notifications.service import notify_enquiry_assigned, notify_enquiry_created
from frontdesk.workspaces.models import Membership

__all__ = [
    "add_tags",
    "count_enquiries_by_contact",
    "create_enquiry",
    "create_manual_enquiry",
    "normalize_tag",
    "remove_tag",
    "update_enquiry",
]

log = structlog.get_logger()


def normalize_tag(raw: str) -> str:
    """Return a tag trimmed and lower-cased; raise ValueError if it is empty, too long or
    contains characters that do not print (control, invisible or separator characters)."""
    tag = raw.strip().lower()
    if not tag:
        raise ValueError("A tag cannot be empty.")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"A tag has at most {MAX_TAG_LENGTH} characters.")
    if not tag.isprintable():
        raise ValueError(
            "A tag cannot contain characters that do not print, such as control characters, "
            "zero-width spaces or line separators; remove them."
        )
    return tag


def _normalize_tags(raw_tags: Sequence[str], field: str) -> list[str]:
    tags: list[str] = []
    errors: list[FieldError] = []
    for index, raw in enumerate(raw_tags):
        try:
            tag = normalize_tag(raw)
        except ValueError as exc:
            errors.append(
                FieldError(field=f"{field}.{index}", message=str(exc), code="invalid_tag")
            )
            continue
        if tag not in tags:
            tags.append(tag)
    if errors:
        raise ValidationFailed.many(errors)
    return tags


def answers_search_text(subject: str | None, answers: dict[str, Any]) -> str:
    """Return the folded text of an enquiry's subject and answers for the list's text filter."""
    parts: list[str] = [subject] if subject else []
    for value in answers.values():
        values = value if isinstance(value, list) else [value]
        parts.extend(
            str(item)
            for item in values
            if isinstance(item, (str, int, float)) and not isinstance(item, bool)
        )
    return fold_text(" ".join(parts))


async def ensure_member(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID, field: str
) -> None:
    membership = await uow.session.get(Membership, (workspace_id, user_id))
    if membership is None:
        raise ValidationFailed(
            field,
            f"User {user_id} is not a member of this workspace; assign a member.",
            "not_a_member",
        )


def _add_activities(
    uow: UnitOfWork,
    enquiry: Enquiry,
    actor_id: uuid.UUID | None,
    entries: Sequence[tuple[str, dict[str, Any]]],
) -> None:
    # uuid7 ids made in the same millisecond are not ordered, so the ids of one change are
    # sorted before use: the timeline orders by (created_at, id).
    ids = sorted(uuid7() for _ in entries)
    now = uow.now()
    for activity_id, (kind, data) in zip(ids, entries, strict=True):
        uow.session.add(
            EnquiryActivity(
                id=activity_id,
                workspace_id=enquiry.workspace_id,
                enquiry_id=enquiry.id,
                type=kind,
                actor_id=actor_id,
                data=data,
                created_at=now,
            )
        )


async def _insert_tags(uow: UnitOfWork, enquiry: Enquiry, tags: Iterable[str]) -> None:
    rows = [
        {"enquiry_id": enquiry.id, "tag": tag, "workspace_id": enquiry.workspace_id} for tag in tags
    ]
    if not rows:
        return
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # A concurrent request may add the same tag; the primary key keeps one row.
    statement = insert(EnquiryTag).values(rows).on_conflict_do_nothing()
    await uow.session.execute(statement)


async def _current_tags(uow: UnitOfWork, enquiry_id: uuid.UUID) -> list[str]:
    statement = sa.select(EnquiryTag.tag).where(EnquiryTag.enquiry_id == enquiry_id)
    return list((await uow.session.execute(statement)).scalars())


async def create_enquiry(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    contact: Contact | None,
    source: str,
    source_details: dict[str, Any],
    answers: dict[str, Any],
    consent: dict[str, Any] | None = None,
    subject: str | None = None,
    form_id: uuid.UUID | None = None,
    form_version: int | None = None,
    status: str = "new",
    assignee_id: uuid.UUID | None = None,
    tags: Sequence[str] = (),
    actor_id: uuid.UUID | None = None,
) -> tuple[Enquiry, dict[str, Any]]:
    """Insert an enquiry with its timeline entry, event and notifications.

    ``answers`` and ``tags`` must already be validated, and ``assignee_id`` must be a member.
    Returns the enquiry and its API representation (the data of ``enquiry.created``).
    """
    now = uow.now()
    enquiry = Enquiry(
        id=uuid7(),
        workspace_id=workspace_id,
        contact_id=contact.id if contact else None,
        form_id=form_id,
        form_version=form_version,
        source=source,
        status=status,
        assignee_id=assignee_id,
        subject=subject,
        answers=answers,
        consent=consent or {},
        source_details=source_details,
        search_text=answers_search_text(subject, answers),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(enquiry)
    await uow.session.flush()
    entries: list[tuple[str, dict[str, Any]]] = [("created", {"source": source, "status": status})]
    if assignee_id is not None:
        entries.append(("assigned", {"from": None, "to": str(assignee_id)}))
    if tags:
        await _insert_tags(uow, enquiry, tags)
        entries.append(("tagged", {"tags": list(tags)}))
    _add_activities(uow, enquiry, actor_id, entries)
    await uow.session.flush()

    data = await enquiry_api_dict(uow, enquiry)
    uow.record_event("enquiry.created", data, workspace_id=workspace_id)
    await notify_enquiry_created(
        uow, workspace_id=workspace_id, enquiry=data, exclude_user_id=actor_id
    )
    if assignee_id is not None:
        await notify_enquiry_assigned(
            uow, workspace_id=workspace_id, enquiry=data, assignee_id=assignee_id, actor_id=actor_id
        )
    log.info(
        "enquiry.created",
        enquiry_id=str(enquiry.id),
        workspace_id=str(workspace_id),
        source=source,
    )
    return enquiry, data


async def _record_update(
    uow: UnitOfWork,
    enquiry: Enquiry,
    actor_id: uuid.UUID | None,
    entries: list[tuple[str, dict[str, Any]]],
) -> EnquiryOut:
    enquiry.updated_at = uow.now()
    _add_activities(uow, enquiry, actor_id, entries)
    await uow.session.flush()
    view = await enquiry_view(uow, enquiry)
    uow.record_event(
        "enquiry.updated", view.model_dump(mode="json"), workspace_id=enquiry.workspace_id
    )
    log.info(
        "enquiry.updated",
        enquiry_id=str(enquiry.id),
        changes=[kind for kind, _ in entries],
    )
    return view


async def update_enquiry(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry_id: uuid.UUID,
    changes: EnquiryUpdate,
    actor_id: uuid.UUID,
) -> EnquiryOut:
    """Change the status, assignee or subject. A request that changes nothing records nothing."""
    enquiry = await get_enquiry(uow, workspace_id=workspace_id, enquiry_id=enquiry_id)
    sent = changes.model_fields_set
    entries: list[tuple[str, dict[str, Any]]] = []

    if "status" in sent:
        if changes.status is None:
            raise ValidationFailed(
                "status", "The status cannot be null; send one of the statuses.", "null"
            )
        if changes.status != enquiry.status:
            entries.append(("status_changed", {"from": enquiry.status, "to": changes.status}))
            enquiry.status = changes.status
    assigned_to: uuid.UUID | None = None
    if "assignee_id" in sent and changes.assignee_id != enquiry.assignee_id:
        if changes.assignee_id is not None:
            await ensure_member(
                uow, workspace_id=workspace_id, user_id=changes.assignee_id, field="assignee_id"
            )
            assigned_to = changes.assignee_id
        entries.append(
            (
                "assigned",
                {
                    "from": str(enquiry.assignee_id) if enquiry.assignee_id else None,
                    "to": str(changes.assignee_id) if changes.assignee_id else None,
                },
            )
        )
        enquiry.assignee_id = changes.assignee_id
    if "subject" in sent:
        subject = (changes.subject or "").strip() or None
        if subject != enquiry.subject:
            entries.append(
                ("updated", {"fields": {"subject": {"from": enquiry.subject, "to": subject}}})
            )
            enquiry.subject = subject
            enquiry.search_text = answers_search_text(subject, enquiry.answers)

    if not entries:
        return await enquiry_view(uow, enquiry)
    view = await _record_update(uow, enquiry, actor_id, entries)
    if assigned_to is not None:
        await notify_enquiry_assigned(
            uow,
            workspace_id=workspace_id,
            enquiry=view.model_dump(mode="json"),
            assignee_id=assigned_to,
            actor_id=actor_id,
        )
    return view


async def add_tags(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry_id: uuid.UUID,
    tags: Sequence[str],
    actor_id: uuid.UUID,
) -> EnquiryOut:
    """Add tags; tags the enquiry already has are left as they are."""
    enquiry = await get_enquiry(uow, workspace_id=workspace_id, enquiry_id=enquiry_id)
    wanted = _normalize_tags(tags, "tags")
    current = await _current_tags(uow, enquiry.id)
    new_tags = [tag for tag in wanted if tag not in current]
    if not new_tags:
        return await enquiry_view(uow, enquiry)
    if len(current) + len(new_tags) > MAX_TAGS_PER_ENQUIRY:
        raise ValidationFailed(
            "tags",
            f"An enquiry has at most {MAX_TAGS_PER_ENQUIRY} tags; remove some first.",
            "too_many_tags",
        )
    await _insert_tags(uow, enquiry, new_tags)
    return await _record_update(uow, enquiry, actor_id, [("tagged", {"tags": new_tags})])


async def remove_tag(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    enquiry_id: uuid.UUID,
    tag: str,
    actor_id: uuid.UUID,
) -> EnquiryOut:
    """Remove a tag; removing a tag the enquiry does not have changes nothing."""
    enquiry = await get_enquiry(uow, workspace_id=workspace_id, enquiry_id=enquiry_id)
    try:
        normalized = normalize_tag(tag)
    except ValueError as exc:
        raise ValidationFailed("tag", str(exc), "invalid_tag") from exc
    result = await uow.session.execute(
        sa.delete(EnquiryTag).where(
            EnquiryTag.enquiry_id == enquiry.id, EnquiryTag.tag == normalized
        )
    )
    if not getattr(result, "rowcount", 0):
        return await enquiry_view(uow, enquiry)
    return await _record_update(uow, enquiry, actor_id, [("untagged", {"tags": [normalized]})])


async def create_manual_enquiry(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID,
    data: EnquiryCreate,
    default_country: str,
) -> tuple[Enquiry, dict[str, Any]]:
    """Create an enquiry entered by staff (source "manual"), matching or creating its contact.

    No acknowledgement email is sent: staff entering an enquiry by hand are recording a
    conversation that already took place.
    """
    errors: list[FieldError] = []
    name = (data.contact.name or "").strip() or None
    email = phone = None
    if data.contact.email and data.contact.email.strip():
        try:
            email = normalize_email(data.contact.email)
        except InvalidValue as exc:
            errors.append(FieldError(field="contact.email", message=exc.message, code=exc.code))
    if data.contact.phone and data.contact.phone.strip():
        try:
            phone = normalize_phone(data.contact.phone, default_country)
        except InvalidValue as exc:
            errors.append(FieldError(field="contact.phone", message=exc.message, code=exc.code))
    if not errors and not (name or email or phone):
        errors.append(
            FieldError(
                field="contact",
                message="Give the contact's name, email or phone.",
                code="missing",
            )
        )
    if not data.message.strip():
        errors.append(
            FieldError(field="message", message="The message cannot be blank.", code="missing")
        )
    tags: list[str] = []
    try:
        tags = _normalize_tags(data.tags, "tags")
    except ValidationFailed as exc:
        # Reported with the contact's and message's errors, not after they are fixed.
        errors.extend(exc.errors)
    if errors:
        raise ValidationFailed.many(errors)
    if data.assignee_id is not None:
        await ensure_member(
            uow, workspace_id=workspace_id, user_id=data.assignee_id, field="assignee_id"
        )

    contact = await match_or_create_contact(
        uow, workspace_id=workspace_id, email=email, phone=phone, name=name
    )
    return await create_enquiry(
        uow,
        workspace_id=workspace_id,
        contact=contact,
        source="manual",
        source_details={"created_by": str(actor_id)},
        answers={"message": data.message.strip()},
        subject=(data.subject or "").strip() or None,
        status=data.status,
        assignee_id=data.assignee_id,
        tags=tags,
        actor_id=actor_id,
    )


async def unassign_member(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID, actor_id: uuid.UUID | None
) -> int:
    """Unassign every enquiry of the workspace assigned to ``user_id``; returns how many.

    Called when a member leaves or is removed, so that their enquiries show up again under
    ``assignee=none`` instead of pointing at someone who can no longer answer them.
    """
    enquiries = (
        await uow.session.scalars(
            sa.select(Enquiry).where(
                Enquiry.workspace_id == workspace_id, Enquiry.assignee_id == user_id
            )
        )
    ).all()
    for enquiry in enquiries:
        enquiry.assignee_id = None
        await _record_update(
            uow, enquiry, actor_id, [("assigned", {"from": str(user_id), "to": None})]
        )
    return len(enquiries)
