"""Website chat use cases: a workspace's chat settings and what its visitors may do.

Every load of a visitor's conversation or file goes through ``get_visitor_conversation`` and
``visitor_attachment``, which raise the same NotFound for another visitor's or another
workspace's ids as for absent ones. Visitors write messages through the conversation service, as
staff do.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from frontdesk.contacts.normalize import InvalidValue, normalize_email
from frontdesk.contacts.service import match_or_create_contact
from frontdesk.conversations import service
from frontdesk.conversations.attachments import attachment_dict, message_with_attachment
from frontdesk.conversations.models import (
    ChatSettings,
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
)
from frontdesk.conversations.visitors import (
    InvalidVisitorToken,
    decode_visitor_token,
    issue_visitor_token,
)
from frontdesk.core.errors import FieldError, NotFound, Unauthorized, ValidationFailed
from frontdesk.core.ids import new_token, uuid7
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.forms.uploads import safe_file_name
from frontdesk.storage import scanning
from frontdesk.storage import service as storage
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.uploads import upload_object

log = structlog.get_logger()

UPLOAD_BUCKET = "chat-uploads"
# Uploads that no message carries are deleted after this long.
UNSENT_UPLOAD_LIFETIME = timedelta(days=1)
SWEEP_JOB = "chat.uploads.sweep"
DEFAULT_THEME: dict[str, str] = {
    "title": "Chat with us",
    "greeting": "Hi! How can we help you?",
    "color": "#2563eb",
    "position": "right",
}
MAX_TITLE_CHARS = 80
MAX_GREETING_CHARS = 500
MAX_ALLOWED_ORIGINS = 50
MAX_VISITOR_NAME_CHARS = 200
# Types read from the bytes. SVG is left out because it can carry scripts.
UPLOAD_TYPES = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/avif",
    "application/pdf",
    "audio/*",
    "video/*",
    "text/plain",
    "text/csv",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DISABLED = "Website chat is turned off for this workspace."


# --- Settings ---------------------------------------------------------------------------------


def new_public_key() -> str:
    return new_token(24)


def theme_of(settings: ChatSettings) -> dict[str, str]:
    return {**DEFAULT_THEME, **settings.theme}


def settings_dict(settings: ChatSettings) -> dict[str, Any]:
    return {
        "public_key": settings.public_key,
        "enabled": settings.enabled,
        "theme": theme_of(settings),
        "allowed_origins": list(settings.allowed_origins),
        "updated_at": settings.updated_at.isoformat(),
    }


async def get_or_create_settings(uow: UnitOfWork, workspace_id: uuid.UUID) -> ChatSettings:
    """Return the workspace's chat settings, creating them with a new public key if missing."""
    settings = await uow.session.get(ChatSettings, workspace_id)
    if settings is not None:
        return settings
    now = uow.now()
    settings = ChatSettings(
        workspace_id=workspace_id,
        public_key=new_public_key(),
        enabled=True,
        theme={},
        allowed_origins=[],
        created_at=now,
        updated_at=now,
    )
    try:
        async with uow.session.begin_nested():
            uow.session.add(settings)
    except IntegrityError:
        # A concurrent request created them first, and its row is visible after the wait.
        existing = await uow.session.get(ChatSettings, workspace_id, populate_existing=True)
        if existing is None:
            raise
        return existing
    log.info("chat.settings_created", workspace_id=str(workspace_id))
    return settings


def check_theme(theme: dict[str, Any]) -> dict[str, str]:
    """Validate theme fields. Each error names ``theme.<field>``."""
    errors: list[FieldError] = []
    checked: dict[str, str] = {}
    limits = {"title": MAX_TITLE_CHARS, "greeting": MAX_GREETING_CHARS}
    for name, value in theme.items():
        field = f"theme.{name}"
        if name not in DEFAULT_THEME:
            errors.append(
                FieldError(
                    field=field,
                    message="Unknown theme field; use title, greeting, color or position.",
                    code="extra_forbidden",
                )
            )
        elif not isinstance(value, str):
            errors.append(FieldError(field=field, message="Use a string.", code="invalid_type"))
        elif name in limits and not (0 < len(value.strip()) <= limits[name]):
            errors.append(
                FieldError(
                    field=field,
                    message=f"Use 1 to {limits[name]} characters.",
                    code="invalid_length",
                )
            )
        elif name == "color" and not _COLOR.match(value):
            errors.append(
                FieldError(
                    field=field, message="Use a hex color like #2563eb.", code="invalid_color"
                )
            )
        elif name == "position" and value not in ("left", "right"):
            errors.append(
                FieldError(field=field, message="Use 'left' or 'right'.", code="invalid_choice")
            )
        else:
            checked[name] = value.strip() if name in limits else value.lower()
    if errors:
        raise ValidationFailed.many(errors)
    return checked


