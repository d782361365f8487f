"""Chat settings API: agents read the workspace's website chat settings, admins change them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.conversations import chat_settings
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem, check_not_null

router = APIRouter(prefix="/chat/settings", tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem, "description": "Changing chat settings needs the admin role."},
    422: {"model": Problem, "description": "Invalid settings; `errors` names each field."},
}


class ChatTheme(BaseModel):
    title: str
    greeting: str
    color: str = Field(description="Hex color of the widget, like #2563eb.")
    position: str = Field(description="Corner of the page: left or right.")


class ChatSettingsOut(BaseModel):
    public_key: str = Field(description="The widget's data-workspace value; public by design.")
    enabled: bool
    theme: ChatTheme
    allowed_origins: list[str] = Field(
        description="Sites (scheme://host[:port]) that may use the chat; empty allows all."
    )
    updated_at: datetime


class ChatSettingsUpdate(BaseModel):
    """Fields left out keep their value; theme fields left out keep theirs too. A field may
    not be null."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool | None = None
    theme: dict[str, Any] | None = Field(
        default=None,
        description="title (1-80 characters), greeting (1-500), color (#rrggbb), "
        "position (left or right).",
    )
    allowed_origins: list[Annotated[str, Field(max_length=300)]] | None = None


def _view(settings: Any) -> ChatSettingsOut:
    return ChatSettingsOut.model_validate(chat_settings.settings_dict(settings))


@router.get("", response_model=ChatSettingsOut, responses=_ERRORS)
async def get_settings(uow: UowDep, actor: AgentDep) -> ChatSettingsOut:
    """Return the website chat settings, created with a new public key on first use."""
    settings = await chat_settings.get_or_create_settings(uow, actor.workspace_id)
    return _view(settings)


@router.put("", response_model=ChatSettingsOut, responses=_ERRORS)
async def put_settings(uow: UowDep, actor: AdminDep, body: ChatSettingsUpdate) -> ChatSettingsOut:
    """Change whether the chat is on, its look and the sites allowed to use it."""
    check_not_null(body, sorted(body.model_fields_set))
    settings = await chat_settings.update_settings(
        uow,
        actor.workspace_id,
        enabled=body.enabled,
        theme=body.theme,
        allowed_origins=body.allowed_origins,
    )
    return _view(settings)


@router.post("/rotate-key", response_model=ChatSettingsOut, responses=_ERRORS)
async def rotate_key(uow: UowDep, actor: AdminDep) -> ChatSettingsOut:
    """Replace the public key; widgets embedded with the old key stop working at once."""
    settings = await chat_settings.rotate_public_key(uow, actor.workspace_id)
    return _view(settings)
