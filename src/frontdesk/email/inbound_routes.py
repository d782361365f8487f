"""Inbound email API: upload a raw message, and read what was received."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from starlette.requests import ClientDisconnect

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep, read_only
from frontdesk.core.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
)
from frontdesk.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorQuery, fetch_newest_first
from frontdesk.email.inbound import parse_message
from frontdesk.email.inbound_service import receive
from frontdesk.email.models import InboundEmail
from frontdesk.email.schemas import InboundOut, InboundPage

router = APIRouter(prefix="/email/inbound", tags=["inbound email"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such message, or not this workspace's."},
    413: {"model": Problem, "description": "The message is larger than the limit."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """Read the body, stopping with 413 past ``max_bytes`` without reading the rest."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise PayloadTooLarge(
                    f"The message is larger than {max_bytes} bytes; raise "
                    "FRONTDESK_INBOUND_MAX_BYTES or send a smaller one.",
                    code="message_too_large",
                )
    except ClientDisconnect as exc:
        raise BadRequest(
            "The client disconnected during the upload.", code="upload_aborted"
        ) from exc
    return bytes(body)


@router.post("", status_code=201, response_model=InboundOut, responses=_ERRORS)
async def upload_raw(uow: UowDep, actor: AdminDep, request: Request) -> InboundOut:
    """Receive one raw MIME message (the request body, as sent over SMTP).

    It goes through the same rules as mail from IMAP or a provider: duplicates by
    Message-ID, threading, reports and new enquiries.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "message/rfc822":
        raise UnsupportedMediaType(
            "Send the whole message as the body with Content-Type: message/rfc822."
        )
    raw = await read_limited(request, uow.settings.inbound_max_bytes)
    if not raw.strip():
        raise BadRequest("The body is empty; send the whole message (message/rfc822).")
    parsed = parse_message(raw)
    result = await receive(
        uow, workspace_id=actor.workspace_id, parsed=parsed, raw=raw, source="api"
    )
    return InboundOut.model_validate(result.inbound)


@router.get("", response_model=InboundPage, responses=_ERRORS)
@read_only
async def list_inbound(
    uow: UowDep,
    actor: AgentDep,
    enquiry_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> InboundPage:
    """List received messages, newest first, optionally of one enquiry."""
    query = sa.select(InboundEmail).where(InboundEmail.workspace_id == actor.workspace_id)
    if enquiry_id is not None:
        query = query.where(InboundEmail.enquiry_id == enquiry_id)
    rows, next_cursor = await fetch_newest_first(
        uow.session, query, InboundEmail, cursor=cursor, limit=limit
    )
    return InboundPage(
        items=[InboundOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/{inbound_id}", response_model=InboundOut, responses=_ERRORS)
@read_only
async def get_inbound(uow: UowDep, actor: AgentDep, inbound_id: uuid.UUID) -> InboundOut:
    inbound = await uow.session.scalar(
        sa.select(InboundEmail).where(
            InboundEmail.id == inbound_id, InboundEmail.workspace_id == actor.workspace_id
        )
    )
    if inbound is None:
        raise NotFound("No such received email in this workspace.")
    return InboundOut.model_validate(inbound)
