"""Storage use cases: buckets, object metadata, move, copy, delete and usage.

Every load of a bucket or object for a caller goes through ``get_bucket`` or ``get_object``,
which filter on the workspace, so another workspace's ids are NotFound like absent ones.
Blobs live at ``{workspace_id}/{object_id}``; rows are written after their blob, and blobs are
deleted by the ``storage.blob.delete`` job after the row's deletion commits.
"""

from __future__ import annotations

import base64
import json
import unicodedata
import uuid
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import CURSOR_MESSAGE, OTHER_LIST_MESSAGE, cursor_parts
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.keys import normalize_key, validate_metadata
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.schemas import (
    BucketCreate,
    BucketOut,
    BucketUpdate,
    ObjectOut,
    ObjectTransfer,
    Usage,
)
from frontdesk.storage.sniffing import UnsupportedMediaType, type_allowed
from frontdesk.workspaces.models import Workspace

log = structlog.get_logger()

DELETE_BLOB_JOB = "storage.blob.delete"


def blob_path(workspace_id: uuid.UUID, object_id: uuid.UUID) -> str:
    return f"{workspace_id}/{object_id}"


# --- Views ----------------------------------------------------------------------------------


def bucket_view(bucket: Bucket) -> BucketOut:
    return BucketOut.model_validate(bucket, from_attributes=True)


