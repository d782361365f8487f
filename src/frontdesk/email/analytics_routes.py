"""Email analytics API: rates per period or template (JSON or CSV), and a message's events."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from frontdesk.auth.dependencies import AdminDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import Problem, ValidationFailed
from frontdesk.core.fields import DateTimeText
from frontdesk.core.query_params import as_utc
from frontdesk.email import analytics
from frontdesk.email.schemas import AnalyticsOut, AnalyticsRow, EmailEventList, EmailEventOut

router = APIRouter(prefix="/email", tags=["email analytics"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such email, or not this workspace's."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed(
            field, "Give a time with its UTC offset, like 2027-03-01T00:00:00Z.", "timezone_missing"
        )
    # Checks that the time stays within years 1 to 9999 in UTC, as the database stores it.
    as_utc(value, field)
    return value


@router.get(
    "/analytics",
    response_model=AnalyticsOut,
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV."}},
)
@read_only
async def email_analytics(
    uow: UowDep,
    actor: AdminDep,
    start: Annotated[
        DateTimeText, Query(alias="from", description="Start, inclusive, with offset.")
    ],
    end: Annotated[DateTimeText, Query(alias="to", description="End, exclusive, with offset.")],
    group_by: analytics.GroupBy = "day",
    template: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z][a-z0-9_.-]*$")] = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Sent, delivered, bounces, complaints, human opens and clicks, and their rates."""
    rows = await analytics.aggregate(
        uow,
        workspace_id=actor.workspace_id,
        start=_aware(start, "from"),
        end=_aware(end, "to"),
        group_by=group_by,
        template_key=template,
    )
    if format == "csv":
        return Response(
            analytics.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="email-analytics.csv"'},
        )
    body = AnalyticsOut(
        start=start,
        end=end,
        group_by=group_by,
        rows=[AnalyticsRow(**dataclasses.asdict(row)) for row in rows],
    )
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("/messages/{email_id}/events", response_model=EmailEventList, responses=_ERRORS)
@read_only
async def message_events(uow: UowDep, actor: AdminDep, email_id: uuid.UUID) -> EmailEventList:
    """The delivery and engagement events of one message, oldest first."""
    events = await analytics.message_events(uow, workspace_id=actor.workspace_id, email_id=email_id)
    return EmailEventList(items=[EmailEventOut.model_validate(event) for event in events])
