"""Signed-link, preview and scan endpoints of the storage API, and the public link routes.

Staff create links under ``/api/v1/storage``; anyone holding a link uses it at
``/storage/links/{token}``. Uploads through links count as from the public: when scanning is
on they stay quarantined until clamd has scanned them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep
from frontdesk.core.db import MAX_SQL_INTEGER
from frontdesk.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Problem,
    ValidationFailed,
)
from frontdesk.storage import links, previews, scanning, service
from frontdesk.storage.downloads import etag_matches, object_response
from frontdesk.storage.keys import normalize_key
from frontdesk.storage.models import StoredObject
from frontdesk.storage.schemas import MAX_ALLOWED_TYPES, ContentTypePattern
from frontdesk.storage.sniffing import SNIFF_BYTES, UnsupportedMediaType, sniff_type, type_allowed
from frontdesk.storage.uploads import upload_object

log = structlog.get_logger()

router = APIRouter(tags=["storage"])

API = "/api/v1/storage"

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem, "description": "The role is too low for this action."},
    404: {"model": Problem, "description": "No such bucket or object in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_LINK_ERRORS: dict[int | str, dict[str, object]] = {
    403: {
        "model": Problem,
        "description": "The link is invalid: `code` is link_tampered, link_expired, "
        "link_revoked or link_used.",
    },
    404: {"model": Problem, "description": "The linked object was deleted."},
    409: {"model": Problem, "description": "The file was rejected by the virus scanner."},
    423: {"model": Problem, "description": "The file is being scanned for viruses."},
}

ExpiresIn = Annotated[
    int,
    Field(
        strict=True,
        ge=links.MIN_EXPIRES_IN,
        le=links.MAX_EXPIRES_IN,
        description="Seconds until the link expires: 60 to 604800 (7 days).",
    ),
]


class DownloadLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: ExpiresIn = 3600


class UploadLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=4096, description="The key that the upload will have.")
    expires_in: ExpiresIn = 3600
    max_bytes: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=MAX_SQL_INTEGER,
        description="Upload size limit; the bucket's limit by default.",
    )
    content_types: list[ContentTypePattern] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_TYPES,
        description="Types that the upload may have, checked on the bytes; any by default.",
    )


class LinkOut(BaseModel):
    url: str
    expires_at: datetime


class KeyRotationOut(BaseModel):
    rotated_at: datetime


class LinkUploadOut(BaseModel):
    """The stored object as the public uploader sees it: no owner, bucket name or metadata."""

    id: uuid.UUID
    key: str
    content_type: str
    size: int
    sha256: str
    status: Literal["available", "quarantined"]


class ScanOut(BaseModel):
    object_id: uuid.UUID
    status: Literal["available", "quarantined", "infected"]
    signature: str | None = None
    scanned_at: datetime | None = None


def _link_url(uow: UowDep, token: str) -> str:
    return f"{uow.settings.resolved_public_url}/storage/links/{token}"


# --- Creating links --------------------------------------------------------------------------


@router.post(
    f"{API}/objects/{{object_id}}/links",
    status_code=201,
    response_model=LinkOut,
    responses=_ERRORS,
)
async def create_download_link(
    uow: UowDep,
    actor: AgentDep,
    object_id: uuid.UUID,
    body: DownloadLinkCreate | None = None,
) -> LinkOut:
    """Create a link that downloads the object without authentication until it expires."""
    stored, _bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    token, claims = await links.sign_download_link(
        uow,
        workspace_id=actor.workspace_id,
        object_id=stored.id,
        expires_in=(body or DownloadLinkCreate()).expires_in,
    )
    log.info("storage.download_link_created", object_id=str(stored.id), user_id=str(actor.user_id))
    return LinkOut(url=_link_url(uow, token), expires_at=claims.expires_datetime)


@router.post(
    f"{API}/buckets/{{bucket_id}}/upload-links",
    status_code=201,
    response_model=LinkOut,
    responses=_ERRORS,
)
async def create_upload_link(
    uow: UowDep, actor: AgentDep, bucket_id: uuid.UUID, body: UploadLinkCreate
) -> LinkOut:
    """Create a single-use link that uploads one object with the given key to the bucket."""
    bucket = await service.get_bucket(uow, workspace_id=actor.workspace_id, bucket_id=bucket_id)
    key = normalize_key(body.key)
    limit = service.object_limit(bucket, uow.settings.storage_max_object_bytes)
    if body.max_bytes is not None and body.max_bytes > limit:
        raise ValidationFailed(
            "max_bytes", f"Bucket '{bucket.name}' accepts at most {limit} bytes; send less."
        )
    content_types = tuple(body.content_types or ())
    for index, pattern in enumerate(content_types):
        if bucket.allowed_content_types is not None and not (
            pattern in bucket.allowed_content_types
            or type_allowed(pattern, bucket.allowed_content_types)
        ):
            raise ValidationFailed(
                f"content_types.{index}",
                f"Bucket '{bucket.name}' does not accept {pattern}; use one of "
                f"{', '.join(bucket.allowed_content_types)}.",
            )
    token, claims = await links.sign_upload_link(
        uow,
        workspace_id=actor.workspace_id,
        bucket_id=bucket.id,
        key=key,
        expires_in=body.expires_in,
        max_bytes=body.max_bytes or limit,
        content_types=content_types,
    )
    log.info("storage.upload_link_created", bucket_id=str(bucket.id), user_id=str(actor.user_id))
    return LinkOut(url=_link_url(uow, token), expires_at=claims.expires_datetime)


@router.post(f"{API}/signing-keys/rotate", response_model=KeyRotationOut, responses=_ERRORS)
async def rotate_signing_keys(uow: UowDep, actor: AdminDep) -> KeyRotationOut:
    """Replace the workspace's link-signing key; every link created before stops working."""
    await links.rotate_signing_keys(uow, actor.workspace_id)
    return KeyRotationOut(rotated_at=uow.now())


