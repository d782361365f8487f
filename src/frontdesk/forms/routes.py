"""Forms API (admins change forms, agents read them) and the public form routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.forms import service
from frontdesk.forms.public import public_router
from frontdesk.forms.schemas import (
    FieldDefinition,
    FormCreate,
    FormList,
    FormOut,
    FormUpdate,
    FormVersionList,
    FormVersionOut,
)

__all__ = ["public_router", "router"]

router = APIRouter(prefix="/forms", tags=["forms"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem, "description": "Changing forms needs the admin role."},
    404: {"model": Problem, "description": "No such form in this workspace."},
    422: {"model": Problem, "description": "Invalid definition; `errors` names each path."},
}


@router.post("", status_code=201, response_model=FormOut, responses=_ERRORS)
async def create_form(uow: UowDep, actor: AdminDep, body: FormCreate) -> FormOut:
    """Create a form. It is published (version 1) unless `published` is false."""
    form = await service.create_form(
        uow, workspace_id=actor.workspace_id, actor_user_id=actor.user_id, data=body
    )
    return service.form_view(uow.settings, form)


@router.get("", response_model=FormList, responses=_ERRORS)
@read_only
async def list_forms(uow: UowDep, actor: AgentDep) -> FormList:
    """List the workspace's forms, newest first."""
    forms = await service.list_forms(uow, workspace_id=actor.workspace_id)
    return FormList(items=[service.form_view(uow.settings, form) for form in forms])


@router.get("/{form_id}", response_model=FormOut, responses=_ERRORS)
@read_only
async def get_form(uow: UowDep, actor: AgentDep, form_id: uuid.UUID) -> FormOut:
    form = await service.get_form(uow, workspace_id=actor.workspace_id, form_id=form_id)
    return service.form_view(uow.settings, form)


@router.patch("/{form_id}", response_model=FormOut, responses=_ERRORS)
async def update_form(
    uow: UowDep, actor: AdminDep, form_id: uuid.UUID, body: FormUpdate
) -> FormOut:
    """Change a form. A change to a published form's name or fields makes a new version."""
    form = await service.update_form(
        uow,
        workspace_id=actor.workspace_id,
        form_id=form_id,
        actor_user_id=actor.user_id,
        changes=body,
    )
    return service.form_view(uow.settings, form)


@router.delete("/{form_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_form(uow: UowDep, actor: AdminDep, form_id: uuid.UUID) -> Response:
    """Delete a form; its public address stops working and its enquiries stay."""
    await service.delete_form(
        uow, workspace_id=actor.workspace_id, form_id=form_id, actor_user_id=actor.user_id
    )
    return Response(status_code=204)


@router.get("/{form_id}/versions", response_model=FormVersionList, responses=_ERRORS)
@read_only
async def list_versions(uow: UowDep, actor: AgentDep, form_id: uuid.UUID) -> FormVersionList:
    """List the published versions of a form, newest first."""
    versions = await service.list_versions(uow, workspace_id=actor.workspace_id, form_id=form_id)
    return FormVersionList(
        items=[
            FormVersionOut(
                version=version.version,
                name=version.name,
                fields=[FieldDefinition.model_validate(field) for field in version.fields],
                created_at=version.created_at,
            )
            for version in versions
        ]
    )
