"""Files of website chat visitors: uploads, what a visitor may download, and the sweep.

Uploads go to the workspace's private ``chat-uploads`` bucket, tagged with the visitor's id
in ``user_metadata``, and with the id of the first message that carried them. Uploads that
no message carries are deleted after a day.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.conversations.attachments import message_with_attachment
from frontdesk.conversations.models import ChatVisitor, Conversation, ConversationMessage
from frontdesk.core.errors import FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.forms.uploads import safe_file_name
from frontdesk.storage import scanning
from frontdesk.storage import service as storage
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.sniffing import UnsupportedMediaType
from frontdesk.storage.uploads import upload_object

log = structlog.get_logger()

UPLOAD_BUCKET = "chat-uploads"
# Uploads that no message carries are deleted after this long.
UNSENT_UPLOAD_LIFETIME = timedelta(days=1)
SWEEP_JOB = "chat.uploads.sweep"
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


# File names a browser or desktop may run as active content when the file is opened.
ACTIVE_CONTENT_SUFFIXES = (
    ".svg", ".svgz", ".html", ".htm", ".xhtml", ".xht", ".shtml", ".xml", ".js", ".mjs", ".hta",
)  # fmt: skip
# The start of an SVG, HTML or XML document: such text sniffs as text/plain but is markup.
_MARKUP_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*<(?:\?xml|svg|!doctype|html|head|body|script|iframe)\b", re.IGNORECASE
)
_MARKUP_PROBE_BYTES = 1024


def reject_active_content_name(name: str) -> None:
    """Raise 415 for a file name whose extension marks scriptable content (SVG, HTML, XML)."""
    if name.lower().endswith(ACTIVE_CONTENT_SUFFIXES):
        raise UnsupportedMediaType(
            "SVG, HTML, XML and script files are not accepted, because they can run scripts; "
            "send an image as PNG or JPEG, or a document as PDF."
        )


async def reject_markup(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Pass the chunks through, raising 415 when the body starts like SVG, HTML or XML."""
    head = b""
    checked = False
    async for chunk in chunks:
        if checked:
            yield chunk
            continue
        head += chunk
        if len(head) < _MARKUP_PROBE_BYTES:
            continue
        _check_markup(head)
        checked = True
        yield head
    if not checked:
        _check_markup(head)
        if head:
            yield head


def _check_markup(head: bytes) -> None:
    if _MARKUP_START.match(head[:_MARKUP_PROBE_BYTES]):
        raise UnsupportedMediaType(
            "The file is SVG, HTML or XML, which can run scripts; send an image as PNG or "
            "JPEG, or a document as PDF."
        )


async def visitor_uploads(
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
    reject_active_content_name(name)
    stored, _bucket = await upload_object(
        uow,
        workspace_id=visitor.workspace_id,
        bucket_id=bucket.id,
        key=f"visitors/{visitor.id}/{uuid7()}/{name}",
        overwrite=False,
        claimed_type=claimed_type,
        chunks=reject_markup(chunks),
        allow_empty=False,
        owner_id=None,
        max_bytes=uow.settings.chat_upload_max_bytes,
        allowed_types=UPLOAD_TYPES,
    )
    stored.user_metadata = {"visitor_id": str(visitor.id)}
    await uow.session.flush()
    await scanning.quarantine(uow, stored)
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


async def _carrying_message(uow: UnitOfWork, stored: StoredObject) -> uuid.UUID | None:
    """Find a message in the uploader's conversations that carries the object, if any.

    Messages sent over the realtime gateway do not mark their uploads, so the sweep looks
    for the object's id in the attachments of the uploader's conversations.
    """
    try:
        visitor_id = uuid.UUID(str(stored.user_metadata.get("visitor_id")))
    except ValueError:
        return None
    found: uuid.UUID | None = await uow.session.scalar(
        sa.select(ConversationMessage.id)
        .where(
            ConversationMessage.conversation_id.in_(
                sa.select(Conversation.id).where(
                    Conversation.visitor_id == visitor_id,
                    Conversation.workspace_id == stored.workspace_id,
                )
            ),
            sa.cast(ConversationMessage.attachments, sa.Text).contains(str(stored.id)),
        )
        .order_by(ConversationMessage.seq)
        .limit(1)
    )
    return found


async def discard_unsent_uploads(uow: UnitOfWork, *, older_than: timedelta) -> int:
    """Delete visitor uploads older than ``older_than`` that no message carries; return how many.

    Uploads found on a message of the uploader's conversations are marked with its id and
    kept.
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
    discarded = 0
    for stored, bucket in rows:
        message_id = await _carrying_message(uow, stored)
        if message_id is not None:
            stored.user_metadata = {**stored.user_metadata, "message_id": str(message_id)}
            continue
        await storage.remove_object(uow, stored, bucket)
        discarded += 1
    await uow.session.flush()
    if rows:
        log.info("chat.unsent_uploads_discarded", count=discarded, kept=len(rows) - discarded)
    return discarded


@periodic(SWEEP_JOB, every_seconds=3600)
async def sweep_unsent_uploads(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await discard_unsent_uploads(uow, older_than=UNSENT_UPLOAD_LIFETIME)
