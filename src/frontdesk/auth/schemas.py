"""Request and response bodies of the account endpoints (sign-up, tokens, sessions, profile)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StrictBool
from pydantic_core import PydanticCustomError

from frontdesk.core.errors import Problem
from frontdesk.core.text import is_blank

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
# Login compares against stored passwords, which are at most PASSWORD_MAX_LENGTH long; the
# looser bound only keeps a huge body from costing an argon2 run over megabytes.
LOGIN_PASSWORD_MAX_LENGTH = 1024
NAME_MAX_LENGTH = 200
# Issued tokens are 43 characters; the bound only rejects junk early.
TOKEN_MAX_LENGTH = 200

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def _check_password(value: str) -> str:
    if len(value) < PASSWORD_MIN_LENGTH:
        raise PydanticCustomError(
            "password_too_short",
            "The password must have at least {minimum} characters.",
            {"minimum": PASSWORD_MIN_LENGTH},
        )
    if len(value) > PASSWORD_MAX_LENGTH:
        raise PydanticCustomError(
            "password_too_long",
            "The password must have at most {maximum} characters.",
            {"maximum": PASSWORD_MAX_LENGTH},
        )
    return value


def _clean_name(value: str) -> str:
    value = value.strip()
    if is_blank(value):
        raise PydanticCustomError("blank", "This field must not be blank.")
    if len(value) > NAME_MAX_LENGTH:
        raise PydanticCustomError(
            "too_long",
            "This field must have at most {maximum} characters.",
            {"maximum": NAME_MAX_LENGTH},
        )
    if _CONTROL_CHARACTERS.search(value):
        raise PydanticCustomError(
            "control_characters", "This field must not contain line breaks or control characters."
        )
    return value


def _reject_control_characters(value: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise PydanticCustomError(
            "control_characters", "This field must not contain line breaks or control characters."
        )
    return value


def _normalize_email(value: str) -> str:
    # Addresses are stored and compared lower-cased, so the local part's case never matters.
    return value.lower()


def _check_country(value: str) -> str:
    value = value.strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise PydanticCustomError(
            "invalid_country",
            "Use an ISO 3166-1 alpha-2 country code such as 'US' or 'GB'.",
        )
    return value


def _check_locale(value: str) -> str:
    if len(value) > 20 or not _LOCALE.match(value):
        raise PydanticCustomError(
            "invalid_locale", "Use a language tag such as 'en' or 'pt-BR' (at most 20 characters)."
        )
    return value.replace("_", "-")


Password = Annotated[str, AfterValidator(_check_password)]
DisplayName = Annotated[str, AfterValidator(_clean_name)]
EmailAddress = Annotated[EmailStr, Field(max_length=320), AfterValidator(_normalize_email)]
CountryCode = Annotated[str, AfterValidator(_check_country)]
Locale = Annotated[str, AfterValidator(_check_locale)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=TOKEN_MAX_LENGTH)]


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields are rejected rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SignupRequest(RequestBody):
    email: EmailAddress
    password: Password
    full_name: DisplayName
    workspace_name: DisplayName | None = Field(
        default=None,
        description="Name of the new workspace. Omit it when joining by invitation_token.",
    )
    invitation_token: OpaqueToken | None = Field(
        default=None,
        description="Token from an invitation email: join that workspace instead of creating one.",
    )
    default_country: CountryCode = Field(
        default="US", description="ISO 3166-1 alpha-2 region of the new workspace."
    )


class TokenRequest(RequestBody):
    """An OAuth 2-style grant. Which other fields are required depends on ``grant_type``."""

    grant_type: Literal["password", "refresh_token"]
    email: (
        Annotated[str, Field(max_length=320), AfterValidator(_reject_control_characters)] | None
    ) = None
    password: Annotated[str, Field(max_length=LOGIN_PASSWORD_MAX_LENGTH)] | None = None
    refresh_token: OpaqueToken | None = None
    workspace_id: uuid.UUID | None = Field(
        default=None,
        description="With grant_type refresh_token: switch the session to this workspace.",
    )


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    locale: str
    email_verified: bool


class WorkspaceRef(BaseModel):
    """A workspace as the caller sees it: with their own role in it."""

    id: uuid.UUID
    name: str
    role: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    user: UserOut
    workspace: WorkspaceRef | None = Field(
        description="The workspace the access token acts in; null when the user belongs to none."
    )


class LogoutRequest(RequestBody):
    all: StrictBool = Field(
        default=False, description="End every session of the user, not only this one."
    )


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip_address: str | None
    current: bool


class PasswordResetRequest(RequestBody):
    email: Annotated[
        str, Field(min_length=1, max_length=320), AfterValidator(_reject_control_characters)
    ]


class PasswordResetConfirm(RequestBody):
    token: OpaqueToken
    password: Password


class PasswordChangeRequest(RequestBody):
    current_password: Annotated[str, Field(max_length=LOGIN_PASSWORD_MAX_LENGTH)]
    new_password: Password


class VerifyEmailRequest(RequestBody):
    token: OpaqueToken


class AcceptedResponse(BaseModel):
    detail: str


class ProfileOut(UserOut):
    created_at: datetime
    current_workspace_id: uuid.UUID | None = Field(
        description="The workspace that the access token of this request acts in."
    )
    workspaces: list[WorkspaceRef]


class ProfileUpdate(RequestBody):
    full_name: DisplayName | None = None
    locale: Locale | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Describe the problem+json error responses of a route for OpenAPI."""
    return {status: {"model": Problem} for status in statuses}
