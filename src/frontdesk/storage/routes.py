"""Storage API: admins manage buckets; agents upload, read, move, copy and delete objects."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.requests import ClientDisconnect

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import BadRequest, Problem
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from frontdesk.storage import scanning, service
from frontdesk.storage.downloads import object_response
from frontdesk.storage.schemas import (
    BucketCreate,
    BucketList,
    BucketOut,
    BucketUpdate,
    ObjectList,
    ObjectOut,
    ObjectTransfer,
    ObjectUpdate,
    Usage,
)
from frontdesk.storage.uploads import upload_object

router = APIRouter(prefix="/storage", tags=["storage"])
# Mounted at the root, without the /api/v1 prefix: these addresses are for browsers.
public_router = APIRouter(prefix="/storage/public", tags=["storage"])

UPLOAD_PATH_PREFIX = "/api/v1/storage/buckets/"

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem, "description": "Managing buckets needs the admin role."},
    404: {"model": Problem, "description": "No such bucket or object in this workspace."},
    409: {"model": Problem, "description": "The name or key is taken, or the bucket is not empty."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    413: {"model": Problem, "description": "Larger than the bucket limit or the quota."},
    415: {"model": Problem, "description": "The bucket does not accept the content's type."},
}
_DOWNLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    416: {"model": Problem, "description": "The range starts past the end of the object."},
}

KeyQuery = Annotated[
    str,
    Query(
        max_length=4096,
        description="The object's key: any printable Unicode up to 1024 UTF-8 bytes.",
    ),
]


# --- Buckets --------------------------------------------------------------------------------


@router.post("/buckets", status_code=201, response_model=BucketOut, responses=_ERRORS)
async def create_bucket(uow: UowDep, actor: AdminDep, body: BucketCreate) -> BucketOut:
    bucket = await service.create_bucket(uow, workspace_id=actor.workspace_id, data=body)
    return service.bucket_view(bucket)


@router.get("/buckets", response_model=BucketList, responses=_ERRORS)
@read_only
async def list_buckets(uow: UowDep, actor: AgentDep) -> BucketList:
    buckets = await service.list_buckets(uow, workspace_id=actor.workspace_id)
    return BucketList(items=[service.bucket_view(bucket) for bucket in buckets])


@router.get("/buckets/{bucket_id}", response_model=BucketOut, responses=_ERRORS)
@read_only
async def get_bucket(uow: UowDep, actor: AgentDep, bucket_id: uuid.UUID) -> BucketOut:
    bucket = await service.get_bucket(uow, workspace_id=actor.workspace_id, bucket_id=bucket_id)
    return service.bucket_view(bucket)


@router.patch("/buckets/{bucket_id}", response_model=BucketOut, responses=_ERRORS)
async def update_bucket(
    uow: UowDep, actor: AdminDep, bucket_id: uuid.UUID, body: BucketUpdate
) -> BucketOut:
    """Change a bucket. The limits apply to later uploads; stored objects stay."""
    bucket = await service.update_bucket(
        uow, workspace_id=actor.workspace_id, bucket_id=bucket_id, changes=body
    )
    return service.bucket_view(bucket)


@router.delete("/buckets/{bucket_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_bucket(uow: UowDep, actor: AdminDep, bucket_id: uuid.UUID) -> Response:
    """Delete an empty bucket; a bucket with objects is a 409."""
    await service.delete_bucket(uow, workspace_id=actor.workspace_id, bucket_id=bucket_id)
    return Response(status_code=204)


# --- Objects --------------------------------------------------------------------------------


@router.post(
    "/buckets/{bucket_id}/objects",
    status_code=201,
    response_model=ObjectOut,
    responses=_UPLOAD_ERRORS,
)
async def upload(
    uow: UowDep,
    actor: AgentDep,
    request: Request,
    bucket_id: uuid.UUID,
    key: KeyQuery,
    overwrite: bool = False,
) -> ObjectOut:
    """Upload the raw request body as an object.

    The stored content type is read from the bytes; the request's Content-Type only
    distinguishes text/csv from text/plain. With overwrite=true an existing object of the key is replaced
    by a new object (a new id).
    """
    claimed = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        stored, bucket = await upload_object(
            uow,
            workspace_id=actor.workspace_id,
            bucket_id=bucket_id,
            key=key,
            overwrite=overwrite,
            claimed_type=claimed,
            chunks=request.stream(),
            owner_id=actor.user_id,
            release_read_transaction=True,
        )
    except ClientDisconnect as exc:
        # The client is gone and never receives this; the backend already removed the partial upload.
        raise BadRequest(
            "The client disconnected during the upload.", code="upload_aborted"
        ) from exc
    return service.object_view(stored, bucket)


@router.get("/buckets/{bucket_id}/objects", response_model=ObjectList, responses=_ERRORS)
@read_only
async def list_objects(
    uow: UowDep,
    actor: AgentDep,
    bucket_id: uuid.UUID,
    prefix: Annotated[str, Query(max_length=4096)] = "",
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ObjectList:
    """List objects whose key starts with `prefix`, ordered by key (code points), then id."""
    bucket = await service.get_bucket(uow, workspace_id=actor.workspace_id, bucket_id=bucket_id)
    rows, next_cursor = await service.list_objects(
        uow, bucket=bucket, prefix=prefix, cursor=cursor, limit=limit
    )
    return ObjectList(
        items=[service.object_view(row, bucket) for row in rows], next_cursor=next_cursor
    )


@router.get("/objects/{object_id}", response_model=ObjectOut, responses=_ERRORS)
@read_only
async def get_object(uow: UowDep, actor: AgentDep, object_id: uuid.UUID) -> ObjectOut:
    stored, bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    return service.object_view(stored, bucket)


@router.patch("/objects/{object_id}", response_model=ObjectOut, responses=_ERRORS)
async def update_object(
    uow: UowDep, actor: AgentDep, object_id: uuid.UUID, body: ObjectUpdate
) -> ObjectOut:
    """Replace the object's user metadata (up to 20 string pairs, 1 KiB in all)."""
    stored, bucket = await service.update_metadata(
        uow, workspace_id=actor.workspace_id, object_id=object_id, metadata=body.metadata
    )
    return service.object_view(stored, bucket)


