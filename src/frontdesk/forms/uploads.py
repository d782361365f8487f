"""Files that visitors attach to a form's file fields.

A file reaches a form in one of two ways. A script uploads it first with
``POST /f/{public_id}/uploads`` and puts the returned token in the JSON answers, or the
hosted page posts it inside a multipart/form-data submission. Both store it as an object
of the workspace's private ``form-uploads`` bucket, owned by nobody, quarantined until
clamd scans it when scanning is on, and recorded as a FormUpload. A submission attaches
its uploads to the new enquiry. Uploads that no submission names are deleted after a day.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.errors import FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import new_token, uuid7
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.forms.i18n import error_message
from frontdesk.forms.models import Form, FormUpload
from frontdesk.storage import scanning, service
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.uploads import upload_object

log = structlog.get_logger()

UPLOAD_BUCKET = "form-uploads"
PENDING_UPLOAD_LIFETIME = timedelta(days=1)
SWEEP_JOB = "forms.uploads.sweep"
MAX_FILE_NAME_CHARACTERS = 150

_UNSAFE_NAME_CHARACTERS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class StoredUpload:
    upload: FormUpload
    stored: StoredObject
    token: str


def safe_file_name(name: str | None) -> str:
    """Return a file name to use in an object key, from a name a browser or client sent.

    Only the last path segment is kept; control characters, slashes and backslashes go,
    leading dots are dropped, and the result is NFC and at most 150 characters.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_NAME_CHARACTERS.sub("", name).strip().lstrip(".").strip()
    if len(name) > MAX_FILE_NAME_CHARACTERS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            name = stem[: MAX_FILE_NAME_CHARACTERS - len(extension) - 1] + "." + extension
        else:
            name = name[:MAX_FILE_NAME_CHARACTERS]
    return name or "upload"


def file_field(form: Form, field_key: str) -> Mapping[str, Any]:
    """Return the form's file field ``field_key``, or raise NotFound."""
    for field in form.fields:
        if field["key"] == field_key and field["type"] == "file":
            return field
    raise NotFound(
        f"The form has no file field '{field_key[:100]}'; use the key of a 'file' field.",
        code="field_not_found",
    )


async def upload_bucket(uow: UnitOfWork, workspace_id: uuid.UUID) -> Bucket:
    """Return the workspace's private ``form-uploads`` bucket, creating it when missing."""
    return await service.system_bucket(uow, workspace_id, UPLOAD_BUCKET)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def store_upload(
    uow: UnitOfWork,
    *,
    form: Form,
    field: Mapping[str, Any],
    file_name: str | None,
    claimed_type: str,
    chunks: AsyncIterable[bytes],
) -> StoredUpload:
    """Store one visitor file for ``field`` of ``form``, within the field's type and size limits.

    Raises the storage errors: 413 past ``max_bytes``, 415 for a type the field does not
    accept (read from the bytes), and 413 `quota_exceeded` when the workspace's quota is full.
    """
    options = field.get("file") or {}
    bucket = await upload_bucket(uow, form.workspace_id)
    name = safe_file_name(file_name)
    upload_id = uuid7()
    stored, _bucket = await upload_object(
        uow,
        workspace_id=form.workspace_id,
        bucket_id=bucket.id,
        key=f"forms/{form.id}/{upload_id}/{name}",
        overwrite=False,
        claimed_type=claimed_type,
        chunks=chunks,
        owner_id=None,
        max_bytes=options.get("max_bytes"),
        allowed_types=options.get("content_types"),
        allow_empty=False,
    )
    token = new_token(24)
    upload = FormUpload(
        object_id=stored.id,
        workspace_id=form.workspace_id,
        form_id=form.id,
        field_key=field["key"],
        token_hash=_hash_token(token),
        file_name=name,
        enquiry_id=None,
        created_at=uow.now(),
    )
    uow.session.add(upload)
    await uow.session.flush()
    await scanning.quarantine(uow, stored)
    log.info(
        "forms.file_uploaded",
        form_id=str(form.id),
        object_id=str(stored.id),
        size=stored.size,
        content_type=stored.content_type,
    )
    return StoredUpload(upload=upload, stored=stored, token=token)


async def resolve_uploads(
    uow: UnitOfWork, form: Form, answers: Mapping[str, Any]
) -> tuple[dict[str, Any], list[FormUpload]]:
    """Replace the upload tokens of file answers by file descriptions.

    Each token must name a pending upload of the same form and field that is less than a
    day old. Returns the new answers and the uploads to attach, or raises ValidationFailed
    with one error per field whose tokens are not all valid.
    """
    resolved = dict(answers)
    uploads: list[FormUpload] = []
    errors: list[FieldError] = []
    oldest = uow.now() - PENDING_UPLOAD_LIFETIME
    for field in form.fields:
        key = field["key"]
        if field["type"] != "file" or key not in answers:
            continue
        tokens: Sequence[str] = answers[key]
        rows = (
            await uow.session.execute(
                sa.select(FormUpload, StoredObject)
                .join(StoredObject, StoredObject.id == FormUpload.object_id)
                .where(FormUpload.token_hash.in_([_hash_token(token) for token in tokens]))
                .with_for_update()
            )
        ).all()
        by_hash = {
            upload.token_hash: (upload, stored)
            for upload, stored in rows
            if upload.form_id == form.id
            and upload.field_key == key
            and upload.enquiry_id is None
            and upload.created_at >= oldest
        }
        # The files keep the order in which the tokens were given.
        valid = [by_hash[_hash_token(token)] for token in tokens if _hash_token(token) in by_hash]
        if len(valid) != len(tokens):
            errors.append(
                FieldError(
                    field=key,
                    message=error_message(form.language, "upload_invalid"),
                    code="upload_invalid",
                )
            )
            continue
        uploads.extend(upload for upload, _stored in valid)
        resolved[key] = [
            {
                "object_id": str(stored.id),
                "name": upload.file_name,
                "size": stored.size,
                "content_type": stored.content_type,
            }
            for upload, stored in valid
        ]
    if errors:
        raise ValidationFailed.many(errors)
    return resolved, uploads


async def discard_pending(uow: UnitOfWork, *, older_than: timedelta) -> int:
    """Delete pending uploads older than ``older_than`` with their objects; return how many."""
    cutoff = uow.now() - older_than
    rows = (
        await uow.session.execute(
            sa.select(StoredObject, Bucket)
            .join(FormUpload, FormUpload.object_id == StoredObject.id)
            .join(Bucket, Bucket.id == StoredObject.bucket_id)
            .where(FormUpload.enquiry_id.is_(None), FormUpload.created_at < cutoff)
            .limit(500)
        )
    ).all()
    for stored, bucket in rows:
        await service.remove_object(uow, stored, bucket)
    if rows:
        log.info("forms.pending_uploads_discarded", count=len(rows))
    return len(rows)


@periodic(SWEEP_JOB, every_seconds=3600)
async def sweep_pending_uploads(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await discard_pending(uow, older_than=PENDING_UPLOAD_LIFETIME)