def normalize_origin(value: str) -> str:
    """Return ``scheme://host[:port]`` in lower case, or raise ValueError with the reason."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Use an origin like https://www.example.com.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("An origin has no path, query or user; use only scheme://host[:port].")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("The port is not a number from 1 to 65535.") from exc
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def check_origins(origins: Sequence[str]) -> list[str]:
    if len(origins) > MAX_ALLOWED_ORIGINS:
        raise ValidationFailed(
            "allowed_origins", f"List at most {MAX_ALLOWED_ORIGINS} origins.", "too_many"
        )
    errors: list[FieldError] = []
    normalized: list[str] = []
    for index, origin in enumerate(origins):
        try:
            normalized.append(normalize_origin(origin))
        except ValueError as exc:
            errors.append(
                FieldError(field=f"allowed_origins.{index}", message=str(exc), code="invalid")
            )
    if errors:
        raise ValidationFailed.many(errors)
    return list(dict.fromkeys(normalized))


async def update_settings(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    *,
    enabled: bool | None,
    theme: dict[str, Any] | None,
    allowed_origins: Sequence[str] | None,
) -> ChatSettings:
    """Change the given settings. Given theme fields replace only those theme fields."""
    checked_theme = check_theme(theme) if theme is not None else None
    checked_origins = check_origins(allowed_origins) if allowed_origins is not None else None
    settings = await get_or_create_settings(uow, workspace_id)
    if enabled is not None:
        settings.enabled = enabled
    if checked_theme is not None:
        settings.theme = {**settings.theme, **checked_theme}
    if checked_origins is not None:
        settings.allowed_origins = checked_origins
    settings.updated_at = uow.now()
    await uow.session.flush()
    log.info("chat.settings_updated", workspace_id=str(workspace_id))
    return settings


async def rotate_public_key(uow: UnitOfWork, workspace_id: uuid.UUID) -> ChatSettings:
    """Give the workspace a new public key, so widgets embedded with the old key stop working."""
    settings = await get_or_create_settings(uow, workspace_id)
    settings.public_key = new_public_key()
    settings.updated_at = uow.now()
    await uow.session.flush()
    log.info("chat.public_key_rotated", workspace_id=str(workspace_id))
    return settings


async def find_settings_by_key(uow: UnitOfWork, public_key: str) -> ChatSettings | None:
    found: ChatSettings | None = await uow.session.scalar(
        sa.select(ChatSettings).where(ChatSettings.public_key == public_key)
    )
    return found


def ensure_enabled(settings: ChatSettings) -> None:
    if not settings.enabled:
        raise NotFound(_DISABLED, code="chat_disabled")


# --- Visitors ---------------------------------------------------------------------------------


def visitor_dict(visitor: ChatVisitor) -> dict[str, Any]:
    return {"id": str(visitor.id), "name": visitor.name, "email": visitor.email}


def check_visitor_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_VISITOR_NAME_CHARS or not name.isprintable():
        raise ValidationFailed(
            "name",
            f"Use at most {MAX_VISITOR_NAME_CHARS} printable characters.",
            "invalid",
        )
    return name or None


def check_visitor_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    try:
        return normalize_email(email)
    except InvalidValue as exc:
        raise ValidationFailed(
            "email", "Enter a valid email address, like name@example.com.", exc.code
        ) from exc


async def create_visitor(
    uow: UnitOfWork, settings: ChatSettings, *, name: str | None, email: str | None
) -> tuple[ChatVisitor, str]:
    """Create a visitor and return it with its token."""
    checked_name = check_visitor_name(name)
    checked_email = check_visitor_email(email)
    now = uow.now()
    visitor = ChatVisitor(
        id=uuid7(),
        workspace_id=settings.workspace_id,
        name=checked_name,
        email=None,
        created_at=now,
        last_seen_at=now,
    )
    uow.session.add(visitor)
    await uow.session.flush()
    if checked_email is not None:
        await _link_email(uow, visitor, checked_email)
    token = issue_visitor_token(
        uow.rt.secrets.secret_key,
        workspace_id=settings.workspace_id,
        visitor_id=visitor.id,
        now=now,
    )
    log.info("chat.visitor_created", workspace_id=str(settings.workspace_id))
    return visitor, token


async def authenticate_visitor(
    uow: UnitOfWork, settings: ChatSettings, token: str | None
) -> ChatVisitor:
    """Return the visitor a token names, or raise 401 for a bad, revoked or foreign token."""
    if not token:
        raise Unauthorized(
            "Send the visitor token from POST /chat/{key}/visitors as "
            "'Authorization: Bearer <token>'."
        )
    invalid = Unauthorized(
        "The visitor token is invalid or revoked; get a new one with POST /chat/{key}/visitors."
    )
    try:
        claims = decode_visitor_token(uow.rt.secrets.secret_key, token)
    except InvalidVisitorToken as exc:
        raise invalid from exc
    if claims.workspace_id != settings.workspace_id:
        raise invalid
    visitor = await uow.session.get(ChatVisitor, claims.visitor_id)
    if visitor is None or visitor.workspace_id != settings.workspace_id or visitor.revoked_at:
        raise invalid
    return visitor


def touch_visitor(uow: UnitOfWork, visitor: ChatVisitor) -> None:
    """Record that the visitor was active, at most once a minute to spare writes."""
    now = uow.now()
    if (now - visitor.last_seen_at).total_seconds() >= 60:
        visitor.last_seen_at = now


async def update_visitor(
    uow: UnitOfWork, visitor: ChatVisitor, changes: dict[str, str | None]
) -> ChatVisitor:
    """Change the visitor's name or email. A new email links the visitor to a contact."""
    if "name" in changes:
        visitor.name = check_visitor_name(changes["name"])
    if "email" in changes:
        email = check_visitor_email(changes["email"])
        if email is None:
            visitor.email = None
        elif email != visitor.email:
            await _link_email(uow, visitor, email)
    touch_visitor(uow, visitor)
    await uow.session.flush()
    return visitor


