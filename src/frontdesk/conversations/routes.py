"""Staff conversation API: the inbox list, changes, message history, notes, reads and search."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from frontdesk.auth.dependencies import Actor, AgentDep
from frontdesk.contacts.models import Contact
from frontdesk.conversations import search, service
from frontdesk.conversations.attachments import resolve_attachments
from frontdesk.conversations.models import Conversation, ConversationMessage
from frontdesk.conversations.schemas import (
    Channel,
    ConversationCreate,
    ConversationUpdate,
    MessageCreate,
    MessageEdit,
    ReadIn,
)
from frontdesk.core.api import UowDep, read_only, writes_in_group
from frontdesk.core.db import MAX_SQL_INTEGER
from frontdesk.core.errors import FieldError, NotFound, Problem, ValidationFailed
from frontdesk.core.fields import DateTimeText
from frontdesk.core.group_commit import Rejection
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery
from frontdesk.core.query_params import as_utc, parse_assignee, parse_statuses, time_range
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry
from frontdesk.enquiries.queries import get_enquiry
from frontdesk.storage.scanning import AVAILABLE, QUARANTINED, ObjectScan

router = APIRouter(prefix="/conversations", tags=["conversations"])
enquiry_router = APIRouter(prefix="/enquiries", tags=["conversations"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such conversation or message in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    403: {"model": Problem, "description": "Only the author (or an admin) may change it."},
    409: {"model": Problem, "description": "The message is deleted."},
}
HISTORY_MAX_LIMIT = 200
# Roles that may delete other people's messages.
MODERATOR_ROLES = ("admin", "owner")


# --- Views ----------------------------------------------------------------------------------


async def _conversation_views(
    uow: UnitOfWork, conversations: list[Conversation], actor: Actor
) -> list[dict[str, Any]]:
    counts = await service.unread_counts(
        uow, [conversation.id for conversation in conversations], user_id=actor.user_id
    )
    return [
        {**service.conversation_dict(conversation), "unread_count": counts[conversation.id]}
        for conversation in conversations
    ]


async def _detail(uow: UnitOfWork, conversation: Conversation, actor: Actor) -> dict[str, Any]:
    view = (await _conversation_views(uow, [conversation], actor))[0]
    view["participants"] = await service.participants_view(uow, conversation)
    return view


async def _load(uow: UnitOfWork, actor: Actor, conversation_id: uuid.UUID) -> Conversation:
    return await service.get_conversation(
        uow, workspace_id=actor.workspace_id, conversation_id=conversation_id
    )


# --- Inbox ----------------------------------------------------------------------------------


@router.get("", responses=_ERRORS)
@read_only
async def list_conversations(
    uow: UowDep,
    actor: AgentDep,
    status: Annotated[
        list[str],
        Query(description="Statuses to include; repeat the parameter or separate with commas."),
    ] = [],  # noqa: B006  (FastAPI copies query defaults)
    assignee: Annotated[
        str | None, Query(description="A user id, 'me' or 'none' (unassigned).")
    ] = None,
    channel: Channel | None = None,
    contact_id: uuid.UUID | None = None,
    unread: Annotated[
        bool, Query(description="true: only conversations with messages you have not read.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """List conversations, newest activity first, each with your unread count.

    Pass `next_cursor` as `cursor` for the next page.
    """
    filters = service.ConversationFilters(
        statuses=parse_statuses(status, service.STATUSES),
        assignee=parse_assignee(assignee),
        channel=channel,
        contact_id=contact_id,
        unread=unread,
    )
    rows, next_cursor = await service.list_conversations(
        uow,
        workspace_id=actor.workspace_id,
        user_id=actor.user_id,
        filters=filters,
        cursor=cursor,
        limit=limit,
    )
    return {"items": await _conversation_views(uow, rows, actor), "next_cursor": next_cursor}


@router.get("/unread")
@read_only
async def unread_totals(uow: UowDep, actor: AgentDep) -> dict[str, int]:
    """Count your unread messages in the workspace and the conversations that hold them."""
    total, conversations = await service.unread_totals(
        uow, workspace_id=actor.workspace_id, user_id=actor.user_id
    )
    return {"total": total, "conversations": conversations}


@router.get("/search", responses=_ERRORS)
@read_only
async def search_messages(
    uow: UowDep,
    actor: AgentDep,
    q: Annotated[str, Query(description="Words to find; every word must occur.")],
    conversation_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    created_from: Annotated[
        DateTimeText | None,
        Query(alias="from", description="ISO 8601; included. Without an offset: UTC."),
    ] = None,
    created_to: Annotated[
        DateTimeText | None,
        Query(alias="to", description="ISO 8601; excluded. Without an offset: UTC."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Find messages and internal notes containing every word of `q`, newest first.

    Any text is a valid query: operators and punctuation are ignored, and text without a
    word finds nothing. Each item is a message with `snippet`, HTML-escaped text around the
    first match with matches in `<mark>`.
    """
    start, end = time_range(created_from, created_to, ("from", "to"))
    filters = search.SearchFilters(
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel=channel,
        created_from=start,
        created_to=end,
    )
    page = await search.search_messages(
        uow,
        workspace_id=actor.workspace_id,
        text=q,
        filters=filters,
        cursor=cursor,
        limit=limit,
    )
    items = [{**service.message_dict(hit.message), "snippet": hit.snippet} for hit in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


async def _check_contact(uow: UnitOfWork, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    contact = await uow.session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise ValidationFailed(
            "contact_id", f"No contact {contact_id} in this workspace.", "not_found"
        )


async def _find_enquiry(uow: UnitOfWork, workspace_id: uuid.UUID, enquiry_id: uuid.UUID) -> Enquiry:
    enquiry = await uow.session.get(Enquiry, enquiry_id)
    if enquiry is None or enquiry.workspace_id != workspace_id:
        raise ValidationFailed(
            "enquiry_id", f"No enquiry {enquiry_id} in this workspace.", "not_found"
        )
    return enquiry


@router.post("", status_code=201, responses=_ERRORS)
async def create_conversation(
    uow: UowDep, actor: AgentDep, body: ConversationCreate
) -> dict[str, Any]:
    """Start a conversation; with an enquiry and no contact, the enquiry's contact is used."""
    contact_id = body.contact_id
    if contact_id is not None:
        await _check_contact(uow, actor.workspace_id, contact_id)
    if body.enquiry_id is not None:
        enquiry = await _find_enquiry(uow, actor.workspace_id, body.enquiry_id)
        contact_id = contact_id or enquiry.contact_id
    conversation = await service.create_conversation(
        uow,
        workspace_id=actor.workspace_id,
        channel=body.channel,
        contact_id=contact_id,
        enquiry_id=body.enquiry_id,
        subject=(body.subject or "").strip() or None,
    )
    return await _detail(uow, conversation, actor)


@router.get("/{conversation_id}", responses=_ERRORS)
@read_only
async def get_conversation(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID
) -> dict[str, Any]:
    """Read a conversation with your unread count and its participants' read positions."""
    return await _detail(uow, await _load(uow, actor, conversation_id), actor)


@router.patch("/{conversation_id}", responses=_ERRORS)
async def update_conversation(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID, body: ConversationUpdate
) -> dict[str, Any]:
    """Change the status, snooze time, assignee or subject.

    Status "snoozed" needs a future `snoozed_until`; any other status clears it. Each
    assignment and status change adds a system message to the conversation.
    """
    conversation = await _load(uow, actor, conversation_id)
    sent = body.model_fields_set
    if "status" in sent and body.status is None:
        raise ValidationFailed("status", "The status cannot be null; send a status.", "null")
    changes = service.ConversationChanges(
        sent=frozenset(sent),
        status=body.status,
        snoozed_until=as_utc(body.snoozed_until, "snoozed_until"),
        assignee_id=body.assignee_id,
        subject=body.subject,
    )
    await service.update_conversation(uow, conversation, actor_id=actor.user_id, changes=changes)
    return await _detail(uow, conversation, actor)


# --- Messages -------------------------------------------------------------------------------


def _parse_around(value: str) -> int | uuid.UUID:
    if value.isdigit() and value.isascii() and int(value) <= MAX_SQL_INTEGER:
        return int(value)
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            "around",
            f"Use a message seq (a whole number from 0 to {MAX_SQL_INTEGER}) or a message id.",
            "invalid",
        ) from exc


@router.get("/{conversation_id}/messages", responses=_ERRORS)
@read_only
async def list_messages(
    uow: UowDep,
    actor: AgentDep,
    conversation_id: uuid.UUID,
    before: Annotated[
        int | None, Query(ge=0, le=MAX_SQL_INTEGER, description="Messages below this seq.")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SQL_INTEGER, description="Messages above this seq.")
    ] = None,
    around: Annotated[
        str | None,
        Query(max_length=36, description="A seq or a message id; the page centres on it."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """Read a page of messages in ascending seq; without a position, the newest page."""
    given = [
        name
        for name, value in (("before", before), ("after", after), ("around", around))
        if value is not None
    ]
    if len(given) > 1:
        raise ValidationFailed(
            given[1], f"Send only one of before, after and around, not {given[0]} too.", "conflict"
        )
    conversation = await _load(uow, actor, conversation_id)
    around_seq: int | None = None
    if around is not None:
        target = _parse_around(around)
        if isinstance(target, uuid.UUID):
            message = await uow.session.get(ConversationMessage, target)
            if message is None or message.conversation_id != conversation.id:
                raise ValidationFailed(
                    "around", f"No message {target} in this conversation.", "not_found"
                )
            around_seq = message.seq
        else:
            around_seq = target
    page = await service.history(
        uow, conversation, before=before, after=after, around=around_seq, limit=limit
    )
    return {
        "items": [service.message_dict(message) for message in page.items],
        "has_before": page.has_before,
        "has_after": page.has_after,
    }


async def _message_attachments(
    uow: UnitOfWork, workspace_id: uuid.UUID, object_ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    """Describe the objects to attach; objects in or failed by the virus scan are rejected."""
    files = await resolve_attachments(uow, workspace_id=workspace_id, object_ids=object_ids)
    if not files:
        return files
    scans = await uow.session.scalars(
        sa.select(ObjectScan).where(
            ObjectScan.object_id.in_(object_ids), ObjectScan.status != AVAILABLE
        )
    )
    errors: list[FieldError] = []
    for scan in sorted(scans, key=lambda row: object_ids.index(row.object_id)):
        index = object_ids.index(scan.object_id)
        if scan.status == QUARANTINED:
            message = "The file is still being scanned for viruses; attach it in a minute."
            code = "object_quarantined"
        else:
            message = "The virus scanner found malware in the file; it cannot be attached."
            code = "object_infected"
        errors.append(FieldError(field=f"attachments.{index}", message=message, code=code))
    if errors:
        raise ValidationFailed.many(errors)
    return files


def _author(actor: Actor) -> service.Author:
    return service.Author(type="member", id=actor.user_id, name=actor.full_name)


@router.post(
    "/{conversation_id}/messages",
    status_code=201,
    responses={**_ERRORS, 200: {"description": "The client_message_id was already stored."}},
)
@writes_in_group
async def post_message(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID, body: MessageCreate
) -> JSONResponse:
    """Post a message or an internal note (kind "note", staff only).

    A repeat with a `client_message_id` already stored returns the stored message with 200.
    """
    files = await _message_attachments(uow, actor.workspace_id, body.attachments)
    author = _author(actor)
    service.check_message(
        author=author,
        kind=body.kind,
        body=body.body,
        attachments=files,
        client_message_id=body.client_message_id,
    )
    target = service.ConversationRef(workspace_id=actor.workspace_id, id=conversation_id)

    async def store(write: UnitOfWork) -> tuple[ConversationMessage, bool] | Rejection:
        try:
            return await service.post_message(
                write,
                target,
                author=author,
                kind=body.kind,
                body=body.body,
                attachments=files,
                client_message_id=body.client_message_id,
            )
        except NotFound as exc:
            # Nothing is written yet, so the rest of the group goes on.
            return Rejection(exc)

    # The group's transaction needs a pooled connection too. Requests that kept theirs while
    # they wait could use up the pool, and the group would then wait for them.
    await uow.release_connection()
    # Messages that several agents send at the same moment share one transaction.
    message, created = await uow.rt.group_commit.run(store)
    return JSONResponse(service.message_dict(message), status_code=201 if created else 200)


@router.patch("/{conversation_id}/messages/{message_id}", responses=_CHANGE_ERRORS)
async def edit_message(
    uow: UowDep,
    actor: AgentDep,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    body: MessageEdit,
) -> dict[str, Any]:
    """Change your own message's text; the earlier text is kept as a revision."""
    conversation = await _load(uow, actor, conversation_id)
    message = await service.get_message(uow, conversation, message_id)
    message = await service.edit_message(
        uow, conversation, message, editor_id=actor.user_id, body=body.body
    )
    return service.message_dict(message)


@router.delete("/{conversation_id}/messages/{message_id}", responses=_CHANGE_ERRORS)
async def delete_message(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> dict[str, Any]:
    """Delete a message: its text and files go, a revision keeps them for staff.

    Authors delete their own messages; admins and owners any message but a system message.
    """
    conversation = await _load(uow, actor, conversation_id)
    message = await service.get_message(uow, conversation, message_id)
    message = await service.delete_message(
        uow,
        conversation,
        message,
        actor_id=actor.user_id,
        moderator=actor.role in MODERATOR_ROLES,
    )
    return service.message_dict(message)


@router.get("/{conversation_id}/messages/{message_id}/revisions", responses=_ERRORS)
@read_only
async def list_revisions(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> dict[str, Any]:
    """List a message's earlier versions, oldest first."""
    conversation = await _load(uow, actor, conversation_id)
    message = await service.get_message(uow, conversation, message_id)
    revisions = await service.list_revisions(uow, message)
    return {"items": [service.revision_dict(revision) for revision in revisions]}


@router.post("/{conversation_id}/read", responses=_ERRORS)
async def mark_read(
    uow: UowDep, actor: AgentDep, conversation_id: uuid.UUID, body: ReadIn
) -> dict[str, Any]:
    """Move your read position forward to `seq`; it never moves back."""
    conversation = await _load(uow, actor, conversation_id)
    participant = await service.mark_read(
        uow,
        conversation,
        participant_type="member",
        participant_key=str(actor.user_id),
        seq=body.seq,
    )
    return service.read_state_dict(conversation, participant)


# --- Enquiries ------------------------------------------------------------------------------


@enquiry_router.post(
    "/{enquiry_id}/conversation",
    status_code=201,
    responses={
        **_ERRORS,
        200: {"description": "The enquiry already had a conversation."},
    },
)
async def enquiry_conversation(uow: UowDep, actor: AgentDep, enquiry_id: uuid.UUID) -> JSONResponse:
    """Return the enquiry's conversation (200), creating it first (201) if it has none."""
    enquiry = await get_enquiry(uow, workspace_id=actor.workspace_id, enquiry_id=enquiry_id)
    existed = await uow.session.scalar(
        sa.select(sa.exists().where(Conversation.enquiry_id == enquiry.id))
    )
    conversation = await service.conversation_for_enquiry(uow, enquiry)
    return JSONResponse(
        await _detail(uow, conversation, actor), status_code=200 if existed else 201
    )
