"""Website chat settings: the public key, whether the chat is on, its look and allowed sites."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from frontdesk.conversations.models import ChatSettings
from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import new_token
from frontdesk.core.origins import normalize_origin
from frontdesk.core.text import is_blank
from frontdesk.core.uow import UnitOfWork

log = structlog.get_logger()

DEFAULT_THEME: dict[str, str] = {
    "title": "Chat with us",
    "greeting": "Hi! How can we help you?",
    "color": "#2563eb",
    "position": "right",
}
MAX_TITLE_CHARS = 80
MAX_GREETING_CHARS = 500
MAX_ALLOWED_ORIGINS = 50

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DISABLED = "Website chat is turned off for this workspace."


def new_public_key() -> str:
    return new_token(24)


def theme_of(settings: ChatSettings) -> dict[str, str]:
    return {**DEFAULT_THEME, **settings.theme}


def settings_dict(settings: ChatSettings) -> dict[str, Any]:
    return {
        "public_key": settings.public_key,
        "enabled": settings.enabled,
        "theme": theme_of(settings),
        "allowed_origins": list(settings.allowed_origins),
        "updated_at": iso_utc(settings.updated_at),
    }


async def get_or_create_settings(uow: UnitOfWork, workspace_id: uuid.UUID) -> ChatSettings:
    """Return the workspace's chat settings, creating them with a new public key if missing."""
    settings = await uow.session.get(ChatSettings, workspace_id)
    if settings is not None:
        return settings
    now = uow.now()
    settings = ChatSettings(
        workspace_id=workspace_id,
        public_key=new_public_key(),
        enabled=True,
        theme={},
        allowed_origins=[],
        created_at=now,
        updated_at=now,
    )
    try:
        async with uow.session.begin_nested():
            uow.session.add(settings)
    except IntegrityError:
        # A concurrent request created them first, and its row is visible after the wait.
        existing = await uow.session.get(ChatSettings, workspace_id, populate_existing=True)
        if existing is None:
            raise
        return existing
    log.info("chat.settings_created", workspace_id=str(workspace_id))
    return settings


def check_theme(theme: dict[str, Any]) -> dict[str, str]:
    """Validate theme fields. Each error names ``theme.<field>``."""
    errors: list[FieldError] = []
    checked: dict[str, str] = {}
    limits = {"title": MAX_TITLE_CHARS, "greeting": MAX_GREETING_CHARS}
    for name, value in theme.items():
        field = f"theme.{name}"
        if name not in DEFAULT_THEME:
            errors.append(
                FieldError(
                    field=field,
                    message="Unknown theme field; use title, greeting, color or position.",
                    code="extra_forbidden",
                )
            )
        elif value is None:
            errors.append(
                FieldError(
                    field=field,
                    message=f"'{name}' cannot be null; omit it to keep it.",
                    code="null",
                )
            )
        elif not isinstance(value, str):
            errors.append(FieldError(field=field, message="Use a string.", code="invalid_type"))
        elif name in limits and (is_blank(value) or len(value.strip()) > limits[name]):
            errors.append(
                FieldError(
                    field=field,
                    message=f"Use 1 to {limits[name]} characters.",
                    code="invalid_length",
                )
            )
        elif name == "color" and not _COLOR.match(value):
            errors.append(
                FieldError(
                    field=field, message="Use a hex color like #2563eb.", code="invalid_color"
                )
            )
        elif name == "position" and value not in ("left", "right"):
            errors.append(
                FieldError(field=field, message="Use 'left' or 'right'.", code="invalid_choice")
            )
        else:
            checked[name] = value.strip() if name in limits else value.lower()
    if errors:
        raise ValidationFailed.many(errors)
    return checked


def check_origins(origins: Sequence[str]) -> list[str]:
    if len(origins) > MAX_ALLOWED_ORIGINS:
        raise ValidationFailed(
            "allowed_origins", f"List at most {MAX_ALLOWED_ORIGINS} origins.", "too_many"
        )
    errors: list[FieldError] = []
    normalized: list[str] = []
    for index, origin in enumerate(origins):
        try:
            normalized.append(normalize_origin(origin))
        except ValueError as exc:
            errors.append(
                FieldError(field=f"allowed_origins.{index}", message=str(exc), code="invalid")
            )
    if errors:
        raise ValidationFailed.many(errors)
    return list(dict.fromkeys(normalized))


async def update_settings(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    *,
    enabled: bool | None,
    theme: dict[str, Any] | None,
    allowed_origins: Sequence[str] | None,
) -> ChatSettings:
    """Change the given settings. Given theme fields replace only those theme fields.

    The errors of the theme and of the origins are reported together.
    """
    errors: list[FieldError] = []
    checked_theme = checked_origins = None
    try:
        checked_theme = check_theme(theme) if theme is not None else None
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    try:
        checked_origins = check_origins(allowed_origins) if allowed_origins is not None else None
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if errors:
        raise ValidationFailed.many(errors)
    settings = await get_or_create_settings(uow, workspace_id)
    if enabled is False and settings.enabled:
        # Every process closes the open visitor sockets of the workspace.
        uow.record_event("internal.chat_disabled", {}, workspace_id=workspace_id)
    if enabled is not None:
        settings.enabled = enabled
    if checked_theme is not None:
        settings.theme = {**settings.theme, **checked_theme}
    if checked_origins is not None:
        settings.allowed_origins = checked_origins
    settings.updated_at = uow.now()
    await uow.session.flush()
    log.info("chat.settings_updated", workspace_id=str(workspace_id))
    return settings


async def rotate_public_key(uow: UnitOfWork, workspace_id: uuid.UUID) -> ChatSettings:
    """Give the workspace a new public key, so widgets embedded with the old key stop working."""
    settings = await get_or_create_settings(uow, workspace_id)
    settings.public_key = new_public_key()
    settings.updated_at = uow.now()
    await uow.session.flush()
    log.info("chat.public_key_rotated", workspace_id=str(workspace_id))
    return settings


async def find_settings_by_key(uow: UnitOfWork, public_key: str) -> ChatSettings | None:
    found: ChatSettings | None = await uow.session.scalar(
        sa.select(ChatSettings).where(ChatSettings.public_key == public_key)
    )
    return found


def ensure_enabled(settings: ChatSettings) -> None:
    if not settings.enabled:
        raise NotFound(_DISABLED, code="chat_disabled")