async def _link_email(uow: UnitOfWork, visitor: ChatVisitor, email: str) -> None:
    """Store the email and point the visitor and its conversations at the matching contact."""
    contact = await match_or_create_contact(
        uow, workspace_id=visitor.workspace_id, email=email, phone=None, name=visitor.name
    )
    visitor.email = email
    visitor.contact_id = contact.id
    conversations = await uow.session.scalars(
        sa.select(Conversation).where(
            Conversation.visitor_id == visitor.id, Conversation.workspace_id == visitor.workspace_id
        )
    )
    now = uow.now()
    for conversation in conversations:
        if conversation.contact_id == contact.id:
            continue
        conversation.contact_id = contact.id
        conversation.updated_at = now
        uow.record_event(
            "conversation.updated",
            service.conversation_dict(conversation),
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
        )
    await uow.session.flush()


# --- Conversations ----------------------------------------------------------------------------


async def _read_positions(
    uow: UnitOfWork, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Return, per conversation, the visitor's read seq and the highest read seq of staff."""
    positions = {conversation_id: (0, 0) for conversation_id in conversation_ids}
    if not conversation_ids:
        return positions
    rows = await uow.session.execute(
        sa.select(
            ConversationParticipant.conversation_id,
            ConversationParticipant.participant_type,
            sa.func.max(ConversationParticipant.last_read_seq),
        )
        .where(ConversationParticipant.conversation_id.in_(conversation_ids))
        .group_by(ConversationParticipant.conversation_id, ConversationParticipant.participant_type)
    )
    for conversation_id, participant_type, seq in rows:
        visitor_seq, staff_seq = positions[conversation_id]
        if participant_type == "visitor":
            visitor_seq = int(seq or 0)
        elif participant_type == "member":
            staff_seq = int(seq or 0)
        positions[conversation_id] = (visitor_seq, staff_seq)
    return positions


def visitor_conversation_dict(
    conversation: Conversation, positions: tuple[int, int]
) -> dict[str, Any]:
    visitor_read_seq, staff_read_seq = positions
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "last_seq": conversation.last_seq,
        "visitor_read_seq": visitor_read_seq,
        "staff_read_seq": staff_read_seq,
        "last_message_at": (
            conversation.last_message_at.isoformat() if conversation.last_message_at else None
        ),
        "created_at": conversation.created_at.isoformat(),
    }


