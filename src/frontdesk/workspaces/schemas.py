"""Request and response bodies of the workspace, member and invitation endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from frontdesk.auth.schemas import (
    CountryCode,
    DisplayName,
    EmailAddress,
    OpaqueToken,
    RequestBody,
)

Role = Literal["owner", "admin", "agent"]


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    default_country: str
    reply_to_email: str | None
    created_at: datetime
    role: Role = Field(description="The caller's role in this workspace.")


class WorkspaceUpdate(RequestBody):
    name: DisplayName | None = None
    default_country: CountryCode | None = None
    reply_to_email: EmailAddress | None = Field(
        default=None, description="Reply-To of customer emails; send null to clear it."
    )


class WorkspaceListItem(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    current: bool = Field(description="True for the workspace that this access token acts in.")


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str
    role: Role
    email_verified: bool
    joined_at: datetime


class MemberUpdate(RequestBody):
    role: Role


class OwnershipTransfer(RequestBody):
    user_id: uuid.UUID


class InvitationCreate(RequestBody):
    email: EmailAddress
    role: Role


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    status: Literal["pending", "expired"]
    invited_by_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime


class InvitationAccept(RequestBody):
    token: OpaqueToken


class InvitationLookup(BaseModel):
    workspace_name: str
    email: str
    role: Role
    expires_at: datetime