def object_view(stored: StoredObject, bucket: Bucket) -> ObjectOut:
    return ObjectOut(
        id=stored.id,
        bucket_id=bucket.id,
        bucket=bucket.name,
        key=stored.key,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        etag=f'"{stored.sha256}"',
        owner_id=stored.owner_id,
        metadata=stored.user_metadata,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def _event_data(stored: StoredObject, bucket: Bucket) -> dict[str, Any]:
    return object_view(stored, bucket).model_dump(mode="json")


# --- Buckets --------------------------------------------------------------------------------


async def get_bucket(uow: UnitOfWork, *, workspace_id: uuid.UUID, bucket_id: uuid.UUID) -> Bucket:
    bucket = await uow.session.get(Bucket, bucket_id)
    if bucket is None or bucket.workspace_id != workspace_id:
        raise NotFound("No such bucket in this workspace.")
    return bucket


async def list_buckets(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> list[Bucket]:
    rows = await uow.session.scalars(
        sa.select(Bucket).where(Bucket.workspace_id == workspace_id).order_by(Bucket.name)
    )
    return list(rows)


async def _ensure_name_free(uow: UnitOfWork, workspace_id: uuid.UUID, name: str) -> None:
    taken = await uow.session.scalar(
        sa.select(Bucket.id).where(Bucket.workspace_id == workspace_id, Bucket.name == name)
    )
    if taken is not None:
        raise Conflict(
            f"A bucket named '{name}' already exists in this workspace; choose another name.",
            code="bucket_exists",
        )


# Buckets that hold the public's files (form and chat uploads, received email) or customers'
# documents (invoice PDFs) and so can never be made public.
PRIVATE_ONLY_BUCKETS = frozenset({"form-uploads", "email-inbound", "chat-uploads", "invoices"})


def _check_visibility(name: str, visibility: str | None) -> None:
    if visibility == "public" and name in PRIVATE_ONLY_BUCKETS:
        raise Conflict(
            f"Bucket '{name}' holds files that the public sent (forms, chat, emails) or "
            "invoice PDFs, so it stays private; "
            "share single files with signed links instead.",
            code="bucket_must_stay_private",
        )


async def system_bucket(uow: UnitOfWork, workspace_id: uuid.UUID, name: str) -> Bucket:
    """Return one of the workspace's private-only buckets, creating it when missing.

    These buckets hold files that the public sent (form uploads, inbound email), so they
    are never public; Conflict is raised if one somehow is.
    """
    assert name in PRIVATE_ONLY_BUCKETS
    bucket = await uow.session.scalar(
        sa.select(Bucket).where(Bucket.workspace_id == workspace_id, Bucket.name == name)
    )
    if bucket is None:
        now = uow.now()
        bucket = Bucket(
            id=uuid7(),
            workspace_id=workspace_id,
            name=name,
            visibility="private",
            max_object_bytes=None,
            allowed_content_types=None,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(bucket)
        await uow.session.flush()
        log.info("storage.system_bucket_created", workspace_id=str(workspace_id), name=name)
    if bucket.visibility != "private":
        log.error("storage.system_bucket_public", workspace_id=str(workspace_id), name=name)
        raise Conflict(
            f"The bucket '{name}' is public, so it cannot hold files from the public; make "
            "it private.",
            code="upload_bucket_public",
        )
    return bucket


async def create_bucket(uow: UnitOfWork, *, workspace_id: uuid.UUID, data: BucketCreate) -> Bucket:
    await _ensure_name_free(uow, workspace_id, data.name)
    _check_visibility(data.name, data.visibility)
    now = uow.now()
    bucket = Bucket(
        workspace_id=workspace_id,
        name=data.name,
        visibility=data.visibility,
        max_object_bytes=data.max_object_bytes,
        allowed_content_types=data.allowed_content_types,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(bucket)
    await uow.session.flush()
    log.info("storage.bucket_created", bucket_id=str(bucket.id), workspace_id=str(workspace_id))
    return bucket


async def update_bucket(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, bucket_id: uuid.UUID, changes: BucketUpdate
) -> Bucket:
    """Change a bucket; a field sent as null clears the limit or the type list."""
    bucket = await get_bucket(uow, workspace_id=workspace_id, bucket_id=bucket_id)
    for field in changes.model_fields_set:
        value = getattr(changes, field)
        if field == "visibility" and value is None:
            raise ValidationFailed("visibility", "Use 'private' or 'public'.", "invalid_choice")
        if field == "visibility":
            _check_visibility(bucket.name, value)
        setattr(bucket, field, value)
    bucket.updated_at = uow.now()
    await uow.session.flush()
    return bucket


async def delete_bucket(uow: UnitOfWork, *, workspace_id: uuid.UUID, bucket_id: uuid.UUID) -> None:
    bucket = await get_bucket(uow, workspace_id=workspace_id, bucket_id=bucket_id)
    has_objects = await uow.session.scalar(
        sa.select(StoredObject.id).where(StoredObject.bucket_id == bucket.id).limit(1)
    )
    if has_objects is not None:
        raise Conflict(
            "The bucket still contains objects; delete or move them first.", code="bucket_not_empty"
        )
    await uow.session.delete(bucket)
    await uow.session.flush()
    log.info("storage.bucket_deleted", bucket_id=str(bucket_id), workspace_id=str(workspace_id))


# --- Objects --------------------------------------------------------------------------------


async def get_object(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, object_id: uuid.UUID
) -> tuple[StoredObject, Bucket]:
    stored = await uow.session.get(StoredObject, object_id)
    if stored is None or stored.workspace_id != workspace_id:
        raise NotFound("No such object in this workspace.")
    bucket = await uow.session.get(Bucket, stored.bucket_id)
    assert bucket is not None  # the foreign key keeps a bucket with objects
    return stored, bucket


async def get_object_by_id(uow: UnitOfWork, object_id: uuid.UUID) -> tuple[StoredObject, Bucket]:
    """Load an object in any workspace, for callers that authorized it another way.

    Signed links use this: the link's signature is the authorization, and the link names the
    object. Staff requests use ``get_object``.
    """
    stored = await uow.session.get(StoredObject, object_id)
    if stored is None:
        raise NotFound("No such object.")
    bucket = await uow.session.get(Bucket, stored.bucket_id)
    assert bucket is not None
    return stored, bucket


async def get_public_object(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, bucket_name: str, key: str
) -> StoredObject:
    """Load an object of a public bucket by address; anything else is the same NotFound."""
    not_found = NotFound("No such object in a public bucket.")
    bucket = await uow.session.scalar(
        sa.select(Bucket).where(
            Bucket.workspace_id == workspace_id,
            Bucket.name == bucket_name,
            Bucket.visibility == "public",
        )
    )
    if bucket is None:
        raise not_found
    stored = await find_object_by_key(uow, bucket, unicodedata.normalize("NFC", key))
    if stored is None:
        raise not_found
    return stored


async def find_object_by_key(uow: UnitOfWork, bucket: Bucket, key: str) -> StoredObject | None:
    stored: StoredObject | None = await uow.session.scalar(
        sa.select(StoredObject).where(StoredObject.bucket_id == bucket.id, StoredObject.key == key)
    )
    return stored


# The list name in the cursors of a bucket's objects, which are ordered by key.
_OBJECTS_LIST = "storage_objects"


def encode_key_cursor(key: str, object_id: uuid.UUID) -> str:
    raw = json.dumps([_OBJECTS_LIST, key, str(object_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        list_name, key, object_id = cursor_parts(cursor)
    except ValueError as exc:
        raise ValidationFailed("cursor", CURSOR_MESSAGE, "invalid_cursor") from exc
    if list_name != _OBJECTS_LIST:
        raise ValidationFailed("cursor", OTHER_LIST_MESSAGE, "invalid_cursor")
    try:
        # The key of an issued cursor is a stored key, so it passes the key rules unchanged.
        if normalize_key(key) != key:
            raise ValueError(CURSOR_MESSAGE)
        return key, uuid.UUID(object_id)
    except (ValueError, ValidationFailed) as exc:
        raise ValidationFailed("cursor", CURSOR_MESSAGE, "invalid_cursor") from exc


async def list_objects(
    uow: UnitOfWork,
    *,
    bucket: Bucket,
    prefix: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[StoredObject], str | None]:
    """List a bucket's objects whose key starts with ``prefix``, ordered by key, then id."""
    query = sa.select(StoredObject).where(StoredObject.bucket_id == bucket.id)
    if prefix:
        prefix = normalize_prefix(prefix)
        # substr compares code points exactly on both databases; SQLite's LIKE ignores ASCII
        # case.
        query = query.where(sa.func.substr(StoredObject.key, 1, len(prefix)) == prefix)
    if cursor is not None:
        after_key, after_id = decode_key_cursor(cursor)
        query = query.where(
            sa.or_(
                StoredObject.key > after_key,
                sa.and_(StoredObject.key == after_key, StoredObject.id > after_id),
            )
        )
    rows = list(
        await uow.session.scalars(
            query.order_by(StoredObject.key, StoredObject.id).limit(limit + 1)
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_key_cursor(rows[-1].key, rows[-1].id)
    return rows, next_cursor


def normalize_prefix(prefix: str) -> str:
    return unicodedata.normalize("NFC", prefix)


async def update_metadata(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, object_id: uuid.UUID, metadata: dict[str, str]
) -> tuple[StoredObject, Bucket]:
    stored, bucket = await get_object(uow, workspace_id=workspace_id, object_id=object_id)
    stored.user_metadata = validate_metadata(metadata)
    stored.updated_at = uow.now()
    await uow.session.flush()
    return stored, bucket


async def remove_object(uow: UnitOfWork, stored: StoredObject, bucket: Bucket) -> None:
    """Delete the row and enqueue the blob's deletion, which runs once the delete commits."""
    data = _event_data(stored, bucket)
    await uow.session.delete(stored)
    await uow.session.flush()
    uow.enqueue(
        DELETE_BLOB_JOB,
        {"path": blob_path(stored.workspace_id, stored.id)},
        workspace_id=stored.workspace_id,
    )
    uow.record_event("storage.object.deleted", data, workspace_id=stored.workspace_id)
    log.info("storage.object_deleted", object_id=str(stored.id), bucket_id=str(bucket.id))


async def delete_object(uow: UnitOfWork, *, workspace_id: uuid.UUID, object_id: uuid.UUID) -> None:
    stored, bucket = await get_object(uow, workspace_id=workspace_id, object_id=object_id)
    await remove_object(uow, stored, bucket)


async def claim_key(
    uow: UnitOfWork, bucket: Bucket, key: str, *, overwrite: bool, field: str = "key"
) -> StoredObject | None:
    """Return the object stored under ``key``, raising Conflict unless ``overwrite``."""
    existing = await find_object_by_key(uow, bucket, key)
    if existing is not None and not overwrite:
        raise Conflict(
            f"An object with this key already exists in bucket '{bucket.name}'; choose another "
            "key or pass overwrite=true.",
            code="key_exists",
        )
    return existing


def check_accepts(bucket: Bucket, *, content_type: str, size: int, max_bytes: int) -> None:
    """Check that the bucket accepts an object of this type and size."""
    if not type_allowed(content_type, bucket.allowed_content_types):
        allowed = ", ".join(bucket.allowed_content_types or [])
        raise UnsupportedMediaType(
            f"The content is {content_type}; bucket '{bucket.name}' accepts only {allowed}."
        )
    limit = object_limit(bucket, max_bytes)
    if size > limit:
        raise PayloadTooLarge(
            f"The object is {size} bytes; bucket '{bucket.name}' accepts at most {limit} bytes.",
            code="object_too_large",
        )


def object_limit(bucket: Bucket, instance_limit: int) -> int:
    if bucket.max_object_bytes is None:
        return instance_limit
    return min(bucket.max_object_bytes, instance_limit)


async def _transfer_target(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, source_bucket: Bucket, data: ObjectTransfer
) -> tuple[Bucket, str]:
    key = normalize_key(data.key)
    if data.bucket_id is None:
        return source_bucket, key
    try:
        bucket = await get_bucket(uow, workspace_id=workspace_id, bucket_id=data.bucket_id)
    except NotFound as exc:
        raise ValidationFailed(
            "bucket_id", "No such bucket in this workspace.", "unknown_bucket"
        ) from exc
    return bucket, key


async def move_object(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, object_id: uuid.UUID, data: ObjectTransfer
) -> tuple[StoredObject, Bucket]:
    """Rename an object or move it to another bucket; the blob stays where it is."""
    stored, bucket = await get_object(uow, workspace_id=workspace_id, object_id=object_id)
    target, key = await _transfer_target(
        uow, workspace_id=workspace_id, source_bucket=bucket, data=data
    )
    if target.id == bucket.id and key == stored.key:
        return stored, bucket
    check_accepts(
        target,
        content_type=stored.content_type,
        size=stored.size,
        max_bytes=uow.settings.storage_max_object_bytes,
    )
    existing = await claim_key(uow, target, key, overwrite=data.overwrite)
    if existing is not None:
        await remove_object(uow, existing, target)
    stored.bucket_id = target.id
    stored.key = key
    stored.updated_at = uow.now()
    await uow.session.flush()
    log.info("storage.object_moved", object_id=str(stored.id), bucket_id=str(target.id))
    return stored, target


async def usage(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> Usage:
    row = (
        await uow.session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(StoredObject.size), 0), sa.func.count(StoredObject.id)
            ).where(StoredObject.workspace_id == workspace_id)
        )
    ).one()
    return Usage(
        bytes_used=int(row[0]),
        object_count=int(row[1]),
        quota_bytes=uow.settings.storage_workspace_quota_bytes,
    )


def quota_exceeded(current: Usage) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The workspace storage quota of {current.quota_bytes} bytes would be exceeded "
        f"({current.bytes_used} bytes used); delete objects to free space.",
        code="quota_exceeded",
    )


def check_quota(current: Usage, adding: int) -> None:
    if current.bytes_used + adding > current.quota_bytes:
        raise quota_exceeded(current)


async def copy_object(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    object_id: uuid.UUID,
    data: ObjectTransfer,
    owner_id: uuid.UUID,
) -> tuple[StoredObject, Bucket]:
    """Copy an object to a new key, duplicating its blob through the backend."""
    source, source_bucket = await get_object(uow, workspace_id=workspace_id, object_id=object_id)
    target, key = await _transfer_target(
        uow, workspace_id=workspace_id, source_bucket=source_bucket, data=data
    )
    check_accepts(
        target,
        content_type=source.content_type,
        size=source.size,
        max_bytes=uow.settings.storage_max_object_bytes,
    )
    existing = await claim_key(uow, target, key, overwrite=data.overwrite)
    freed = existing.size if existing is not None else 0
    check_quota(await usage(uow, workspace_id=workspace_id), source.size - freed)

    now = uow.now()
    copy = StoredObject(
        id=uuid7(),
        workspace_id=workspace_id,
        bucket_id=target.id,
        key=key,
        content_type=source.content_type,
        size=source.size,
        sha256=source.sha256,
        owner_id=owner_id,
        user_metadata=dict(source.user_metadata),
        created_at=now,
        updated_at=now,
    )
    path = blob_path(workspace_id, copy.id)
    try:
        await uow.rt.storage.copy(blob_path(workspace_id, source.id), path)
    except BlobNotFound as exc:
        log.error("storage.blob_missing", object_id=str(source.id), workspace_id=str(workspace_id))
        raise Conflict(
            "The object's content is missing from storage; delete the object and upload it again.",
            code="blob_missing",
        ) from exc
    await add_object(uow, copy, target, existing=existing)
    return copy, target


async def add_object(
    uow: UnitOfWork, stored: StoredObject, bucket: Bucket, *, existing: StoredObject | None
) -> None:
    """Insert the row of an object whose blob is written, replacing ``existing``.

    The quota is checked again here, with the workspace's row locked on PostgreSQL (SQLite
    writers are serialized anyway), so uploads that streamed at the same time cannot pass it
    together. If the check or the insert fails, the blob is deleted before the error
    propagates. A blob whose row never commits for another reason (a crash) is reported by
    the consistency check.
    """
    try:
        await uow.session.execute(
            sa.select(Workspace.id).where(Workspace.id == stored.workspace_id).with_for_update()
        )
        freed = existing.size if existing is not None else 0
        check_quota(await usage(uow, workspace_id=stored.workspace_id), stored.size - freed)
        if existing is not None:
            await remove_object(uow, existing, bucket)
        uow.session.add(stored)
        await uow.session.flush()
    except BaseException as exc:
        await uow.rt.storage.delete(blob_path(stored.workspace_id, stored.id))
        if isinstance(exc, sa.exc.IntegrityError):
            raise Conflict(
                f"An object with this key was just added to bucket '{bucket.name}'; choose "
                "another key or pass overwrite=true.",
                code="key_exists",
            ) from exc
        raise
    uow.record_event(
        "storage.object.created", _event_data(stored, bucket), workspace_id=stored.workspace_id
    )
    log.info("storage.object_created", object_id=str(stored.id), bucket_id=str(bucket.id))