# --- Using links -------------------------------------------------------------------------------

TokenPath = Annotated[str, Path(max_length=8192, description="The token of a signed link.")]


async def _linked_object(uow: UowDep, claims: links.LinkClaims) -> StoredObject:
    stored = await uow.session.get(StoredObject, claims.object_id)
    if stored is None or stored.workspace_id != claims.workspace_id:
        raise NotFound("The linked object no longer exists.")
    return stored


@router.get(
    "/storage/links/{token}",
    response_class=Response,
    responses={
        **_LINK_ERRORS,
        200: {"description": "The object's bytes."},
        206: {"description": "The requested range."},
        304: {"description": "The If-None-Match ETag is current."},
    },
)
async def download_with_link(uow: UowDep, request: Request, token: TokenPath) -> Response:
    """Download the object that a download link names; supports one Range and If-None-Match."""
    claims = await links.verify_link(uow, token, "GET")
    stored = await _linked_object(uow, claims)
    await scanning.ensure_downloadable(uow, stored)
    return await object_response(uow.rt.storage, stored, request.headers)


async def _read_head(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    head = bytearray()
    while len(head) < SNIFF_BYTES:
        try:
            head += await anext(chunks)
        except StopAsyncIteration:
            return bytes(head), True
    return bytes(head), False


async def _limited(
    head: bytes, rest: AsyncIterator[bytes], complete: bool, max_bytes: int
) -> AsyncIterator[bytes]:
    """Pass the stream through, raising PayloadTooLarge once it passes the link's limit."""
    total = 0

    async def chunks() -> AsyncIterable[bytes]:
        yield head
        if not complete:
            async for chunk in rest:
                yield chunk

    async for chunk in chunks():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {max_bytes} bytes, the limit of this link; send a "
                "smaller file or ask for a new link.",
                code="object_too_large",
            )
        if chunk:
            yield chunk