async def describe_conversations(
    uow: UnitOfWork, conversations: Sequence[Conversation]
) -> list[dict[str, Any]]:
    positions = await _read_positions(uow, [conversation.id for conversation in conversations])
    return [
        visitor_conversation_dict(conversation, positions[conversation.id])
        for conversation in conversations
    ]


async def list_visitor_conversations(uow: UnitOfWork, visitor: ChatVisitor) -> list[Conversation]:
    """Return the visitor's conversations, newest first."""
    rows = await uow.session.scalars(
        sa.select(Conversation)
        .where(
            Conversation.visitor_id == visitor.id,
            Conversation.workspace_id == visitor.workspace_id,
        )
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(100)
    )
    return list(rows)


async def start_conversation(uow: UnitOfWork, visitor: ChatVisitor) -> tuple[Conversation, bool]:
    """Return the visitor's newest conversation that is not resolved, or start a new one."""
    latest = await uow.session.scalar(
        sa.select(Conversation)
        .where(
            Conversation.visitor_id == visitor.id,
            Conversation.workspace_id == visitor.workspace_id,
            Conversation.status != "resolved",
        )
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(1)
    )
    touch_visitor(uow, visitor)
    if latest is not None:
        return latest, False
    conversation = await service.create_conversation(
        uow,
        workspace_id=visitor.workspace_id,
        channel="chat",
        contact_id=visitor.contact_id,
        visitor_id=visitor.id,
    )
    log.info("chat.conversation_started", conversation_id=str(conversation.id))
    return conversation, True


async def get_visitor_conversation(
    uow: UnitOfWork, visitor: ChatVisitor, conversation_id: uuid.UUID
) -> Conversation:
    """Return the visitor's own conversation. Any other id raises the same NotFound."""
    conversation = await uow.session.get(Conversation, conversation_id)
    if (
        conversation is None
        or conversation.workspace_id != visitor.workspace_id
        or conversation.visitor_id != visitor.id
    ):
        raise NotFound("No such conversation for this visitor.")
    return conversation


async def _visitor_uploads(
    uow: UnitOfWork, visitor: ChatVisitor, upload_ids: Sequence[uuid.UUID]
) -> list[StoredObject]:
    """Load the visitor's own uploads named by id, in the order given, without repeats.

    Any other id is a field error naming its index in ``attachments``.
    """
    unique = list(dict.fromkeys(upload_ids))
    if not unique:
        return []
    bucket = await storage.system_bucket(uow, visitor.workspace_id, UPLOAD_BUCKET)
    rows = await uow.session.scalars(
        sa.select(StoredObject).where(
            StoredObject.id.in_(unique),
            StoredObject.workspace_id == visitor.workspace_id,
            StoredObject.bucket_id == bucket.id,
        )
    )
    own = {row.id: row for row in rows if row.user_metadata.get("visitor_id") == str(visitor.id)}
    errors = [
        FieldError(
            field=f"attachments.{list(upload_ids).index(upload_id)}",
            message=f"No upload {upload_id} of this visitor; upload the file first.",
            code="not_found",
        )
        for upload_id in unique
        if upload_id not in own
    ]
    if errors:
        raise ValidationFailed.many(errors)
    return [own[upload_id] for upload_id in unique]


