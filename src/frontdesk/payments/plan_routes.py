"""Plans API: agents read plans, admins create, change, archive and delete them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem, ValidationFailed
from frontdesk.payments import plans
from frontdesk.payments.plans import MAX_AMOUNT, MAX_TRIAL_DAYS

router = APIRouter(prefix="/plans", tags=["plans"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such plan in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "model": Problem,
        "description": "`plan_in_use`: the price terms of a plan with subscriptions are fixed.",
    },
}

Interval = Literal["week", "month", "year"]


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    amount: int = Field(
        strict=True, gt=0, le=MAX_AMOUNT, description="Price per period in minor units."
    )
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code, like EUR.")
    interval: Interval
    interval_count: int = Field(
        default=1, strict=True, ge=1, le=52, description="At most 3 for years."
    )
    trial_days: int = Field(default=0, strict=True, ge=0, le=MAX_TRIAL_DAYS)
    tax_rate: str = Field(default="0", max_length=20, description='Percent, like "20".')


class PlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    amount: int | None = Field(default=None, strict=True, gt=0, le=MAX_AMOUNT)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    interval: Interval | None = None
    interval_count: int | None = Field(default=None, strict=True, ge=1, le=52)
    trial_days: int | None = Field(default=None, strict=True, ge=0, le=MAX_TRIAL_DAYS)
    tax_rate: str | None = Field(default=None, max_length=20)
    archived: StrictBool | None = None


@router.get("", responses=_ERRORS)
async def list_plans(
    uow: UowDep,
    actor: AgentDep,
    include_archived: Annotated[bool, Query(description="Also list archived plans.")] = False,
) -> dict[str, Any]:
    """List the workspace's plans, oldest first."""
    rows = await plans.list_plans(
        uow, workspace_id=actor.workspace_id, include_archived=include_archived
    )
    return {"items": [plans.plan_dict(row) for row in rows]}


@router.post("", status_code=201, responses=_ERRORS)
async def create_plan(uow: UowDep, actor: AdminDep, body: PlanCreate) -> dict[str, Any]:
    plan = await plans.create_plan(
        uow,
        workspace_id=actor.workspace_id,
        actor_id=actor.user_id,
        **body.model_dump(),
    )
    return plans.plan_dict(plan)


@router.get("/{plan_id}", responses=_ERRORS)
async def get_plan(uow: UowDep, actor: AgentDep, plan_id: uuid.UUID) -> dict[str, Any]:
    plan = await plans.get_plan(uow, workspace_id=actor.workspace_id, plan_id=plan_id)
    return plans.plan_dict(plan)


@router.patch("/{plan_id}", responses=_WRITE_ERRORS)
async def update_plan(
    uow: UowDep, actor: AdminDep, plan_id: uuid.UUID, body: PlanUpdate
) -> dict[str, Any]:
    """Change the given fields; `archived: false` restores an archived plan."""
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise ValidationFailed(name, f"The {name} cannot be null; leave it out.", "null")
    plan = await plans.get_plan(uow, workspace_id=actor.workspace_id, plan_id=plan_id)
    plan = await plans.update_plan(uow, plan, changes)
    return plans.plan_dict(plan)


@router.delete(
    "/{plan_id}",
    status_code=204,
    responses={**_ERRORS, 200: {"description": "The plan has subscriptions and was archived."}},
)
async def delete_plan(uow: UowDep, actor: AdminDep, plan_id: uuid.UUID) -> Response:
    """Delete a plan; one that subscriptions use is archived instead (200 with the plan)."""
    plan = await plans.get_plan(uow, workspace_id=actor.workspace_id, plan_id=plan_id)
    if await plans.delete_plan(uow, plan):
        return Response(status_code=204)
    return JSONResponse(plans.plan_dict(plan))