@router.delete("/objects/{object_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_object(uow: UowDep, actor: AgentDep, object_id: uuid.UUID) -> Response:
    await service.delete_object(uow, workspace_id=actor.workspace_id, object_id=object_id)
    return Response(status_code=204)


@router.post("/objects/{object_id}/move", response_model=ObjectOut, responses=_UPLOAD_ERRORS)
async def move_object(
    uow: UowDep, actor: AgentDep, object_id: uuid.UUID, body: ObjectTransfer
) -> ObjectOut:
    """Rename an object or move it to another bucket of the workspace; no bytes are copied."""
    stored, bucket = await service.move_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id, data=body
    )
    return service.object_view(stored, bucket)


@router.post(
    "/objects/{object_id}/copy",
    status_code=201,
    response_model=ObjectOut,
    responses=_UPLOAD_ERRORS,
)
async def copy_object(
    uow: UowDep, actor: AgentDep, object_id: uuid.UUID, body: ObjectTransfer
) -> ObjectOut:
    """Copy an object to a new key, in its bucket or another; counts against the quota.

    A file that is still being scanned (423) or was found infected (409) cannot be copied,
    because the copy would be a new object that nothing scans.
    """
    source, _source_bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    await scanning.ensure_downloadable(uow, source)
    stored, bucket = await service.copy_object(
        uow,
        workspace_id=actor.workspace_id,
        object_id=object_id,
        data=body,
        owner_id=actor.user_id,
    )
    return service.object_view(stored, bucket)


@router.get(
    "/objects/{object_id}/content",
    response_class=Response,
    responses={
        **_DOWNLOAD_ERRORS,
        200: {"description": "The object's bytes."},
        206: {"description": "The requested range."},
        304: {"description": "The If-None-Match ETag is current."},
    },
)
async def download(
    uow: UowDep, actor: AgentDep, request: Request, object_id: uuid.UUID
) -> Response:
    """Download the object as an attachment; supports one Range and If-None-Match."""
    stored, _bucket = await service.get_object(
        uow, workspace_id=actor.workspace_id, object_id=object_id
    )
    await scanning.ensure_downloadable(uow, stored)
    return await object_response(uow.rt.storage, stored, request.headers)


@router.get("/usage", response_model=Usage, responses=_ERRORS)
@read_only
async def usage(uow: UowDep, actor: AgentDep) -> Usage:
    """Return the workspace's stored bytes, object count and quota."""
    return await service.usage(uow, workspace_id=actor.workspace_id)


@public_router.get(
    "/{workspace_id}/{bucket_name}/{key:path}",
    response_class=Response,
    responses={
        404: {"model": Problem, "description": "No such object in a public bucket."},
        416: {"model": Problem, "description": "The range starts past the end of the object."},
    },
)
async def download_public(
    uow: UowDep, request: Request, workspace_id: uuid.UUID, bucket_name: str, key: str
) -> Response:
    """Download an object of a public bucket without authentication.

    The key is the rest of the path, percent-encoded where needed (`?` as `%3F`, `#` as `%23`).
    """
    stored = await service.get_public_object(
        uow, workspace_id=workspace_id, bucket_name=bucket_name, key=key
    )
    await scanning.ensure_downloadable(uow, stored)
    return await object_response(uow.rt.storage, stored, request.headers)