async def send_visitor_message(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    conversation: Conversation,
    *,
    body: str,
    client_message_id: str | None,
    upload_ids: Sequence[uuid.UUID],
) -> tuple[ConversationMessage, bool]:
    """Post the visitor's message with their uploads; returns it and whether it is new.

    Each upload records the first message that carried it, so the sweep keeps it.
    """
    uploads = await _visitor_uploads(uow, visitor, upload_ids)
    message, created = await service.post_message(
        uow,
        conversation,
        author=service.Author(type="visitor", id=visitor.id, name=visitor.name),
        kind="message",
        body=body,
        attachments=[attachment_dict(stored) for stored in uploads],
        client_message_id=client_message_id,
    )
    for stored in uploads:
        if "message_id" not in stored.user_metadata:
            stored.user_metadata = {**stored.user_metadata, "message_id": str(message.id)}
    touch_visitor(uow, visitor)
    await uow.session.flush()
    return message, created


# --- Files ------------------------------------------------------------------------------------


async def store_visitor_upload(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    *,
    file_name: str | None,
    claimed_type: str,
    chunks: AsyncIterable[bytes],
) -> StoredObject:
    """Store one visitor file in the private chat-uploads bucket, quarantined when scanning.

    Raises 413 past ``chat_upload_max_bytes`` or the workspace quota and 415 for a type
    outside UPLOAD_TYPES, read from the bytes. Nothing is stored then.
    """
    bucket = await storage.system_bucket(uow, visitor.workspace_id, UPLOAD_BUCKET)
    name = safe_file_name(file_name)
    stored, _bucket = await upload_object(
        uow,
        workspace_id=visitor.workspace_id,
        bucket_id=bucket.id,
        key=f"visitors/{visitor.id}/{uuid7()}/{name}",
        overwrite=False,
        claimed_type=claimed_type,
        chunks=chunks,
        owner_id=None,
        max_bytes=uow.settings.chat_upload_max_bytes,
        allowed_types=UPLOAD_TYPES,
    )
    stored.user_metadata = {"visitor_id": str(visitor.id)}
    await uow.session.flush()
    await scanning.quarantine(uow, stored)
    touch_visitor(uow, visitor)
    log.info(
        "chat.file_uploaded",
        object_id=str(stored.id),
        size=stored.size,
        content_type=stored.content_type,
    )
    return stored


async def visitor_attachment(
    uow: UnitOfWork, visitor: ChatVisitor, conversation: Conversation, object_id: uuid.UUID
) -> StoredObject:
    """Return a file the visitor may download: one on a visible message of the conversation,
    or their own upload. Anything else raises NotFound. Quarantined and infected files raise
    423 and 409."""
    not_found = NotFound("No such file in this conversation.")
    try:
        stored, bucket = await storage.get_object(
            uow, workspace_id=visitor.workspace_id, object_id=object_id
        )
    except NotFound as exc:
        raise not_found from exc
    own_upload = bucket.name == UPLOAD_BUCKET and stored.user_metadata.get("visitor_id") == str(
        visitor.id
    )
    if not own_upload:
        message = await message_with_attachment(
            uow, conversation_id=conversation.id, object_id=object_id, visitor_only=True
        )
        if message is None:
            raise not_found
    await scanning.ensure_downloadable(uow, stored)
    return stored


async def discard_unsent_uploads(uow: UnitOfWork, *, older_than: timedelta) -> int:
    """Delete visitor uploads older than ``older_than`` that no message carries; return how many.

    NOTE: an upload that only a staff member attached, by its object id, counts as unsent.
    """
    cutoff = uow.now() - older_than
    rows = (
        await uow.session.execute(
            sa.select(StoredObject, Bucket)
            .join(Bucket, Bucket.id == StoredObject.bucket_id)
            .where(
                Bucket.name == UPLOAD_BUCKET,
                StoredObject.created_at < cutoff,
                StoredObject.user_metadata["message_id"].as_string().is_(None),
            )
            .limit(500)
        )
    ).all()
    for stored, bucket in rows:
        await storage.remove_object(uow, stored, bucket)
    if rows:
        log.info("chat.unsent_uploads_discarded", count=len(rows))
    return len(rows)


@periodic(SWEEP_JOB, every_seconds=3600)
async def sweep_unsent_uploads(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await discard_unsent_uploads(uow, older_than=UNSENT_UPLOAD_LIFETIME)
