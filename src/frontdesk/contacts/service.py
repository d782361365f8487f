"""Contacts: matching submissions to people, and staff edits."""

from __future__ import annotations

import uuid

import phonenumbers
import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from frontdesk.contacts.models import Contact
from frontdesk.contacts.normalize import (
    InvalidValue,
    fold_text,
    normalize_email,
    normalize_phone,
)
from frontdesk.contacts.schemas import ContactUpdate
from frontdesk.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.workspaces.models import Workspace

log = structlog.get_logger()


def contact_search_text(contact: Contact) -> str:
    parts = [contact.name, contact.email, contact.phone]
    return fold_text(" ".join(part for part in parts if part))


def search_condition(
    column: ColumnElement[str] | InstrumentedAttribute[str],
    query: str,
    default_country: str | None = None,
) -> sa.ColumnElement[bool]:
    """Build a case-insensitive substring test of ``query`` against a folded text column.

    LIKE wildcards in the query are escaped, so ``%`` and ``_`` match themselves. A query
    that looks like a phone number also matches its digits alone, so "+44 20 7946" finds
    the stored E.164 "+442079460000". With ``default_country`` a number written the
    national way also matches without its trunk prefix, so "(020) 7946-0000" finds it in a
    GB workspace.
    """
    folded = fold_text(query.strip())
    condition = column.contains(folded, autoescape=True)
    digits = "".join(ch for ch in folded if ch.isdigit())
    if len(digits) >= 3 and all(ch in "0123456789+-(). " for ch in folded):
        candidates = {digits} - {folded}
        prefix = _trunk_prefix(default_country) if default_country else None
        if prefix and not folded.startswith("+") and digits.startswith(prefix):
            national = digits[len(prefix) :]
            if len(national) >= 3:
                candidates.add(national)
        for candidate in sorted(candidates):
            condition = sa.or_(condition, column.contains(candidate, autoescape=True))
    return condition


def _trunk_prefix(country: str) -> str | None:
    """Return the digits that a country's national numbers start with, such as 0 in GB."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(country.upper())
    return metadata.national_prefix if metadata is not None else None


async def search_country(uow: UnitOfWork, workspace_id: uuid.UUID) -> str | None:
    """Return the workspace's default country, which search uses to read national numbers."""
    country: str | None = await uow.session.scalar(
        sa.select(Workspace.default_country).where(Workspace.id == workspace_id)
    )
    return country