@router.put(
    "/storage/links/{token}",
    status_code=201,
    response_model=LinkUploadOut,
    responses={
        **_LINK_ERRORS,
        409: {"model": Problem, "description": "An object with the link's key exists."},
        413: {"model": Problem, "description": "Larger than the link's or the bucket's limit."},
        415: {"model": Problem, "description": "The link or the bucket rejects the type."},
    },
)
async def upload_with_link(uow: UowDep, request: Request, token: TokenPath) -> LinkUploadOut:
    """Upload the raw request body as the object that an upload link names; works once."""
    claims = await links.verify_link(uow, token, "PUT")
    assert claims.bucket_id is not None and claims.key is not None
    assert claims.max_bytes is not None
    # Recorded first, so that a concurrent upload with the same link waits on this row and
    # then fails. A failed upload rolls the record back and the link stays usable.
    await links.record_link_use(uow, claims)
    claimed = request.headers.get("content-type", "").split(";")[0].strip().lower()

    try:
        stream = aiter(request.stream())
        head, complete = await _read_head(stream)
        content_type = sniff_type(
            head[:SNIFF_BYTES],
            complete=complete and len(head) <= SNIFF_BYTES,
            claimed=claimed,
            key=claims.key,
        )
        if claims.content_types and not type_allowed(content_type, list(claims.content_types)):
            raise UnsupportedMediaType(
                f"The content is {content_type}; this link accepts only "
                f"{', '.join(claims.content_types)}."
            )
        stored, _bucket = await upload_object(
            uow,
            workspace_id=claims.workspace_id,
            bucket_id=claims.bucket_id,
            key=claims.key,
            overwrite=False,
            claimed_type=claimed,
            chunks=_limited(head, stream, complete, claims.max_bytes),
            # A link upload has no owner: it comes from someone outside the workspace.
            owner_id=None,
        )
    except ClientDisconnect as exc:
        raise BadRequest(
            "The client disconnected during the upload.", code="upload_aborted"
        ) from exc
    except Conflict as exc:
        if exc.code != "key_exists":
            raise
        # The staff message suggests overwrite=true, which a link's holder cannot send.
        raise Conflict(
            "A file already exists under this link's name; ask the sender for a new link.",
            code="key_exists",
        ) from exc

    status = await scanning.quarantine(uow, stored)
    log.info("storage.link_upload", object_id=str(stored.id), status=status)
    return LinkUploadOut(
        id=stored.id,
        key=stored.key,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        status=status,  # type: ignore[arg-type]
    )


# --- Previews and scan state ------------------------------------------------------------------


@router.get(
    f"{API}/objects/{{object_id}}/preview",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"description": "The thumbnail image."},
        304: {"description": "The If-None-Match ETag is current."},
        409: {"model": Problem, "description": "The file was rejected by the virus scanner."},
        415: {"model": Problem, "description": "The object is not a PNG, JPEG, GIF or WebP."},
        423: {"model": Problem, "description": "The file is being scanned for viruses."},
    },
)
async def preview(
    uow: UowDep,
    actor: AgentDep,
    request: Request,
    object_id: uuid.UUID,
    width: Annotated[int, Query(ge=1, le=previews.MAX_BOX)] = previews.DEFAULT_BOX,
    height: Annotated[int, Query(ge=1, le=previews.MAX_BOX)] = previews.DEFAULT_BOX,
    output_format: Annotated[previews.PreviewFormat, Query(alias="format")] = "webp",
) -> Response:
    """Return a thumbnail that fits in width x height pixels, keeping the aspect ratio.

    Rendered on demand and not stored; the ETag lets clients cache it.
    """
    stored, _bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    if stored.content_type not in previews.PREVIEW_SOURCE_TYPES:
        raise UnsupportedMediaType(
            f"The object is {stored.content_type}; previews exist only for PNG, JPEG, GIF and "
            "WebP images."
        )
    await scanning.ensure_downloadable(uow, stored)
    etag = f'"{stored.sha256}-{width}x{height}-{output_format}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)

    path = service.blob_path(stored.workspace_id, stored.id)
    data = b"".join([chunk async for chunk in uow.rt.storage.read(path)])
    try:
        rendered = await previews.render_preview_in_thread(
            data,
            content_type=stored.content_type,
            width=width,
            height=height,
            output=output_format,
            max_pixels=uow.settings.preview_max_pixels,
        )
    except previews.ImageTooLarge as exc:
        log.warning("storage.preview_rejected", object_id=str(stored.id), reason="too_large")
        raise ValidationFailed("content", f"{str(exc).capitalize()}.", "image_too_large") from exc
    except previews.NotAnImage as exc:
        raise ValidationFailed("content", f"{str(exc).capitalize()}.", "invalid_image") from exc
    return Response(rendered.data, media_type=rendered.content_type, headers=headers)


@router.get(f"{API}/objects/{{object_id}}/scan", response_model=ScanOut, responses=_ERRORS)
async def get_scan(uow: UowDep, actor: AgentDep, object_id: uuid.UUID) -> ScanOut:
    """Return the object's virus-scan status; staff uploads are always available."""
    stored, _bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    scan = await scanning.scan_status(uow, stored.id)
    if scan is None:
        return ScanOut(object_id=stored.id, status="available")
    return ScanOut(
        object_id=stored.id,
        status=scan.status,  # type: ignore[arg-type]
        signature=scan.signature,
        scanned_at=scan.scanned_at,
    )
