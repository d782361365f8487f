"""Canned responses: reusable replies with variables, rendered in the email template sandbox.

A body is Markdown, like a message, with Jinja2 tags such as ``{{ contact.name }}``. It
renders in the Markdown sandbox of frontdesk.email.templating: loops and calls are limited,
and every printed value is escaped for Markdown, so a contact named ``**x**`` cannot add
formatting to the reply.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from frontdesk.auth.models import User
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import CannedResponse, ChatVisitor, Conversation
from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.text import is_blank
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import templating
from frontdesk.workspaces.models import Workspace

# The variables a body may use; each is an object with the attributes listed.
VARIABLES = [
    templating.VariableSpec(
        name="contact", type="object", description="name and email of the conversation's contact"
    ),
    templating.VariableSpec(name="member", type="object", description="name of the member"),
    templating.VariableSpec(name="workspace", type="object", description="name of the workspace"),
]
# Rendered characters at most; a reply longer than a message could not be sent.
MAX_RENDERED_CHARS = 10_000


def canned_dict(canned: CannedResponse) -> dict[str, Any]:
    return {
        "id": str(canned.id),
        "shortcut": canned.shortcut,
        "title": canned.title,
        "body": canned.body,
        "created_by": str(canned.created_by) if canned.created_by else None,
        "created_at": iso_utc(canned.created_at),
        "updated_at": iso_utc(canned.updated_at),
    }


def _source(body: str) -> templating.TemplateSource:
    return templating.TemplateSource(subject="", body_format="markdown", body=body)


def _body_errors(errors: list[templating.TemplateError]) -> ValidationFailed:
    return ValidationFailed.many(
        [FieldError(field="body", message=error.message, code=error.code) for error in errors]
    )


def check_body(body: str) -> None:
    """Raise a field error naming ``body`` for a syntax error or an unknown variable."""
    errors = templating.check_template(_source(body), VARIABLES)
    if errors:
        raise _body_errors(errors)


# Values shaped like real render data, to try a body when it is saved.
_SAMPLE_DATA: dict[str, Any] = {
    "contact": {"name": "Camille Martin", "email": "camille@example.org"},
    "member": {"name": "Robin Keeper"},
    "workspace": {"name": "Harbour Studio"},
}


def check_saved_body(body: str) -> None:
    """Check a body before it is saved, trying it with sample data.

    The trial render catches what parsing alone cannot, such as an attribute the variables
    do not have (``contact.phone``). A body that uses only the documented attributes renders
    for every conversation.
    """
    render_body(body, _SAMPLE_DATA)


def render_body(body: str, data: dict[str, Any]) -> str:
    """Render a body to Markdown with ``data``; a failure is a field error naming ``body``."""
    check_body(body)
    # The public render_template also turns the Markdown into HTML for email. A reply needs
    # the Markdown itself, so the body is rendered here with the sandbox's budget and errors.
    budget = templating._Budget(MAX_RENDERED_CHARS, templating.DEFAULT_MAX_ITERATIONS)
    token = templating._current_budget.set(budget)
    try:
        return templating._render_part(templating._Part("body", "markdown", body), data, budget)
    # Whatever the body's expressions raise is a problem of the body.
    except Exception as error:
        raise _body_errors([templating._render_error("body", error)]) from error
    finally:
        templating._current_budget.reset(token)


async def get_canned(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, canned_id: uuid.UUID
) -> CannedResponse:
    canned = await uow.session.get(CannedResponse, canned_id)
    if canned is None or canned.workspace_id != workspace_id:
        raise NotFound(f"No canned response with id {canned_id} in this workspace.")
    return canned


async def list_canned(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, prefix: str | None
) -> list[CannedResponse]:
    """Return the workspace's canned responses by shortcut, optionally those starting with
    ``prefix`` (ignoring case)."""
    statement = sa.select(CannedResponse).where(CannedResponse.workspace_id == workspace_id)
    if prefix:
        escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(
            sa.func.lower(CannedResponse.shortcut).like(escaped + "%", escape="\\")
        )
    return list(await uow.session.scalars(statement.order_by(CannedResponse.shortcut)))


def _duplicate(shortcut: str) -> Conflict:
    return Conflict(
        f"The shortcut '{shortcut}' is already used in this workspace; choose another.",
        errors=[
            FieldError(
                field="shortcut",
                message="Another canned response has this shortcut; choose another.",
                code="duplicate",
            )
        ],
        code="duplicate_shortcut",
    )


async def _check_shortcut_free(
    uow: UnitOfWork, workspace_id: uuid.UUID, shortcut: str, own_id: uuid.UUID | None
) -> None:
    statement = sa.select(CannedResponse.id).where(
        CannedResponse.workspace_id == workspace_id, CannedResponse.shortcut == shortcut
    )
    existing = await uow.session.scalar(statement)
    if existing is not None and existing != own_id:
        raise _duplicate(shortcut)


async def _flush_unique(uow: UnitOfWork, shortcut: str) -> None:
    """Flush in a savepoint; a concurrent insert of the same shortcut becomes a 409."""
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise _duplicate(shortcut) from exc


async def create_canned(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID,
    shortcut: str,
    title: str,
    body: str,
) -> CannedResponse:
    title = _check_title(title)
    check_saved_body(body)
    await _check_shortcut_free(uow, workspace_id, shortcut, None)
    now = uow.now()
    canned = CannedResponse(
        id=uuid7(),
        workspace_id=workspace_id,
        shortcut=shortcut,
        title=title,
        body=body,
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(canned)
    await _flush_unique(uow, shortcut)
    return canned


def _check_title(title: str) -> str:
    title = title.strip()
    if is_blank(title):
        raise ValidationFailed("title", "The title cannot be blank.", "missing")
    return title


async def update_canned(
    uow: UnitOfWork,
    canned: CannedResponse,
    *,
    shortcut: str | None,
    title: str | None,
    body: str | None,
) -> CannedResponse:
    """Change the fields given (None leaves a field as it is); all are checked first."""
    if title is not None:
        title = _check_title(title)
    if body is not None:
        check_saved_body(body)
    if shortcut is not None and shortcut != canned.shortcut:
        await _check_shortcut_free(uow, canned.workspace_id, shortcut, canned.id)
    changed = False
    for name, value in (("shortcut", shortcut), ("title", title), ("body", body)):
        if value is not None and value != getattr(canned, name):
            setattr(canned, name, value)
            changed = True
    if changed:
        canned.updated_at = uow.now()
        await _flush_unique(uow, canned.shortcut)
    return canned


async def delete_canned(uow: UnitOfWork, canned: CannedResponse) -> None:
    await uow.session.delete(canned)
    await uow.session.flush()


async def render_data(
    uow: UnitOfWork, *, conversation: Conversation, member_id: uuid.UUID
) -> dict[str, Any]:
    """Build the variables for a conversation: its contact (or chat visitor), the member
    and the workspace. Unknown values are None, which prints as nothing."""
    name: str | None = None
    email: str | None = None
    if conversation.contact_id is not None:
        contact = await uow.session.get(Contact, conversation.contact_id)
        if contact is not None:
            name, email = contact.name, contact.email
    if conversation.visitor_id is not None and name is None and email is None:
        visitor = await uow.session.get(ChatVisitor, conversation.visitor_id)
        if visitor is not None:
            name, email = visitor.name, visitor.email
    member = await uow.session.get(User, member_id)
    workspace = await uow.session.get(Workspace, conversation.workspace_id)
    return {
        "contact": {"name": name, "email": email},
        "member": {"name": member.full_name if member else None},
        "workspace": {"name": workspace.name if workspace else None},
    }
