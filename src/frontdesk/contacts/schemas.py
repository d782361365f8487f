"""Request and response bodies of the contacts API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from frontdesk.contacts.normalize import MultilineText, SingleLineText


class ContactSummary(BaseModel):
    """The contact as shown inside an enquiry."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None


class ContactOut(ContactSummary):
    notes: str | None
    created_at: datetime
    updated_at: datetime


class ContactDetail(ContactOut):
    enquiries_count: int


class ContactUpdate(BaseModel):
    """A staff edit. A field that is sent replaces the stored value; null clears it."""

    model_config = ConfigDict(extra="forbid")

    name: SingleLineText | None = Field(default=None, max_length=200)
    email: SingleLineText | None = Field(default=None, max_length=320)
    phone: SingleLineText | None = Field(default=None, max_length=64)
    notes: MultilineText | None = Field(default=None, max_length=20_000)