async def get_contact(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    """Load a contact of the workspace; another workspace's contact is not found."""
    contact = await uow.session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise NotFound(f"No contact with id {contact_id} in this workspace.")
    return contact


def _email_taken() -> Conflict:
    message = (
        "Another contact of this workspace has this email; edit or merge that contact instead."
    )
    return Conflict(
        message,
        errors=[FieldError(field="email", message=message, code="email_taken")],
        code="email_taken",
    )


async def find_contact_by_email(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, email: str
) -> Contact | None:
    statement = sa.select(Contact).where(
        Contact.workspace_id == workspace_id, Contact.email == email
    )
    return (await uow.session.execute(statement)).scalar_one_or_none()


async def find_contact_by_phone(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, phone: str
) -> Contact | None:
    """Return the oldest contact with this phone; phones are not unique."""
    statement = (
        sa.select(Contact)
        .where(Contact.workspace_id == workspace_id, Contact.phone == phone)
        .order_by(Contact.created_at, Contact.id)
        .limit(1)
    )
    return (await uow.session.execute(statement)).scalar_one_or_none()


async def match_or_create_contact(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    email: str | None,
    phone: str | None,
    name: str | None,
) -> Contact:
    """Find the contact of a submission, or create one; fill only the fields it lacks.

    ``email`` and ``phone`` must already be normalized. The match is by email first, then
    by phone, so the email wins when the two point at different contacts. A submission
    never overwrites what a contact already has, because anyone can type anyone's email.
    """
    contact = None
    if email:
        contact = await find_contact_by_email(uow, workspace_id=workspace_id, email=email)
    if contact is None and phone:
        contact = await find_contact_by_phone(uow, workspace_id=workspace_id, phone=phone)
    if contact is None:
        contact = await _create_contact(
            uow, workspace_id=workspace_id, email=email, phone=phone, name=name
        )
        if contact.email == email and contact.phone == phone:
            return contact

    filled = False
    if not contact.name and name:
        contact.name = name
        filled = True
    if not contact.phone and phone:
        contact.phone = phone
        filled = True
    if filled:
        contact.search_text = contact_search_text(contact)
        contact.updated_at = uow.now()
        await uow.session.flush()
    if not contact.email and email:
        await _fill_email(uow, contact, email)
    return contact


async def _create_contact(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    email: str | None,
    phone: str | None,
    name: str | None,
) -> Contact:
    now = uow.now()
    contact = Contact(
        workspace_id=workspace_id,
        email=email,
        phone=phone,
        name=name,
        created_at=now,
        updated_at=now,
    )
    contact.search_text = contact_search_text(contact)
    try:
        async with uow.session.begin_nested():
            uow.session.add(contact)
    except IntegrityError:
        # A concurrent submission created a contact with this email after the lookup. The
        # unique index made this insert wait for that transaction to commit, so the row is
        # visible now.
        assert email is not None
        existing = await find_contact_by_email(uow, workspace_id=workspace_id, email=email)
        if existing is None:
            raise
        log.info("contact.create_raced", contact_id=str(existing.id))
        return existing
    log.info("contact.created", contact_id=str(contact.id), workspace_id=str(workspace_id))
    return contact


async def _fill_email(uow: UnitOfWork, contact: Contact, email: str) -> None:
    try:
        async with uow.session.begin_nested():
            contact.email = email
            contact.search_text = contact_search_text(contact)
            contact.updated_at = uow.now()
    except IntegrityError:
        # Another contact took this email concurrently; the enquiry still has it in its
        # answers, so leaving this contact without one loses nothing.
        await uow.session.refresh(contact)
        log.info("contact.email_fill_raced", contact_id=str(contact.id))


async def list_contacts(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Contact], str | None]:
    """Return one page of contacts, newest first, and the cursor of the next page."""
    statement = sa.select(Contact).where(Contact.workspace_id == workspace_id)
    if q and q.strip():
        country = await search_country(uow, workspace_id)
        statement = statement.where(search_condition(Contact.search_text, q, country))
    rows, next_cursor = await fetch_newest_first(
        uow.session, statement, Contact, cursor=cursor, limit=limit
    )
    return rows, next_cursor


async def update_contact(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    contact_id: uuid.UUID,
    changes: ContactUpdate,
    default_country: str,
) -> Contact:
    """Apply a staff edit: sent fields overwrite the stored ones.

    Raises ValidationFailed for an invalid email or phone and Conflict when another
    contact of the workspace has the email.
    """
    contact = await get_contact(uow, workspace_id=workspace_id, contact_id=contact_id)
    sent = changes.model_fields_set
    values = _normalized_update(changes, sent, default_country)

    if "email" in values and values["email"] and values["email"] != contact.email:
        other = await find_contact_by_email(uow, workspace_id=workspace_id, email=values["email"])
        if other is not None and other.id != contact.id:
            raise _email_taken()
    changed = {key: value for key, value in values.items() if getattr(contact, key) != value}
    if not changed:
        return contact
    try:
        async with uow.session.begin_nested():
            for key, value in changed.items():
                setattr(contact, key, value)
            contact.search_text = contact_search_text(contact)
            contact.updated_at = uow.now()
    except IntegrityError as exc:
        raise _email_taken() from exc
    log.info("contact.updated", contact_id=str(contact.id), fields=sorted(changed))
    return contact


def _normalized_update(
    changes: ContactUpdate, sent: set[str], default_country: str
) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    if "name" in sent:
        values["name"] = (changes.name or "").strip() or None
    if "notes" in sent:
        values["notes"] = changes.notes if changes.notes and changes.notes.strip() else None
    if "email" in sent:
        raw = (changes.email or "").strip()
        try:
            values["email"] = normalize_email(raw) if raw else None
        except InvalidValue as exc:
            raise ValidationFailed(
                "email", f"{exc.message} Send a valid email address.", exc.code
            ) from exc
    if "phone" in sent:
        raw = (changes.phone or "").strip()
        try:
            values["phone"] = normalize_phone(raw, default_country) if raw else None
        except InvalidValue as exc:
            raise ValidationFailed(
                "phone",
                f"{exc.message} Include the country code (for example +44) for a number "
                f"outside {default_country}.",
                exc.code,
            ) from exc
    return values
