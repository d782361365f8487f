"""Request and response bodies of the forms API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from frontdesk.contacts.normalize import SINGLE_LINE_CHECK, MultilineText, SingleLineText
from frontdesk.core.fields import JsonNumber
from frontdesk.storage.schemas import ContentTypePattern

FieldType = Literal[
    "text",
    "long_text",
    "email",
    "phone",
    "number",
    "date",
    "choice",
    "multi_choice",
    "checkbox",
    "consent",
    "file",
]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)

MAX_FIELDS = 100
MAX_OPTIONS = 200
MAX_ALLOWED_ORIGINS = 20
MAX_LENGTH_LIMIT = 100_000
MAX_FILES_PER_FIELD = 10
DEFAULT_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_FILE_TYPES = ("image/*", "application/pdf")

# Stripping and length checks run before the control-character check.
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SINGLE_LINE_CHECK
]

Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), SINGLE_LINE_CHECK
]


class FieldOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        SINGLE_LINE_CHECK,
    ]
    label: Label


class FieldValidation(BaseModel):
    """Constraints on an answer: lengths and pattern for text types, min and max for numbers."""

    model_config = ConfigDict(extra="forbid")

    min_length: int | None = Field(default=None, strict=True, ge=0, le=MAX_LENGTH_LIMIT)
    max_length: int | None = Field(default=None, strict=True, ge=1, le=MAX_LENGTH_LIMIT)
    min: JsonNumber | None = None
    max: JsonNumber | None = None
    pattern: SingleLineText | None = Field(
        default=None,
        max_length=1000,
        description="RE2 syntax; the whole answer must match (full match).",
    )


class FileOptions(BaseModel):
    """Limits of a ``file`` field; files are stored in the workspace's ``form-uploads`` bucket."""

    model_config = ConfigDict(extra="forbid")

    max_files: int = Field(default=1, strict=True, ge=1, le=MAX_FILES_PER_FIELD)
    max_bytes: int = Field(
        strict=True,
        default=DEFAULT_FILE_BYTES,
        ge=1,
        description="Largest accepted file in bytes; at most the instance's storage limit.",
    )
    content_types: list[ContentTypePattern] = Field(
        default_factory=lambda: list(DEFAULT_FILE_TYPES),
        min_length=1,
        max_length=50,
        description="Accepted types, read from the bytes: exact types or 'type/*'.",
    )


class FieldDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Unique in the form; matches ^[a-z][a-z0-9_]{0,62}$.")
    type: FieldType
    label: Label
    required: StrictBool = False
    help: MultilineText | None = Field(default=None, max_length=2000)
    options: list[FieldOption] | None = None
    validation: FieldValidation | None = None
    file: FileOptions | None = Field(
        default=None, description="Only for 'file' fields; defaults apply when omitted."
    )


class FormCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    fields: list[FieldDefinition]
    published: StrictBool = True
    language: SingleLineText = Field(
        default="en", description="en, fr, de, es, nl, pt or it; region allowed."
    )
    redirect_url: SingleLineText | None = Field(
        default=None, description="Absolute http(s) URL the browser goes to after a submission."
    )
    success_message: MultilineText | None = Field(default=None, max_length=2000)
    allowed_origins: list[SingleLineText] = Field(
        default_factory=list,
        description="Origins allowed to submit JSON from a browser, like https://studio.example.",
    )


class FormUpdate(BaseModel):
    """A change to a form; fields that are not sent stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    fields: list[FieldDefinition] | None = None
    published: StrictBool | None = None
    language: SingleLineText | None = None
    redirect_url: SingleLineText | None = None
    success_message: MultilineText | None = Field(default=None, max_length=2000)
    allowed_origins: list[SingleLineText] | None = None


class FormOut(BaseModel):
    id: uuid.UUID
    name: str
    fields: list[FieldDefinition]
    published: bool
    version: int = Field(description="Latest published version; 0 until first published.")
    language: str
    redirect_url: str | None
    success_message: str | None
    allowed_origins: list[str]
    public_id: str
    public_url: str
    created_at: datetime
    updated_at: datetime


class FormList(BaseModel):
    items: list[FormOut]


class FormVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    name: str
    fields: list[FieldDefinition]
    created_at: datetime


class FormVersionList(BaseModel):
    items: list[FormVersionOut]


class SubmissionReceived(BaseModel):
    status: Literal["received"] = "received"


class FormUploadOut(BaseModel):
    token: str = Field(description="Put this in the file field's answer; valid for one day.")
    field: str
    name: str = Field(description="The file name as stored, without any folder.")
    size: int
    content_type: str = Field(description="Read from the bytes.")
