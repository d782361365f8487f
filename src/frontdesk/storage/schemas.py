"""Request and response bodies of the storage API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from frontdesk.core.db import MAX_SQL_INTEGER

BUCKET_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
# A media type ("application/pdf") or a whole top-level type ("image/*").
_CONTENT_TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$")
MAX_ALLOWED_TYPES = 50


def _check_content_type(value: str) -> str:
    if not _CONTENT_TYPE_PATTERN.match(value):
        raise ValueError(
            f"'{value}' is not a media type; write it like 'application/pdf' or 'image/*'."
        )
    return value


BucketName = Annotated[
    str, StringConstraints(pattern=BUCKET_NAME_PATTERN, min_length=2, max_length=63)
]
Visibility = Literal["private", "public"]
ContentTypePattern = Annotated[
    str, StringConstraints(to_lower=True, max_length=255), AfterValidator(_check_content_type)
]


class BucketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: BucketName = Field(
        description="Unique in the workspace: lowercase letters, digits and '-', 2-63 characters."
    )
    visibility: Visibility = "private"
    max_object_bytes: int | None = Field(default=None, strict=True, ge=1, le=MAX_SQL_INTEGER)
    allowed_content_types: list[ContentTypePattern] | None = Field(
        default=None, max_length=MAX_ALLOWED_TYPES
    )


class BucketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visibility: Visibility | None = None
    max_object_bytes: int | None = Field(default=None, strict=True, ge=1, le=MAX_SQL_INTEGER)
    allowed_content_types: list[ContentTypePattern] | None = Field(
        default=None, max_length=MAX_ALLOWED_TYPES
    )


class BucketOut(BaseModel):
    id: uuid.UUID
    name: str
    visibility: Visibility
    max_object_bytes: int | None
    allowed_content_types: list[str] | None
    created_at: datetime
    updated_at: datetime


class BucketList(BaseModel):
    items: list[BucketOut]


class ObjectOut(BaseModel):
    id: uuid.UUID
    bucket_id: uuid.UUID
    bucket: str
    key: str
    content_type: str
    size: int
    sha256: str
    etag: str
    owner_id: uuid.UUID | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


class ObjectList(BaseModel):
    items: list[ObjectOut]
    next_cursor: str | None = None


class ObjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, str]


class ObjectTransfer(BaseModel):
    """The destination of a move or a copy."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=4096)
    bucket_id: uuid.UUID | None = Field(
        default=None, description="Destination bucket; the object's own bucket by default."
    )
    overwrite: StrictBool = False


class Usage(BaseModel):
    bytes_used: int
    object_count: int
    quota_bytes: int


class CheckReport(BaseModel):
    """The result of a consistency check between object rows and backend blobs."""

    orphan_blobs: list[str]
    missing_blobs: list[uuid.UUID]
    deleted_blobs: int
    swept_temp_files: int
