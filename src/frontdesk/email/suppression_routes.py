"""Suppression list API: see, add and lift the addresses a workspace does not mail."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.auth.dependencies import AdminDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery
from frontdesk.email import suppressions
from frontdesk.email.schemas import (
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
    SuppressionReason,
)

router = APIRouter(prefix="/email/suppressions", tags=["email suppressions"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such suppression, or not this workspace's."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=SuppressionPage, responses=_ERRORS)
@read_only
async def list_suppressions(
    uow: UowDep,
    actor: AdminDep,
    address: Annotated[str | None, Query(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
    reason: SuppressionReason | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> SuppressionPage:
    """List the suppressed addresses, newest first."""
    return await suppressions.list_suppressions(
        uow,
        workspace_id=actor.workspace_id,
        address=address,
        reason=reason,
        cursor=cursor,
        limit=limit,
    )


@router.post("", status_code=201, response_model=SuppressionOut, responses=_ERRORS)
async def add_suppression(uow: UowDep, actor: AdminDep, body: SuppressionIn) -> SuppressionOut:
    """Stop mailing an address; adding one that is already listed returns its entry."""
    entry = await suppressions.suppress(
        uow,
        workspace_id=actor.workspace_id,
        address=str(body.address),
        reason="manual",
        source="api",
        detail=body.detail,
    )
    return SuppressionOut.model_validate(entry)


@router.delete("/{suppression_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def lift_suppression(uow: UowDep, actor: AdminDep, suppression_id: uuid.UUID) -> Response:
    """Lift an entry: the address receives this workspace's mail again."""
    await suppressions.lift(uow, workspace_id=actor.workspace_id, suppression_id=suppression_id)
    return Response(status_code=204)
