"""Subscriptions API: agents create, list, cancel, pause, resume and change plans."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, StrictBool

from frontdesk.auth.dependencies import AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.core.fields import RecordDate
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery
from frontdesk.payments import subscriptions
from frontdesk.payments.subscriptions import subscription_dict

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such subscription in this workspace."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "model": Problem,
        "description": "The subscription ended, or is not in a state for this change "
        "(`subscription_ended`, `subscription_paused`, `subscription_not_paused`), or the "
        "workspace has no Stripe keys (`stripe_not_configured`).",
    },
    502: {"model": Problem, "description": "Stripe failed or rejected the change."},
}

Status = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID
    plan_id: uuid.UUID
    gateway: Literal["manual", "stripe"] = "manual"
    start_date: RecordDate | None = None


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: StrictBool = False


class ChangePlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID
    proration: StrictBool = True


@router.get("", responses=_ERRORS)
@read_only
async def list_subscriptions(
    uow: UowDep,
    actor: AgentDep,
    status: Status | None = None,
    contact_id: uuid.UUID | None = None,
    plan_id: uuid.UUID | None = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """List subscriptions, newest first."""
    rows, next_cursor = await subscriptions.list_subscriptions(
        uow,
        workspace_id=actor.workspace_id,
        status=status,
        contact_id=contact_id,
        plan_id=plan_id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": [subscription_dict(row) for row in rows], "next_cursor": next_cursor}


@router.post("", status_code=201, responses=_CHANGE_ERRORS)
async def create_subscription(
    uow: UowDep, actor: AgentDep, body: SubscriptionCreate
) -> dict[str, Any]:
    """Subscribe a contact to a plan; a manual one without trial is invoiced at once."""
    subscription = await subscriptions.create_subscription(
        uow,
        workspace_id=actor.workspace_id,
        actor_id=actor.user_id,
        contact_id=body.contact_id,
        plan_id=body.plan_id,
        gateway=body.gateway,
        start_date=body.start_date,
    )
    return subscription_dict(subscription)


@router.get("/{subscription_id}", responses=_ERRORS)
@read_only
async def get_subscription(
    uow: UowDep, actor: AgentDep, subscription_id: uuid.UUID
) -> dict[str, Any]:
    subscription = await subscriptions.get_subscription(
        uow, workspace_id=actor.workspace_id, subscription_id=subscription_id
    )
    return subscription_dict(subscription)


@router.post("/{subscription_id}/cancel", responses=_CHANGE_ERRORS)
async def cancel_subscription(
    uow: UowDep, actor: AgentDep, subscription_id: uuid.UUID, body: CancelIn
) -> dict[str, Any]:
    """Cancel now, or with `at_period_end` when the current period ends."""
    subscription = await subscriptions.get_subscription(
        uow, workspace_id=actor.workspace_id, subscription_id=subscription_id, lock=True
    )
    await subscriptions.cancel_subscription(
        uow, subscription, at_period_end=body.at_period_end, actor_id=actor.user_id
    )
    return subscription_dict(subscription)


@router.post("/{subscription_id}/pause", responses=_CHANGE_ERRORS)
async def pause_subscription(
    uow: UowDep, actor: AgentDep, subscription_id: uuid.UUID
) -> dict[str, Any]:
    """Stop invoicing until resumed; periods keep running."""
    subscription = await subscriptions.get_subscription(
        uow, workspace_id=actor.workspace_id, subscription_id=subscription_id, lock=True
    )
    await subscriptions.pause_subscription(uow, subscription, actor_id=actor.user_id)
    return subscription_dict(subscription)


@router.post("/{subscription_id}/resume", responses=_CHANGE_ERRORS)
async def resume_subscription(
    uow: UowDep, actor: AgentDep, subscription_id: uuid.UUID
) -> dict[str, Any]:
    """Resume a paused subscription and undo a cancellation set for the period end."""
    subscription = await subscriptions.get_subscription(
        uow, workspace_id=actor.workspace_id, subscription_id=subscription_id, lock=True
    )
    await subscriptions.resume_subscription(uow, subscription, actor_id=actor.user_id)
    return subscription_dict(subscription)


@router.post("/{subscription_id}/change-plan", responses=_CHANGE_ERRORS)
async def change_plan(
    uow: UowDep, actor: AgentDep, subscription_id: uuid.UUID, body: ChangePlanIn
) -> dict[str, Any]:
    """Move to another plan of the same currency, with or without proration."""
    subscription = await subscriptions.get_subscription(
        uow, workspace_id=actor.workspace_id, subscription_id=subscription_id, lock=True
    )
    await subscriptions.change_plan(
        uow,
        subscription,
        plan_id=body.plan_id,
        proration=body.proration,
        actor_id=actor.user_id,
    )
    return subscription_dict(subscription)
