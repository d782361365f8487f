"""Streaming uploads: the size limit, the quota and the content type, all while streaming.

The first bytes are buffered until the content type is known, so a rejected type stores
nothing. The rest streams to the backend, which raises BlobTooLarge past the limit and
leaves nothing behind; the row is added only after the blob is complete.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator

from frontdesk.core.errors import PayloadTooLarge, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage import service
from frontdesk.storage.backends.base import BlobTooLarge
from frontdesk.storage.keys import normalize_key
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.sniffing import (
    SNIFF_BYTES,
    TEXT_TYPES,
    UnsupportedMediaType,
    check_utf8,
    sniff_type,
    type_allowed,
)


async def _read_head(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """Read at least SNIFF_BYTES (or everything); return them and whether the stream ended."""
    head = bytearray()
    while len(head) < SNIFF_BYTES:
        try:
            head += await anext(chunks)
        except StopAsyncIteration:
            return bytes(head), True
    return bytes(head), False


async def _prepend(head: bytes, rest: AsyncIterator[bytes], complete: bool) -> AsyncIterator[bytes]:
    if head:
        yield head
    if not complete:
        async for chunk in rest:
            yield chunk


async def upload_object(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    bucket_id: uuid.UUID,
    key: str,
    overwrite: bool,
    claimed_type: str,
    chunks: AsyncIterable[bytes],
    owner_id: uuid.UUID | None,
    release_read_transaction: bool = False,
    max_bytes: int | None = None,
    allowed_types: list[str] | None = None,
    allow_empty: bool = True,
) -> tuple[StoredObject, Bucket]:
    """Store a streamed upload as a new object of the bucket.

    ``max_bytes`` and ``allowed_types`` narrow the bucket's own limits for this upload, as a
    form's file field does. Without ``allow_empty`` an upload of no bytes gets 422
    ``file_empty``.

    With ``release_read_transaction`` the caller promises that its unit of work has written
    nothing yet: the transaction that did the checks ends before the bytes stream and a new
    one records the object. On SQLite a transaction holds the database's only write lock, so
    a slow upload would otherwise hold up every other write for as long as it streams.
    """
    bucket = await service.get_bucket(uow, workspace_id=workspace_id, bucket_id=bucket_id)
    bucket_name = bucket.name
    key = normalize_key(key)
    await service.claim_key(uow, bucket, key, overwrite=overwrite)

    instance_limit = uow.settings.storage_max_object_bytes
    object_limit = service.object_limit(bucket, instance_limit)
    if max_bytes is not None:
        object_limit = min(object_limit, max_bytes)
    # The quota read here bounds the stream; add_object checks it again before the insert.
    current = await service.usage(uow, workspace_id=workspace_id)
    existing = await service.find_object_by_key(uow, bucket, key) if overwrite else None
    quota_room = current.quota_bytes - current.bytes_used + (existing.size if existing else 0)
    stream_limit = max(0, min(object_limit, quota_room))
    if release_read_transaction:
        # Detached, the bucket keeps its loaded attributes through the rollback.
        uow.session.expunge(bucket)
        await uow.session.rollback()

    stream = aiter(chunks)
    head, complete = await _read_head(stream)
    if not head and not allow_empty:
        raise ValidationFailed("body", "The file is empty; send a file with content.", "file_empty")
    content_type = sniff_type(
        head[:SNIFF_BYTES],
        complete=complete and len(head) <= SNIFF_BYTES,
        claimed=claimed_type,
        key=key,
    )
    # The size is checked while streaming; here only the type counts.
    service.check_accepts(bucket, content_type=content_type, size=0, max_bytes=instance_limit)
    if allowed_types is not None and not type_allowed(content_type, allowed_types):
        raise UnsupportedMediaType(
            f"The content is {content_type}; this upload accepts only {', '.join(allowed_types)}."
        )

    body = _prepend(head, stream, complete)
    if content_type in TEXT_TYPES:
        body = check_utf8(body)

    object_id = uuid7()
    path = service.blob_path(workspace_id, object_id)
    try:
        written = await uow.rt.storage.write(
            path, body, max_bytes=stream_limit, content_type=content_type
        )
    except BlobTooLarge as exc:
        if stream_limit < object_limit:
            raise service.quota_exceeded(current) from exc
        limit_owner = "this upload" if max_bytes is not None else f"bucket '{bucket_name}'"
        raise PayloadTooLarge(
            f"The upload is larger than {object_limit} bytes, the limit of {limit_owner}; "
            "send a smaller file.",
            code="object_too_large",
        ) from exc

    if release_read_transaction:
        try:
            # Load the bucket again in the new transaction; it may be gone by now.
            bucket = await service.get_bucket(uow, workspace_id=workspace_id, bucket_id=bucket_id)
        except BaseException:
            await uow.rt.storage.delete(path)
            raise
    now = uow.now()
    stored = StoredObject(
        id=object_id,
        workspace_id=workspace_id,
        bucket_id=bucket_id,
        key=key,
        content_type=content_type,
        size=written.size,
        sha256=written.sha256,
        owner_id=owner_id,
        user_metadata={},
        created_at=now,
        updated_at=now,
    )
    # The key may have been taken while the bytes streamed.
    try:
        existing = await service.claim_key(uow, bucket, key, overwrite=overwrite)
    except BaseException:
        await uow.rt.storage.delete(path)
        raise
    await service.add_object(uow, stored, bucket, existing=existing)
    return stored, bucket
