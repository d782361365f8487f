"""Conversation use cases shared by the staff API, the visitor API and the realtime gateway.

Messages are numbered 1, 2, 3... in their conversation by ``seq``, taken from the
conversation row in the same transaction, so two writers never get the same number. Read
positions are ``seq`` values. Every change records a staff event and, when the website
visitor may see it, a visitor event shaped for customers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.base import Executable

from frontdesk.auth.models import User
from frontdesk.conversations.fallback import schedule_email_fallback
from frontdesk.conversations.formatting import (
    MAX_ATTACHMENTS_PER_MESSAGE,
    MAX_BODY_CHARS,
    render_markdown,
)
from frontdesk.conversations.models import (
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
    MessageRevision,
)
from frontdesk.core.clock import iso_utc
from frontdesk.core.db import dialect_name
from frontdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from frontdesk.core.group_commit import RerunAlone
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import decode_cursor, encode_cursor
from frontdesk.core.sqlite_driver import deferred, inline
from frontdesk.core.text import is_blank
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.models import Enquiry
from frontdesk.workspaces.models import Membership

CHANNELS = ("chat", "email", "instagram", "form")
STATUSES = ("open", "pending", "resolved", "snoozed")
MAX_CLIENT_MESSAGE_ID_CHARS = 100
# Message numbers are BIGINT columns.
MAX_SEQ = 2**63 - 1

AuthorType = Literal["member", "visitor", "contact", "system"]


@dataclass(frozen=True)
class Author:
    """The writer of a message: a member (user id), a visitor (visitor id), the contact or the system."""

    type: AuthorType
    id: uuid.UUID | None = None
    name: str | None = None

    @property
    def key(self) -> str:
        return str(self.id) if self.id is not None else ""


SYSTEM = Author(type="system")


# Views


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """Return the conversation as the staff API shows it (without per-member fields)."""
    return {
        "id": str(conversation.id),
        "channel": conversation.channel,
        "status": conversation.status,
        "snoozed_until": _iso(conversation.snoozed_until),
        "contact_id": _str_or_none(conversation.contact_id),
        "enquiry_id": _str_or_none(conversation.enquiry_id),
        "visitor_id": _str_or_none(conversation.visitor_id),
        "assignee_id": _str_or_none(conversation.assignee_id),
        "subject": conversation.subject,
        "last_seq": conversation.last_seq,
        "last_message_at": _iso(conversation.last_message_at),
        "created_at": iso_utc(conversation.created_at),
        "updated_at": iso_utc(conversation.updated_at),
    }


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def message_dict(message: ConversationMessage) -> dict[str, Any]:
    """Return the message as staff see it: notes, system messages and deletion marks included."""
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "kind": message.kind,
        "author": {
            "type": message.author_type,
            "id": message.author_key or None,
            "name": message.data.get("author_name"),
        },
        "body": message.body,
        "body_html": message.body_html,
        "attachments": message.attachments,
        "data": {k: v for k, v in message.data.items() if k != "author_name"},
        "client_message_id": message.client_message_id,
        "created_at": iso_utc(message.created_at),
        "edited_at": _iso(message.edited_at),
        "deleted_at": _iso(message.deleted_at),
    }


def visitor_message_dict(message: ConversationMessage) -> dict[str, Any]:
    """Return the message as the website visitor is shown it: no staff ids, no history."""
    own = message.author_type == "visitor"
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "author": {
            "type": "visitor" if own else "staff",
            "name": None if own else message.data.get("author_name"),
        },
        "body": message.body,
        "body_html": message.body_html,
        "attachments": [
            {k: v for k, v in item.items() if k != "bucket_id"} for item in message.attachments
        ],
        "client_message_id": message.client_message_id if own else None,
        "created_at": iso_utc(message.created_at),
        "edited_at": _iso(message.edited_at),
        "deleted": message.deleted_at is not None,
    }


def visible_to_visitor(message: ConversationMessage) -> bool:
    return message.kind == "message"


# Reading


async def get_conversation(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    """Return the workspace's conversation; another workspace's id is not found."""
    conversation = await uow.session.get(Conversation, conversation_id)
    if conversation is None or conversation.workspace_id != workspace_id:
        raise NotFound("No such conversation in this workspace.")
    return conversation


async def get_message(
    uow: UnitOfWork, conversation: Conversation, message_id: uuid.UUID
) -> ConversationMessage:
    message = await uow.session.get(ConversationMessage, message_id)
    if message is None or message.conversation_id != conversation.id:
        raise NotFound("No such message in this conversation.")
    return message


# Writing


async def create_conversation(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    channel: str,
    contact_id: uuid.UUID | None = None,
    enquiry_id: uuid.UUID | None = None,
    visitor_id: uuid.UUID | None = None,
    subject: str | None = None,
) -> Conversation:
    if channel not in CHANNELS:
        raise ValidationFailed(
            "channel", f"Unknown channel; use one of {', '.join(CHANNELS)}.", "invalid_channel"
        )
    now = uow.now()
    conversation = Conversation(
        id=uuid7(),
        workspace_id=workspace_id,
        channel=channel,
        status="open",
        contact_id=contact_id,
        enquiry_id=enquiry_id,
        visitor_id=visitor_id,
        subject=_clean_subject(subject),
        last_seq=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(conversation)
    if visitor_id is not None:
        await ensure_participant(uow, conversation, "visitor", str(visitor_id))
    await uow.session.flush()
    uow.record_event(
        "conversation.created",
        conversation_dict(conversation),
        workspace_id=workspace_id,
        conversation_id=conversation.id,
    )
    return conversation


async def conversation_for_enquiry(uow: UnitOfWork, enquiry: Enquiry) -> Conversation:
    """Return the enquiry's conversation, creating it on first use.

    An enquiry that arrived by email gets an email conversation; any other gets a form one.
    Concurrent callers are serialized by locking the enquiry row (a no-op on SQLite, whose
    write transactions already run one at a time).
    """
    await uow.session.execute(
        sa.select(Enquiry.id).where(Enquiry.id == enquiry.id).with_for_update()
    )
    existing = await uow.session.scalar(
        sa.select(Conversation)
        .where(Conversation.enquiry_id == enquiry.id)
        .order_by(Conversation.created_at)
        .limit(1)
    )
    if existing is not None:
        return existing
    return await create_conversation(
        uow,
        workspace_id=enquiry.workspace_id,
        channel="email" if enquiry.source == "email" else "form",
        contact_id=enquiry.contact_id,
        enquiry_id=enquiry.id,
        subject=enquiry.subject,
    )


async def ensure_participant(
    uow: UnitOfWork, conversation: Conversation, participant_type: str, participant_key: str
) -> ConversationParticipant:
    participant = await uow.session.get(
        ConversationParticipant, (conversation.id, participant_type, participant_key)
    )
    if participant is None:
        participant = ConversationParticipant(
            conversation_id=conversation.id,
            participant_type=participant_type,
            participant_key=participant_key,
            workspace_id=conversation.workspace_id,
            last_read_seq=0,
            last_delivered_seq=0,
            last_emailed_seq=0,
            joined_at=uow.now(),
        )
        uow.session.add(participant)
    return participant


def _numbering_statement(*, message: bool, new_client_id: bool, load: bool) -> sa.Update:
    """Build the UPDATE that takes a conversation's next message number.

    With ``new_client_id`` it updates nothing, and returns no row, when the author already
    stored a message with the ``client_message_id``. With ``load`` it also matches the
    ``workspace_id`` and returns every column instead of ``last_seq`` alone.
    """
    table = Conversation.__table__
    values: dict[str, Any] = {"last_seq": table.c.last_seq + 1, "updated_at": sa.bindparam("now")}
    if message:
        values["last_message_at"] = sa.bindparam("now")
    condition = table.c.id == sa.bindparam("conversation_id")
    if load:
        condition &= table.c.workspace_id == sa.bindparam("conversation_workspace")
    if new_client_id:
        messages = ConversationMessage.__table__
        condition &= ~sa.exists().where(
            messages.c.conversation_id == sa.bindparam("conversation_id"),
            messages.c.author_type == sa.bindparam("author_type"),
            messages.c.author_key == sa.bindparam("author_key"),
            messages.c.client_message_id == sa.bindparam("client_message_id"),
        )
    returned = table.columns if load else [table.c.last_seq]
    return (
        sa.update(table)  # type: ignore[arg-type]
        .where(condition)
        .values(values)
        .returning(*returned)
    )


# The send path's statements are built once, because building them is a large part of their
# cost.
# They work on tables, not mapped classes, so the ORM does not look for loaded objects.
_NUMBERING = {
    (message, new_client_id, load): inline(
        _numbering_statement(message=message, new_client_id=new_client_id, load=load)
    )
    for message in (True, False)
    for new_client_id in (True, False)
    for load in (True, False)
}


def _column_pairs(model: type[Any]) -> list[tuple[str, str]]:
    """Return each mapped attribute's name with its column's name, for Core statements."""
    return [
        (attribute.key, attribute.columns[0].key) for attribute in sa.inspect(model).column_attrs
    ]


_CONVERSATION_COLUMNS = _column_pairs(Conversation)


@dataclass(frozen=True)
class ConversationRef:
    """A conversation named by its ids only, for a message to be posted to it.

    post_message loads it with the statement that takes the message number, instead of
    reading it first.
    """

    workspace_id: uuid.UUID
    id: uuid.UUID


# Nothing reads the INSERT's outcome (the message's client id was checked by the UPDATE that
# numbered it), so on SQLite it goes with the transaction's next statement.
_INSERT_MESSAGE = deferred(sa.insert(ConversationMessage.__table__))  # type: ignore[arg-type]
_MESSAGE_COLUMNS = _column_pairs(ConversationMessage)


async def _insert_message(uow: UnitOfWork, message: ConversationMessage) -> None:
    """Insert a new message, with every column set, and add it to the session as stored.

    One Core INSERT costs about half of what the ORM's flush of a new object costs. Because
    every column is set, no attribute of the stored object needs loading afterwards.
    """
    row = {column: getattr(message, attribute) for attribute, column in _MESSAGE_COLUMNS}
    await uow.session.execute(_INSERT_MESSAGE, row)
    make_transient_to_detached(message)
    uow.session.add(message)


def _numbering_parameters(
    conversation_id: uuid.UUID, client_id: tuple[Author, str] | None, now: datetime
) -> dict[str, Any]:
    parameters: dict[str, Any] = {"conversation_id": conversation_id, "now": now}
    if client_id is not None:
        author, client_message_id = client_id
        parameters.update(
            author_type=author.type, author_key=author.key, client_message_id=client_message_id
        )
    return parameters


async def _number(
    uow: UnitOfWork,
    target: Conversation | ConversationRef,
    *,
    kind: str,
    client_id: tuple[Author, str] | None,
    now: datetime,
) -> tuple[Conversation, int | None]:
    """Take the target conversation's next message number, loading the conversation first
    when only its ids are given.

    Returns the conversation and the number, or None for the number when the author already
    stored a message with the client id. A client id is checked under the conversation's
    lock, so a concurrent send of the same id has either committed, and is seen, or waits
    for this transaction to commit.
    """
    if isinstance(target, Conversation):
        if client_id is not None:
            await _lock(uow, target)
        return target, await _next_seq(uow, target, kind=kind, client_id=client_id, now=now)
    if dialect_name(uow.session) == "postgresql":
        # The SELECT ... FOR UPDATE loads the conversation and takes its row lock.
        conversation = await uow.session.scalar(
            _LOCK_AND_LOAD, {"conversation_id": target.id, "workspace_id": target.workspace_id}
        )
        if conversation is None:
            raise NotFound("No such conversation in this workspace.")
        return conversation, await _next_seq(
            uow, conversation, kind=kind, client_id=client_id, now=now
        )
    # On SQLite the transaction already holds the write lock, and one UPDATE numbers the
    # message and returns the conversation.
    parameters = _numbering_parameters(target.id, client_id, now)
    parameters["conversation_workspace"] = target.workspace_id
    statement = _NUMBERING[kind == "message", client_id is not None, True]
    row = (await uow.session.execute(statement, parameters)).one_or_none()
    return await _numbered(uow, target, row, client_id=client_id)


async def _numbered(
    uow: UnitOfWork,
    target: ConversationRef,
    row: sa.Row[Any] | None,
    *,
    client_id: tuple[Author, str] | None,
) -> tuple[Conversation, int | None]:
    """Return the conversation and the message number from the row of a statement that
    numbered a message and returned the conversation.

    Without a row, nothing was numbered: the conversation is loaded, NotFound is raised when
    the workspace has none, and the number is None when a client id was checked.
    """
    if row is not None:
        return _stored_conversation(uow, row), int(row.last_seq)
    conversation = await get_conversation(
        uow, workspace_id=target.workspace_id, conversation_id=target.id
    )
    if client_id is None:
        raise NotFound("No such conversation in this workspace.")
    return conversation, None


def _stored_conversation(uow: UnitOfWork, row: sa.Row[Any]) -> Conversation:
    """Return the session's object for a conversation row that was just written.

    A conversation the session has not loaded is added to it as stored, so it is not
    read again. A loaded one takes the columns that the numbering UPDATE changed.
    """
    values = {attribute: row._mapping[column] for attribute, column in _CONVERSATION_COLUMNS}
    key = uow.session.sync_session.identity_key(Conversation, values["id"])
    loaded = uow.session.identity_map.get(key)
    if isinstance(loaded, Conversation):
        for attribute in ("last_seq", "updated_at", "last_message_at"):
            set_committed_value(loaded, attribute, values[attribute])
        return loaded
    conversation = Conversation(**values)
    make_transient_to_detached(conversation)
    uow.session.add(conversation)
    return conversation


async def _next_seq(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    kind: str,
    client_id: tuple[Author, str] | None = None,
    now: datetime,
) -> int | None:
    """Take the next message number and stamp the conversation's times with ``now`` in one
    UPDATE.

    With ``client_id`` (an author and a client message id) nothing changes and None is
    returned when that author already stored a message with that id.

    The row update serializes concurrent writers. The values it writes are set on the
    loaded conversation as already stored, so the flush does not write them again.
    """
    parameters = _numbering_parameters(conversation.id, client_id, now)
    statement = _NUMBERING[kind == "message", client_id is not None, False]
    seq = await uow.session.scalar(statement, parameters)
    if seq is None:
        if client_id is not None:
            return None
        raise NotFound("No such conversation in this workspace.")
    set_committed_value(conversation, "last_seq", seq)
    set_committed_value(conversation, "updated_at", now)
    if kind == "message":
        set_committed_value(conversation, "last_message_at", now)
    return int(seq)


def _stores_in_one_statement(
    uow: UnitOfWork, target: Conversation | ConversationRef, *, kind: str, author: Author
) -> bool:
    """Tell whether ``post_message`` numbers and stores this message with one statement.

    That is PostgreSQL's path for a member's or visitor's message to a conversation named
    by its ids, which is what the chat send paths post. Each statement there is a round
    trip to the server, and the three writes of a message (the numbering, the message and
    the sender's read position) go in one. A participant row that this session has loaded
    is left to the ORM, so that the loaded object stays true.
    """
    if not isinstance(target, ConversationRef) or kind != "message":
        return False
    if author.type not in _PARTICIPANT_AUTHORS or dialect_name(uow.session) != "postgresql":
        return False
    identity = uow.session.sync_session.identity_key(
        ConversationParticipant, (target.id, author.type, author.key)
    )
    return identity not in uow.session.identity_map


# The author types that are conversation participants, with the author type as the
# participant type. Their read position moves to each message they send.
_PARTICIPANT_AUTHORS = frozenset({"member", "visitor"})


def _store_statement(*, new_client_id: bool) -> Executable:
    """Build PostgreSQL's statement that numbers a message, inserts it and moves its
    sender's read position, returning the conversation's columns.

    The numbering UPDATE is a data-modifying WITH query, and the two INSERTs take the new
    number from its RETURNING. When it updates no row (no such conversation, or a client
    id the author already used), nothing is inserted and no row is returned. All three
    see one snapshot. When two transactions send the same new client id at once, the unique
    index on client ids makes the later INSERT fail once the first transaction commits.
    """
    numbered = _numbering_statement(message=True, new_client_id=new_client_id, load=True).cte(
        "numbered"
    )
    messages = ConversationMessage.__table__
    message_values = [
        numbered.c.last_seq.label("seq")
        if column.key == "seq"
        else sa.bindparam(f"message_{column.key}", type_=column.type)
        for column in messages.columns
    ]
    stored = (
        sa.insert(messages)  # type: ignore[arg-type]
        .from_select([column.key for column in messages.columns], sa.select(*message_values))
        .cte("stored")
    )
    participants = ConversationParticipant.__table__
    read_values = {
        "conversation_id": numbered.c.id,
        "participant_type": sa.bindparam("participant_type", type_=sa.String()),
        "participant_key": sa.bindparam("participant_key", type_=sa.String()),
        "workspace_id": numbered.c.workspace_id,
        "last_read_seq": numbered.c.last_seq,
        "last_delivered_seq": numbered.c.last_seq,
        "last_emailed_seq": sa.literal(0),
        "joined_at": sa.bindparam("now", type_=participants.c.joined_at.type),
        "read_at": sa.bindparam("now", type_=participants.c.read_at.type),
    }
    read = _advance_on_conflict(
        postgresql_insert(participants).from_select(  # type: ignore[arg-type]
            list(read_values), sa.select(*read_values.values())
        )
    ).cte("read")
    return sa.select(numbered).add_cte(stored, read)


async def _store_in_one_statement(
    uow: UnitOfWork,
    target: ConversationRef,
    message: ConversationMessage,
    *,
    client_id: tuple[Author, str] | None,
    now: datetime,
) -> tuple[Conversation, int | None]:
    """Number and store ``message`` and move its sender's read position with one statement.

    Returns the conversation and the message's number, or None for the number when the
    author already stored a message with the client id.
    """
    parameters = _numbering_parameters(target.id, client_id, now)
    parameters["conversation_workspace"] = target.workspace_id
    for attribute, column in _MESSAGE_COLUMNS:
        parameters[f"message_{column}"] = getattr(message, attribute)
    parameters["participant_type"] = message.author_type
    parameters["participant_key"] = message.author_key
    try:
        row = (await uow.session.execute(_STORE[client_id is not None], parameters)).one_or_none()
    except sa.exc.IntegrityError as exc:
        if client_id is not None and _CLIENT_ID_INDEX in str(exc.orig):
            # The same client id was stored by a transaction that committed while this one
            # waited for the conversation's row lock. A transaction of its own reads it.
            raise RerunAlone("the message was stored by a concurrent send") from exc
        raise
    return await _numbered(uow, target, row, client_id=client_id)


# Control characters other than tab and line feed. CR LF and CR become line feeds first.
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean_subject(subject: str | None) -> str | None:
    """Return a subject trimmed, or None for one with no visible character."""
    if subject is None or is_blank(subject):
        return None
    return subject.strip()


def clean_body(body: str) -> str:
    """Return a message body with its line breaks as LF and no other control characters."""
    return _BODY_CONTROLS.sub("", body.replace("\r\n", "\n").replace("\r", "\n"))


def check_body(body: str, *, field: str = "body") -> str:
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed(
            field, f"A message has at most {MAX_BODY_CHARS} characters.", "too_long"
        )
    if "\x00" in body:
        raise ValidationFailed(field, "A message cannot contain NUL characters.", "invalid")
    return body


def check_client_message_id(value: str | None, *, field: str = "client_message_id") -> None:
    if value is None:
        return
    if not value or len(value) > MAX_CLIENT_MESSAGE_ID_CHARS or not value.isprintable():
        raise ValidationFailed(
            field,
            f"Use 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} printable characters, for example a UUID.",
            "invalid",
        )


_LOCK = (
    sa.select(Conversation.__table__.c.id)
    .where(Conversation.__table__.c.id == sa.bindparam("conversation_id"))
    .with_for_update()
)
_LOCK_AND_LOAD = (
    sa.select(Conversation)
    .where(
        Conversation.id == sa.bindparam("conversation_id"),
        Conversation.workspace_id == sa.bindparam("workspace_id"),
    )
    .with_for_update()
)


async def _lock(uow: UnitOfWork, conversation: Conversation) -> None:
    """Hold the conversation's row lock until the transaction ends.

    SQLite needs no statement, because a write transaction begins with BEGIN IMMEDIATE,
    which holds the database's only write lock.
    """
    if dialect_name(uow.session) == "postgresql":
        await uow.session.execute(_LOCK, {"conversation_id": conversation.id})


_FIND_BY_CLIENT_ID = sa.select(ConversationMessage).where(
    ConversationMessage.conversation_id == sa.bindparam("conversation_id"),
    ConversationMessage.author_type == sa.bindparam("author_type"),
    ConversationMessage.author_key == sa.bindparam("author_key"),
    ConversationMessage.client_message_id == sa.bindparam("client_message_id"),
)


async def _find_by_client_id(
    uow: UnitOfWork, conversation: Conversation, author: Author, client_message_id: str
) -> ConversationMessage | None:
    return await uow.session.scalar(
        _FIND_BY_CLIENT_ID,
        {
            "conversation_id": conversation.id,
            "author_type": author.type,
            "author_key": author.key,
            "client_message_id": client_message_id,
        },
    )


async def post_message(
    uow: UnitOfWork,
    target: Conversation | ConversationRef,
    *,
    author: Author,
    kind: str = "message",
    body: str = "",
    attachments: Sequence[dict[str, Any]] = (),
    client_message_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[ConversationMessage, bool]:
    """Store a message and record its events; returns the message and whether it is new.

    The target is a loaded conversation, or a ConversationRef, which is loaded here and
    raises NotFound when the workspace has no such conversation. NotFound is raised before
    anything is written. A message whose
    ``client_message_id`` the same author already used in this conversation is not stored
    again: the stored one is returned with False.
    """
    body = check_message(
        author=author,
        kind=kind,
        body=body,
        attachments=attachments,
        client_message_id=client_message_id,
    )
    client_id = None if client_message_id is None else (author, client_message_id)
    # One time for the message and the conversation's last_message_at.
    now = uow.now()
    message_data = dict(data or {})
    if author.name:
        message_data["author_name"] = author.name
    message = ConversationMessage(
        id=uuid7(),
        workspace_id=target.workspace_id,
        conversation_id=target.id,
        seq=0,
        kind=kind,
        author_type=author.type,
        author_key=author.key,
        author_user_id=author.id if author.type == "member" else None,
        body=body,
        body_html=render_markdown(body),
        attachments=list(attachments),
        data=message_data,
        client_message_id=client_message_id,
        edited_at=None,
        deleted_at=None,
        created_at=now,
    )
    one_statement = _stores_in_one_statement(uow, target, kind=kind, author=author)
    if one_statement:
        assert isinstance(target, ConversationRef)
        conversation, seq = await _store_in_one_statement(
            uow, target, message, client_id=client_id, now=now
        )
    else:
        conversation, seq = await _number(uow, target, kind=kind, client_id=client_id, now=now)
    if seq is None:
        assert client_message_id is not None
        existing = await _find_by_client_id(uow, conversation, author, client_message_id)
        if existing is None:
            raise NotFound("No such conversation in this workspace.")
        return existing, False
    message.seq = seq
    if one_statement:
        make_transient_to_detached(message)
        uow.session.add(message)
    else:
        await _insert_message(uow, message)

    if (
        kind == "message"
        and author.type in ("visitor", "contact")
        and conversation.status in ("resolved", "snoozed")
    ):
        conversation.status = "open"
        conversation.snoozed_until = None
    if author.type in _PARTICIPANT_AUTHORS:
        if kind != "message":
            await ensure_participant(uow, conversation, author.type, author.key)
        elif not one_statement:
            # The one statement has already moved the sender's read position.
            await _mark_sender_read(uow, conversation, author.type, author.key, seq, now)
    record_message_event(uow, conversation, message, "conversation.message.created")
    if author.type == "member" and kind == "message" and conversation.channel == "chat":
        await schedule_email_fallback(uow, conversation, message)
    return message, True


def check_message(
    *,
    author: Author,
    kind: str,
    body: str,
    attachments: Sequence[object],
    client_message_id: str | None,
) -> str:
    """Check a new message's fields without reading the database; return the body as it
    is stored.

    ``post_message`` runs these checks itself. The send paths that store through the group
    commit also run them first, so that invalid input is rejected before it joins a group,
    where a failing unit makes every unit of the group run again alone.
    """
    if kind == "note" and author.type != "member":
        raise ValidationFailed("kind", "Only members write internal notes.", "invalid_kind")
    if kind == "system" and author.type != "system":
        raise ValidationFailed("kind", "Use kind message or note.", "invalid_kind")
    check_body(body)
    body = clean_body(body)
    check_client_message_id(client_message_id)
    if kind != "system" and is_blank(body) and not attachments:
        raise ValidationFailed("body", "Write some text or attach a file.", "empty_message")
    if len(attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise ValidationFailed(
            "attachments",
            f"A message has at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments.",
            "too_many",
        )
    return body


def record_message_event(
    uow: UnitOfWork, conversation: Conversation, message: ConversationMessage, name: str
) -> None:
    uow.record_event(
        name,
        {"message": message_dict(message), "conversation": conversation_dict(conversation)},
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
    )
    if visible_to_visitor(message) and conversation.visitor_id is not None:
        uow.record_event(
            name,
            {"message": visitor_message_dict(message)},
            workspace_id=conversation.workspace_id,
            audience="visitor",
            conversation_id=conversation.id,
        )


def _mark_sender_read_statement(dialect: str) -> Executable:
    """Build the upsert that moves a sender's read and delivered positions forward, adding
    the participant when the conversation has none for them.

    Positions never go back: a position at or past the new one is kept, and ``read_at``
    changes only with the read position. SET expressions see the row as it was.
    """
    table = ConversationParticipant.__table__
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)  # type: ignore[arg-type]
    # Nothing reads its outcome, so on SQLite it goes with the transaction's next statement.
    return deferred(_advance_on_conflict(insert))


def _advance_on_conflict(insert: Any) -> Any:
    """Make a participant INSERT move an existing row's read and delivered positions
    forward instead, never back.

    ``read_at`` changes only with the read position. SET expressions read the row as it was.
    """
    table = ConversationParticipant.__table__
    new = insert.excluded
    read_moves = table.c.last_read_seq < new.last_read_seq
    delivered_moves = table.c.last_delivered_seq < new.last_delivered_seq
    return insert.on_conflict_do_update(
        index_elements=[table.c.conversation_id, table.c.participant_type, table.c.participant_key],
        set_={
            "last_read_seq": sa.case((read_moves, new.last_read_seq), else_=table.c.last_read_seq),
            "read_at": sa.case((read_moves, new.read_at), else_=table.c.read_at),
            "last_delivered_seq": sa.case(
                (delivered_moves, new.last_delivered_seq), else_=table.c.last_delivered_seq
            ),
        },
        where=read_moves | delivered_moves,
    )


_MARK_SENDER_READ = {
    dialect: _mark_sender_read_statement(dialect) for dialect in ("sqlite", "postgresql")
}

_STORE = {
    new_client_id: _store_statement(new_client_id=new_client_id) for new_client_id in (True, False)
}
# The unique index that stores a client message id once per author and conversation.
_CLIENT_ID_INDEX = "uq_conversation_messages_client_id"


async def _mark_sender_read(
    uow: UnitOfWork,
    conversation: Conversation,
    participant_type: str,
    participant_key: str,
    seq: int,
    now: datetime,
) -> None:
    """Move the sender's read and delivered positions to the message they just sent.

    A participant row that is not loaded is written with one upsert. One already loaded in
    this session goes through the ORM, so the loaded object stays true.
    """
    identity = uow.session.sync_session.identity_key(
        ConversationParticipant, (conversation.id, participant_type, participant_key)
    )
    if identity not in uow.session.identity_map:
        await uow.session.execute(
            _MARK_SENDER_READ[dialect_name(uow.session)],
            {
                "conversation_id": conversation.id,
                "participant_type": participant_type,
                "participant_key": participant_key,
                "workspace_id": conversation.workspace_id,
                "last_read_seq": seq,
                "last_delivered_seq": seq,
                "last_emailed_seq": 0,
                "joined_at": now,
                "read_at": now,
            },
        )
        return
    participant = await ensure_participant(uow, conversation, participant_type, participant_key)
    _advance(participant, seq, now)


def _advance(participant: ConversationParticipant, seq: int, now: datetime) -> bool:
    moved = False
    if seq > participant.last_read_seq:
        participant.last_read_seq = seq
        participant.read_at = now
        moved = True
    if seq > participant.last_delivered_seq:
        participant.last_delivered_seq = seq
        moved = True
    return moved


def read_state_dict(
    conversation: Conversation, participant: ConversationParticipant
) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation.id),
        "participant": {"type": participant.participant_type, "id": participant.participant_key},
        "last_read_seq": participant.last_read_seq,
        "last_delivered_seq": participant.last_delivered_seq,
        "read_at": _iso(participant.read_at),
    }


async def mark_read(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    participant_type: Literal["member", "visitor"],
    participant_key: str,
    seq: int,
) -> ConversationParticipant:
    """Move a participant's read position forward to ``seq``; never backwards, idempotent.

    A position past the newest message is clamped to it. Events are recorded only when the
    position moved: "conversation.read" for staff and, for a member's read of a visitor's
    conversation, a visitor event that shows the visitor their messages were read.
    """
    if seq < 0:
        raise ValidationFailed("seq", "Use a message seq of 0 or more.", "invalid")
    participant = await ensure_participant(uow, conversation, participant_type, participant_key)
    target = min(seq, conversation.last_seq)
    if not _advance(participant, target, uow.now()):
        return participant
    state = read_state_dict(conversation, participant)
    uow.record_event(
        "conversation.read",
        state,
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
    )
    if conversation.visitor_id is not None:
        visitor_state = dict(state)
        if participant_type == "member":
            visitor_state["participant"] = {"type": "staff", "id": None}
        uow.record_event(
            "conversation.read",
            visitor_state,
            workspace_id=conversation.workspace_id,
            audience="visitor",
            conversation_id=conversation.id,
        )
    return participant


# History


@dataclass(frozen=True)
class HistoryPage:
    items: list[ConversationMessage]
    # Whether older (lower seq) and newer (higher seq) messages exist beyond this page.
    has_before: bool
    has_after: bool


async def history(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    before: int | None = None,
    after: int | None = None,
    around: int | None = None,
    limit: int = 50,
    staff: bool = True,
) -> HistoryPage:
    """Read a page of messages in ascending ``seq``.

    ``before`` reads the ``limit`` messages just below that seq, ``after`` those just above
    it, and ``around`` a page centred on that seq (included). With none of them, the newest
    page. Visitors (``staff=False``) see only messages of kind "message".
    """
    for name, value in (("before", before), ("after", after), ("around", around)):
        if value is not None and not 0 <= value <= MAX_SEQ:
            raise ValidationFailed(name, f"Use a message seq from 0 to {MAX_SEQ}.", "out_of_range")
    base = sa.select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation.id
    )
    if not staff:
        base = base.where(ConversationMessage.kind == "message")
    seq = ConversationMessage.seq

    async def older(below: int, count: int) -> tuple[list[ConversationMessage], bool]:
        rows = list(
            await uow.session.scalars(base.where(seq < below).order_by(seq.desc()).limit(count + 1))
        )
        return list(reversed(rows[:count])), len(rows) > count

    async def newer(above: int, count: int) -> tuple[list[ConversationMessage], bool]:
        rows = list(
            await uow.session.scalars(base.where(seq > above).order_by(seq).limit(count + 1))
        )
        return rows[:count], len(rows) > count

    if after is not None:
        items, has_after = await newer(after, limit)
        has_before = await _exists(uow, base.where(seq <= after))
        return HistoryPage(items, has_before, has_after)
    if around is not None:
        # The message at ``around`` (or the next one shown) starts the newer part, so even a
        # page of one contains it. Each side fills what the other cannot near an end.
        head, has_before = await older(around, (limit - 1) // 2)
        tail, has_after = await newer(around - 1, limit - len(head))
        missing = limit - len(head) - len(tail)
        if missing > 0 and has_before:
            extra, has_before = await older(head[0].seq if head else around, missing)
            head = extra + head
        return HistoryPage(head + tail, has_before, has_after)
    below = before if before is not None else conversation.last_seq + 1
    items, has_before = await older(below, limit)
    has_after = before is not None and await _exists(uow, base.where(seq >= before))
    return HistoryPage(items, has_before, has_after)


async def _exists(uow: UnitOfWork, statement: sa.Select[Any]) -> bool:
    return bool(await uow.session.scalar(sa.select(statement.limit(1).exists())))


async def unread_counts(
    uow: UnitOfWork, conversation_ids: Sequence[uuid.UUID], *, user_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    """Count, per conversation, the messages newer than the member's read position.

    Notes and system messages count too, except the member's own messages.
    """
    if not conversation_ids:
        return {}
    participant = aliased(ConversationParticipant)
    read_seq = sa.func.coalesce(participant.last_read_seq, 0)
    statement = (
        sa.select(ConversationMessage.conversation_id, sa.func.count())
        .select_from(ConversationMessage)
        .outerjoin(
            participant,
            sa.and_(
                participant.conversation_id == ConversationMessage.conversation_id,
                participant.participant_type == "member",
                participant.participant_key == str(user_id),
            ),
        )
        .where(
            ConversationMessage.conversation_id.in_(conversation_ids),
            ConversationMessage.seq > read_seq,
            ConversationMessage.author_key != str(user_id),
            ConversationMessage.kind != "system",
        )
        .group_by(ConversationMessage.conversation_id)
    )
    counts = {row[0]: int(row[1]) for row in await uow.session.execute(statement)}
    return {conversation_id: counts.get(conversation_id, 0) for conversation_id in conversation_ids}


# Staff changes


@dataclass(frozen=True)
class ConversationChanges:
    """A staff change of a conversation; only the fields named in ``sent`` apply."""

    sent: frozenset[str]
    status: str | None = None
    snoozed_until: datetime | None = None
    assignee_id: uuid.UUID | None = None
    subject: str | None = None


async def _ensure_member(uow: UnitOfWork, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if await uow.session.get(Membership, (workspace_id, user_id)) is None:
        raise ValidationFailed(
            "assignee_id",
            f"User {user_id} is not a member of this workspace; assign a member.",
            "not_a_member",
        )


def _next_status(
    conversation: Conversation, changes: ConversationChanges, now: datetime
) -> tuple[str, datetime | None]:
    """Return the status and snooze time that ``changes`` lead to, or raise a field error."""
    status = conversation.status
    if "status" in changes.sent:
        if changes.status not in STATUSES:
            raise ValidationFailed("status", f"Use one of {', '.join(STATUSES)}.", "invalid_status")
        status = changes.status
    if status != "snoozed":
        if "snoozed_until" in changes.sent and changes.snoozed_until is not None:
            raise ValidationFailed(
                "snoozed_until",
                "Only a snoozed conversation has a snooze time; send status 'snoozed' with it.",
                "not_snoozed",
            )
        return status, None
    until = changes.snoozed_until if "snoozed_until" in changes.sent else None
    if until is None and "snoozed_until" not in changes.sent and conversation.status == "snoozed":
        until = conversation.snoozed_until
    if until is None:
        raise ValidationFailed(
            "snoozed_until",
            "A snoozed conversation needs the time to reopen it, such as 2026-01-31T09:00:00Z.",
            "missing",
        )
    if until <= now:
        raise ValidationFailed(
            "snoozed_until", "The time to reopen the conversation must be in the future.", "past"
        )
    return status, until


async def post_system_message(
    uow: UnitOfWork, conversation: Conversation, data: dict[str, Any]
) -> ConversationMessage:
    """Record a system message in the conversation; ``data["event"]`` names what happened."""
    message, _created = await post_message(
        uow, conversation, author=SYSTEM, kind="system", data=data
    )
    return message


async def update_conversation(
    uow: UnitOfWork,
    conversation: Conversation,
    *,
    actor_id: uuid.UUID,
    changes: ConversationChanges,
) -> bool:
    """Apply a staff change; returns whether anything changed.

    Every check runs before the first write, so a rejected change stores nothing. Each
    assignment and status change is a system message; any change records a
    ``conversation.updated`` event.
    """
    now = uow.now()
    status, snoozed_until = _next_status(conversation, changes, now)
    assignee_id = conversation.assignee_id
    if "assignee_id" in changes.sent:
        assignee_id = changes.assignee_id
        if assignee_id is not None and assignee_id != conversation.assignee_id:
            await _ensure_member(uow, conversation.workspace_id, assignee_id)
    subject = conversation.subject
    if "subject" in changes.sent:
        subject = _clean_subject(changes.subject)

    by = str(actor_id)
    events: list[dict[str, Any]] = []
    if assignee_id != conversation.assignee_id:
        events.append(
            {
                "event": "assigned" if assignee_id is not None else "unassigned",
                "from": _str_or_none(conversation.assignee_id),
                "to": _str_or_none(assignee_id),
                "by": by,
            }
        )
    if status != conversation.status or snoozed_until != conversation.snoozed_until:
        events.append(
            {
                "event": "status_changed",
                "from": conversation.status,
                "to": status,
                "snoozed_until": _iso(snoozed_until),
                "by": by,
            }
        )
    if not events and subject == conversation.subject:
        return False

    conversation.assignee_id = assignee_id
    conversation.status = status
    conversation.snoozed_until = snoozed_until
    conversation.subject = subject
    conversation.updated_at = now
    for data in events:
        await post_system_message(uow, conversation, data)
    record_conversation_updated(uow, conversation)
    return True


def record_conversation_updated(uow: UnitOfWork, conversation: Conversation) -> None:
    uow.record_event(
        "conversation.updated",
        conversation_dict(conversation),
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
    )


def _check_author(message: ConversationMessage, user_id: uuid.UUID) -> None:
    if message.author_type != "member" or message.author_key != str(user_id):
        raise Forbidden("Only the member who wrote a message can change it.", code="not_author")


def _check_not_deleted(message: ConversationMessage) -> None:
    if message.deleted_at is not None:
        raise Conflict("The message is deleted; it cannot be changed.", code="message_deleted")


def _keep_revision(
    uow: UnitOfWork, message: ConversationMessage, action: str, actor_id: uuid.UUID
) -> None:
    uow.session.add(
        MessageRevision(
            id=uuid7(),
            workspace_id=message.workspace_id,
            message_id=message.id,
            action=action,
            body=message.body,
            attachments=list(message.attachments),
            actor_user_id=actor_id,
            created_at=uow.now(),
        )
    )


async def edit_message(
    uow: UnitOfWork,
    conversation: Conversation,
    message: ConversationMessage,
    *,
    editor_id: uuid.UUID,
    body: str,
) -> ConversationMessage:
    """Replace a message's body; only its author may, and the earlier body is kept.

    The same body again changes nothing and records nothing.
    """
    _check_author(message, editor_id)
    _check_not_deleted(message)
    check_body(body)
    body = clean_body(body)
    if is_blank(body) and not message.attachments:
        raise ValidationFailed(
            "body", "Write some text; the message has no files.", "empty_message"
        )
    if body == message.body:
        return message
    _keep_revision(uow, message, "edited", editor_id)
    message.body = body
    message.body_html = render_markdown(body)
    message.edited_at = uow.now()
    await uow.session.flush()
    record_message_event(uow, conversation, message, "conversation.message.updated")
    return message


async def delete_message(
    uow: UnitOfWork,
    conversation: Conversation,
    message: ConversationMessage,
    *,
    actor_id: uuid.UUID,
    moderator: bool,
) -> ConversationMessage:
    """Delete a message softly: its body and files go, a revision keeps them for staff.

    The author may delete their own message, a ``moderator`` (admin or owner) any message
    but a system message. Deleting a deleted message changes nothing.
    """
    if message.kind == "system":
        raise Forbidden("System messages cannot be deleted.", code="system_message")
    if not moderator:
        _check_author(message, actor_id)
    if message.deleted_at is not None:
        return message
    _keep_revision(uow, message, "deleted", actor_id)
    message.body = ""
    message.body_html = ""
    message.attachments = []
    message.deleted_at = uow.now()
    await uow.session.flush()
    record_message_event(uow, conversation, message, "conversation.message.deleted")
    return message


async def list_revisions(uow: UnitOfWork, message: ConversationMessage) -> list[MessageRevision]:
    """Return the earlier versions of a message, oldest first."""
    statement = (
        sa.select(MessageRevision)
        .where(MessageRevision.message_id == message.id)
        .order_by(MessageRevision.created_at, MessageRevision.id)
    )
    return list(await uow.session.scalars(statement))


def revision_dict(revision: MessageRevision) -> dict[str, Any]:
    return {
        "id": str(revision.id),
        "message_id": str(revision.message_id),
        "action": revision.action,
        "body": revision.body,
        "attachments": revision.attachments,
        "actor_id": _str_or_none(revision.actor_user_id),
        "created_at": iso_utc(revision.created_at),
    }


# Lists


@dataclass(frozen=True)
class ConversationFilters:
    statuses: Sequence[str] = ()
    # A user id, "me" (the caller) or "none" (unassigned).
    assignee: uuid.UUID | Literal["me", "none"] | None = None
    channel: str | None = None
    contact_id: uuid.UUID | None = None
    # Only conversations with messages the caller has not read.
    unread: bool = False


def _activity() -> sa.ColumnElement[datetime]:
    """Build the activity time: the newest message's time, or the creation time without one."""
    return sa.func.coalesce(Conversation.last_message_at, Conversation.created_at)


def _unread_messages(user_id: uuid.UUID) -> sa.Select[Any]:
    """Select the member's unread messages by the rules of ``unread_counts``."""
    participant = aliased(ConversationParticipant)
    read_seq = (
        sa.select(participant.last_read_seq)
        .where(
            participant.conversation_id == ConversationMessage.conversation_id,
            participant.participant_type == "member",
            participant.participant_key == str(user_id),
        )
        .scalar_subquery()
    )
    return sa.select(ConversationMessage.conversation_id).where(
        ConversationMessage.seq > sa.func.coalesce(read_seq, 0),
        ConversationMessage.author_key != str(user_id),
        ConversationMessage.kind != "system",
    )


# The name in the staff inbox's cursors. They order by latest activity, unlike the visitor's
# conversation list, which pages the same table by creation time.
_INBOX_LIST = "conversation_inbox"


async def list_conversations(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    filters: ConversationFilters,
    cursor: str | None,
    limit: int,
) -> tuple[list[Conversation], str | None]:
    """Return one page of conversations, newest activity first, and the next page's cursor.

    Activity is the newest message's time, or the creation time of a conversation without
    messages. Ties are ordered by id, so pages neither skip nor repeat conversations.
    """
    activity = _activity()
    statement = sa.select(Conversation).where(Conversation.workspace_id == workspace_id)
    if filters.statuses:
        statement = statement.where(Conversation.status.in_(filters.statuses))
    if filters.assignee == "me":
        statement = statement.where(Conversation.assignee_id == user_id)
    elif filters.assignee == "none":
        statement = statement.where(Conversation.assignee_id.is_(None))
    elif isinstance(filters.assignee, uuid.UUID):
        statement = statement.where(Conversation.assignee_id == filters.assignee)
    if filters.channel is not None:
        statement = statement.where(Conversation.channel == filters.channel)
    if filters.contact_id is not None:
        statement = statement.where(Conversation.contact_id == filters.contact_id)
    if filters.unread:
        unread = _unread_messages(user_id).where(
            ConversationMessage.conversation_id == Conversation.id
        )
        statement = statement.where(unread.exists())
    if cursor:
        moment, row_id = decode_cursor(cursor, _INBOX_LIST)
        statement = statement.where(
            sa.or_(activity < moment, sa.and_(activity == moment, Conversation.id < row_id))
        )
    statement = statement.order_by(activity.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = list(await uow.session.scalars(statement))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(_INBOX_LIST, last.last_message_at or last.created_at, last.id)
    return rows, next_cursor


async def unread_totals(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[int, int]:
    """Count the member's unread messages in the workspace and the conversations holding them."""
    unread = (
        _unread_messages(user_id).where(ConversationMessage.workspace_id == workspace_id).subquery()
    )
    row = (
        await uow.session.execute(
            sa.select(
                sa.func.count(), sa.func.count(sa.distinct(unread.c.conversation_id))
            ).select_from(unread)
        )
    ).one()
    return int(row[0]), int(row[1])


async def participants_view(uow: UnitOfWork, conversation: Conversation) -> list[dict[str, Any]]:
    """List the conversation's participants with their names and read positions."""
    participants = list(
        await uow.session.scalars(
            sa.select(ConversationParticipant)
            .where(ConversationParticipant.conversation_id == conversation.id)
            .order_by(ConversationParticipant.joined_at, ConversationParticipant.participant_key)
        )
    )
    member_ids = [
        uuid.UUID(p.participant_key) for p in participants if p.participant_type == "member"
    ]
    visitor_ids = [
        uuid.UUID(p.participant_key) for p in participants if p.participant_type == "visitor"
    ]
    names: dict[str, str | None] = {}
    if member_ids:
        rows = await uow.session.execute(
            sa.select(User.id, User.full_name).where(User.id.in_(member_ids))
        )
        names.update({str(row.id): row.full_name for row in rows})
    if visitor_ids:
        rows = await uow.session.execute(
            sa.select(ChatVisitor.id, ChatVisitor.name).where(ChatVisitor.id.in_(visitor_ids))
        )
        names.update({str(row.id): row.name for row in rows})
    return [
        {
            "type": p.participant_type,
            "id": p.participant_key,
            "name": names.get(p.participant_key),
            "last_read_seq": p.last_read_seq,
            "last_delivered_seq": p.last_delivered_seq,
            "read_at": _iso(p.read_at),
            "joined_at": iso_utc(p.joined_at),
        }
        for p in participants
    ]
