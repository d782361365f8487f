"""Canned responses API: list, create, read, change, delete, and render for a conversation."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from frontdesk.auth.dependencies import AgentDep
from frontdesk.conversations import canned, service
from frontdesk.conversations.schemas import (
    MAX_SHORTCUT_CHARS,
    CannedResponseCreate,
    CannedResponseUpdate,
    RenderIn,
)
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import NotFound, Problem, ValidationFailed

router = APIRouter(prefix="/canned-responses", tags=["canned responses"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such canned response in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": Problem, "description": "The shortcut is already used in this workspace."},
}


@router.get("", responses=_ERRORS)
@read_only
async def list_canned_responses(
    uow: UowDep,
    actor: AgentDep,
    q: Annotated[
        str | None,
        Query(max_length=MAX_SHORTCUT_CHARS, description="Only shortcuts starting with this."),
    ] = None,
) -> dict[str, Any]:
    """List the workspace's canned responses in shortcut order."""
    rows = await canned.list_canned(uow, workspace_id=actor.workspace_id, prefix=q)
    return {"items": [canned.canned_dict(row) for row in rows]}


@router.post("", status_code=201, responses=_WRITE_ERRORS)
async def create_canned_response(
    uow: UowDep, actor: AgentDep, body: CannedResponseCreate
) -> dict[str, Any]:
    """Create a canned response; the body may use contact, member and workspace variables."""
    row = await canned.create_canned(
        uow,
        workspace_id=actor.workspace_id,
        actor_id=actor.user_id,
        shortcut=body.shortcut,
        title=body.title,
        body=body.body,
    )
    return canned.canned_dict(row)


@router.get("/{canned_response_id}", responses=_ERRORS)
@read_only
async def get_canned_response(
    uow: UowDep, actor: AgentDep, canned_response_id: uuid.UUID
) -> dict[str, Any]:
    row = await canned.get_canned(
        uow, workspace_id=actor.workspace_id, canned_id=canned_response_id
    )
    return canned.canned_dict(row)


@router.patch("/{canned_response_id}", responses=_WRITE_ERRORS)
async def update_canned_response(
    uow: UowDep, actor: AgentDep, canned_response_id: uuid.UUID, body: CannedResponseUpdate
) -> dict[str, Any]:
    """Change the shortcut, title or body; a field left out stays as it is."""
    for name in ("shortcut", "title", "body"):
        if name in body.model_fields_set and getattr(body, name) is None:
            raise ValidationFailed(name, f"The {name} cannot be null; leave it out.", "null")
    row = await canned.get_canned(
        uow, workspace_id=actor.workspace_id, canned_id=canned_response_id
    )
    row = await canned.update_canned(
        uow, row, shortcut=body.shortcut, title=body.title, body=body.body
    )
    return canned.canned_dict(row)


@router.delete("/{canned_response_id}", status_code=204, responses=_ERRORS)
async def delete_canned_response(
    uow: UowDep, actor: AgentDep, canned_response_id: uuid.UUID
) -> Response:
    row = await canned.get_canned(
        uow, workspace_id=actor.workspace_id, canned_id=canned_response_id
    )
    await canned.delete_canned(uow, row)
    return Response(status_code=204)


@router.post("/{canned_response_id}/render", responses=_ERRORS)
async def render_canned_response(
    uow: UowDep, actor: AgentDep, canned_response_id: uuid.UUID, body: RenderIn
) -> dict[str, str]:
    """Fill the body's variables for a conversation; returns the Markdown to send."""
    row = await canned.get_canned(
        uow, workspace_id=actor.workspace_id, canned_id=canned_response_id
    )
    try:
        conversation = await service.get_conversation(
            uow, workspace_id=actor.workspace_id, conversation_id=body.conversation_id
        )
    except NotFound as exc:
        raise ValidationFailed(
            "conversation_id",
            f"No conversation {body.conversation_id} in this workspace.",
            "not_found",
        ) from exc
    data = await canned.render_data(uow, conversation=conversation, member_id=actor.user_id)
    return {"body": canned.render_body(row.body, data)}
