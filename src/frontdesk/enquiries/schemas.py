"""Request and response bodies of the enquiries API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from frontdesk.contacts.normalize import MultilineText, SingleLineText
from frontdesk.contacts.schemas import ContactSummary

EnquiryStatus = Literal["new", "open", "awaiting_customer", "won", "lost", "closed"]
STATUSES: tuple[str, ...] = get_args(EnquiryStatus)
# Enquiry sources: public forms, staff entering one by hand, and inbound email.
SOURCES = ("form", "manual", "email")

MAX_TAG_LENGTH = 50
MAX_TAGS_PER_ENQUIRY = 50


class AssigneeSummary(BaseModel):
    id: uuid.UUID
    full_name: str


class EnquiryOut(BaseModel):
    """An enquiry as the API returns it, and as the data of its events."""

    id: uuid.UUID
    status: EnquiryStatus
    source: str
    source_details: dict[str, Any]
    subject: str | None
    answers: dict[str, Any]
    consent: dict[str, Any]
    form_id: uuid.UUID | None
    form_version: int | None
    contact: ContactSummary | None
    assignee: AssigneeSummary | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class EnquiryUpdate(BaseModel):
    """A staff change; fields that are not sent stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: EnquiryStatus | None = None
    assignee_id: uuid.UUID | None = Field(
        default=None, description="A member of the workspace, or null to unassign."
    )
    subject: SingleLineText | None = Field(default=None, max_length=300)


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(min_length=1, max_length=20)


class ActivityOut(BaseModel):
    """One entry of the timeline.

    ``type`` is created, status_changed or assigned (data {from, to}), tagged or untagged
    (data {tags}), or updated (data {fields: {name: {from, to}}}).
    """

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class Timeline(BaseModel):
    items: list[ActivityOut]


class ManualContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SingleLineText | None = Field(default=None, max_length=200)
    email: SingleLineText | None = Field(default=None, max_length=320)
    phone: SingleLineText | None = Field(default=None, max_length=64)


class EnquiryCreate(BaseModel):
    """An enquiry entered by staff, for example from a phone call."""

    model_config = ConfigDict(extra="forbid")

    contact: ManualContact = Field(default_factory=ManualContact)
    message: MultilineText = Field(min_length=1, max_length=20_000)
    subject: SingleLineText | None = Field(default=None, max_length=300)
    status: EnquiryStatus = "new"
    assignee_id: uuid.UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
