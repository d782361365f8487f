"""The public visitor API of the website chat, under ``/chat/{public_key}``.

The widget calls it from the customer's site, so every route handles CORS: a browser
``Origin`` must be one of the workspace's ``allowed_origins`` (any origin when the list is
empty, and always this server's own public URL), or the request gets 403. Apart from the
config and visitor creation, requests carry the visitor token as
``Authorization: Bearer fdv1...``. Writes are rate limited per visitor token and per IP.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from frontdesk.conversations import chat_service, chat_settings, chat_uploads, service
from frontdesk.conversations.attachments import attachment_dict
from frontdesk.conversations.visitor_access import (
    ChatCorsRoute,
    ChatDep,
    EnabledChatDep,
    PublicKeyPath,
    VisitorDep,
    limit_writes,
    preflight_response,
)
from frontdesk.core.api import ClientIpDep, UowDep
from frontdesk.core.db import MAX_SQL_INTEGER
from frontdesk.core.errors import BadRequest, NotFound, Problem, ValidationFailed
from frontdesk.core.pagination import MAX_LIMIT, CursorQuery
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage import previews, scanning
from frontdesk.storage.downloads import content_disposition, etag_matches, object_response
from frontdesk.storage.service import blob_path
from frontdesk.storage.sniffing import UnsupportedMediaType

log = structlog.get_logger()

PREFIX = "/chat/{public_key}"
MAX_HISTORY_PAGE = 100
# Default page size of the visitor's conversation list (the ``limit`` parameter).
DEFAULT_VISITOR_PAGE = 100

router = APIRouter(prefix=PREFIX, tags=["chat visitors"], route_class=ChatCorsRoute)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "Missing, invalid or revoked visitor token."},
    403: {"model": Problem, "description": "The browser's Origin is not allowed."},
    404: {
        "model": Problem,
        "description": "Unknown key, chat turned off (`chat_disabled`), or not the visitor's.",
    },
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
    429: {"model": Problem, "description": "Too many requests; see Retry-After."},
}


# --- Schemas ----------------------------------------------------------------------------------

Name = Annotated[str, Field(max_length=chat_service.MAX_VISITOR_NAME_CHARS)]
Email = Annotated[str, Field(max_length=320)]


class ChatConfigOut(BaseModel):
    enabled: bool
    title: str
    greeting: str
    color: str
    position: str
    staff_online: bool = Field(
        description="Whether a member of the workspace is online in the app right now."
    )


class VisitorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = Field(default=None, description="Where replies go when you leave.")


class VisitorOut(BaseModel):
    id: uuid.UUID
    name: str | None
    email: str | None


class VisitorCreated(BaseModel):
    visitor_token: str
    visitor: VisitorOut


class ConversationOut(BaseModel):
    id: uuid.UUID
    status: str
    last_seq: int
    visitor_read_seq: int
    staff_read_seq: int
    last_message_at: str | None
    created_at: str


class ConversationList(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(default="", description="Markdown text, at most 10,000 characters.")
    client_message_id: str | None = Field(
        default=None, description="Your id of the message, so a resend is stored once."
    )
    attachments: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=service.MAX_ATTACHMENTS_PER_MESSAGE,
        description="Ids returned by POST /chat/{key}/uploads.",
    )


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(
        strict=True, ge=0, le=MAX_SQL_INTEGER, description="The seq of the newest message read."
    )


class ReadOut(BaseModel):
    conversation_id: uuid.UUID
    last_read_seq: int
    last_delivered_seq: int


class UploadOut(BaseModel):
    object_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    kind: str
    has_preview: bool
    status: Literal["available", "quarantined"]


# --- Config and visitors ----------------------------------------------------------------------


def staff_online(request: Request, workspace_id: uuid.UUID) -> bool:
    """Return whether a member of the workspace is online in the realtime presence.

    The gateway's presence combines the connections of every process; without it (a
    process that serves no WebSockets) nobody counts as online.
    """
    gateway = getattr(request.app.state, "gateway", None)
    hub = getattr(gateway, "hub", None)
    if hub is None:
        return False
    return any(entry["status"] == "online" for entry in hub.presence.snapshot(workspace_id))


@router.get("/config", response_model=ChatConfigOut, responses=_ERRORS)
async def get_config(settings: ChatDep, request: Request) -> ChatConfigOut:
    """Return what the widget shows before the visitor writes. No token is needed."""
    theme = chat_settings.theme_of(settings)
    return ChatConfigOut(
        enabled=settings.enabled,
        title=theme["title"],
        greeting=theme["greeting"],
        color=theme["color"],
        position=theme["position"],
        staff_online=settings.enabled and staff_online(request, settings.workspace_id),
    )


@router.post("/visitors", status_code=201, response_model=VisitorCreated, responses=_ERRORS)
async def create_visitor(
    settings: EnabledChatDep, uow: UowDep, ip: ClientIpDep, body: VisitorIn | None = None
) -> VisitorCreated:
    """Create a visitor and return its token, which the browser keeps."""
    await uow.rt.limiter.check(
        (Limit("chat_visitor_ip", uow.settings.chat_visitors_per_ip_per_hour, 3600), ip)
    )
    data = body or VisitorIn()
    visitor, token = await chat_service.create_visitor(
        uow, settings, name=data.name, email=data.email
    )
    return VisitorCreated(
        visitor_token=token, visitor=VisitorOut(**chat_service.visitor_dict(visitor))
    )


@router.get("/visitor", response_model=VisitorOut, responses=_ERRORS)
async def get_visitor(visitor: VisitorDep) -> VisitorOut:
    return VisitorOut(**chat_service.visitor_dict(visitor))


@router.patch("/visitor", response_model=VisitorOut, responses=_ERRORS)
async def update_visitor(
    visitor: VisitorDep, uow: UowDep, ip: ClientIpDep, body: VisitorIn
) -> VisitorOut:
    """Change the visitor's name or email. Null clears a field, and a field left out stays."""
    await limit_writes(uow, visitor, ip)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    await chat_service.update_visitor(uow, visitor, changes)
    return VisitorOut(**chat_service.visitor_dict(visitor))


# --- Conversations and messages ---------------------------------------------------------------


async def _conversation_out(uow: UnitOfWork, conversation: Any) -> ConversationOut:
    described = await chat_service.describe_conversations(uow, [conversation])
    return ConversationOut(**described[0])


@router.post(
    "/conversations",
    status_code=201,
    response_model=ConversationOut,
    responses={**_ERRORS, 200: {"description": "The visitor's open conversation."}},
)
async def start_conversation(visitor: VisitorDep, uow: UowDep, ip: ClientIpDep) -> Response:
    """Return the visitor's newest conversation that is not resolved (200) or a new one (201)."""
    await limit_writes(uow, visitor, ip)
    conversation, created = await chat_service.start_conversation(uow, visitor)
    out = await _conversation_out(uow, conversation)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/conversations", response_model=ConversationList, responses=_ERRORS)
async def list_conversations(
    visitor: VisitorDep,
    uow: UowDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_VISITOR_PAGE,
    cursor: CursorQuery = None,
) -> ConversationList:
    """List the visitor's conversations, newest first, a page at a time."""
    conversations, next_cursor = await chat_service.list_visitor_conversations(
        uow, visitor, limit=limit, cursor=cursor
    )
    described = await chat_service.describe_conversations(uow, conversations)
    return ConversationList(
        items=[ConversationOut(**item) for item in described], next_cursor=next_cursor
    )


SeqQuery = Annotated[int | None, Query(ge=0, le=MAX_SQL_INTEGER, description="A message seq.")]


async def _around_seq(uow: UnitOfWork, conversation: Any, around: str | None) -> int | None:
    if around is None:
        return None
    if around.isdigit():
        return int(around)
    try:
        message_id = uuid.UUID(around)
    except ValueError as exc:
        raise ValidationFailed(
            "around", "Use a message seq (a number) or a message id.", "invalid"
        ) from exc
    try:
        message = await service.get_message(uow, conversation, message_id)
    except NotFound as exc:
        raise ValidationFailed(
            "around", "No such message in this conversation.", "not_found"
        ) from exc
    if not service.visible_to_visitor(message):
        raise ValidationFailed("around", "No such message in this conversation.", "not_found")
    return message.seq


@router.get("/conversations/{conversation_id}/messages", responses=_ERRORS)
async def list_messages(
    visitor: VisitorDep,
    uow: UowDep,
    conversation_id: uuid.UUID,
    before: SeqQuery = None,
    after: SeqQuery = None,
    around: Annotated[
        str | None, Query(max_length=36, description="A message seq or message id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE)] = 50,
) -> dict[str, Any]:
    """Read a page of the conversation's messages in ascending seq, the newest by default."""
    given = [
        name
        for name, value in (("before", before), ("after", after), ("around", around))
        if value is not None
    ]
    if len(given) > 1:
        raise ValidationFailed(
            given[1],
            f"Use only one of before, after and around, not {' and '.join(given)}.",
            "conflict",
        )
    conversation = await chat_service.get_visitor_conversation(uow, visitor, conversation_id)
    page = await service.history(
        uow,
        conversation,
        before=before,
        after=after,
        around=await _around_seq(uow, conversation, around),
        limit=limit,
        staff=False,
    )
    return {
        "items": [service.visitor_message_dict(message) for message in page.items],
        "has_before": page.has_before,
        "has_after": page.has_after,
    }


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    responses={**_ERRORS, 200: {"description": "Already stored with this client_message_id."}},
)
async def send_message(
    visitor: VisitorDep,
    uow: UowDep,
    ip: ClientIpDep,
    conversation_id: uuid.UUID,
    body: MessageIn,
) -> Response:
    """Send a message. A resend with the same client_message_id returns the stored one (200)."""
    await limit_writes(uow, visitor, ip)
    conversation = await chat_service.get_visitor_conversation(uow, visitor, conversation_id)
    message, created = await chat_service.send_visitor_message(
        uow,
        visitor,
        conversation,
        body=body.body,
        client_message_id=body.client_message_id,
        upload_ids=body.attachments,
    )
    return JSONResponse(
        {"message": service.visitor_message_dict(message)}, status_code=201 if created else 200
    )


@router.post("/conversations/{conversation_id}/read", response_model=ReadOut, responses=_ERRORS)
async def mark_read(
    visitor: VisitorDep, uow: UowDep, ip: ClientIpDep, conversation_id: uuid.UUID, body: ReadIn
) -> ReadOut:
    """Move the visitor's read position forward. It never goes back."""
    await limit_writes(uow, visitor, ip)
    conversation = await chat_service.get_visitor_conversation(uow, visitor, conversation_id)
    participant = await service.mark_read(
        uow,
        conversation,
        participant_type="visitor",
        participant_key=str(visitor.id),
        seq=body.seq,
    )
    return ReadOut(
        conversation_id=conversation.id,
        last_read_seq=participant.last_read_seq,
        last_delivered_seq=participant.last_delivered_seq,
    )


# --- Files ------------------------------------------------------------------------------------


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadOut,
    responses={
        **_ERRORS,
        413: {"model": Problem, "description": "Larger than FRONTDESK_CHAT_UPLOAD_MAX_BYTES."},
        415: {"model": Problem, "description": "A type the chat does not accept."},
    },
)
async def upload_file(
    visitor: VisitorDep,
    uow: UowDep,
    ip: ClientIpDep,
    request: Request,
    filename: Annotated[
        str | None, Query(max_length=1000, description="The file's name on the visitor's device.")
    ] = None,
) -> UploadOut:
    """Upload one file as the raw request body, for a message's attachments."""
    await uow.rt.limiter.check(
        (
            Limit("chat_upload_visitor", uow.settings.chat_uploads_per_visitor_per_hour, 3600),
            str(visitor.id),
        )
    )
    await limit_writes(uow, visitor, ip)
    claimed = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        stored = await chat_uploads.store_visitor_upload(
            uow, visitor, file_name=filename, claimed_type=claimed, chunks=request.stream()
        )
    except ClientDisconnect as exc:
        raise BadRequest(
            "The client disconnected during the upload.", code="upload_aborted"
        ) from exc
    chat_service.touch_visitor(uow, visitor)
    status = await scanning.scan_status(uow, stored.id)
    return UploadOut(
        **attachment_dict(stored),
        status="quarantined" if status is not None else "available",
    )


@router.get(
    "/conversations/{conversation_id}/attachments/{object_id}",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"description": "The file's bytes."},
        409: {"model": Problem, "description": "The virus scanner rejected the file."},
        423: {"model": Problem, "description": "The file is being scanned for viruses."},
    },
)
async def download_attachment(
    visitor: VisitorDep,
    uow: UowDep,
    request: Request,
    conversation_id: uuid.UUID,
    object_id: uuid.UUID,
) -> Response:
    """Download a file shown in the visitor's conversation, with Range and If-None-Match."""
    conversation = await chat_service.get_visitor_conversation(uow, visitor, conversation_id)
    stored = await chat_uploads.visitor_attachment(uow, visitor, conversation, object_id)
    return await object_response(uow.rt.storage, stored, request.headers)


@router.get(
    "/conversations/{conversation_id}/attachments/{object_id}/preview",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"description": "The thumbnail image."},
        409: {"model": Problem, "description": "The virus scanner rejected the file."},
        415: {"model": Problem, "description": "The file is not a PNG, JPEG, GIF or WebP."},
        423: {"model": Problem, "description": "The file is being scanned for viruses."},
    },
)
async def preview_attachment(
    visitor: VisitorDep,
    uow: UowDep,
    request: Request,
    conversation_id: uuid.UUID,
    object_id: uuid.UUID,
    width: Annotated[int, Query(ge=1, le=previews.MAX_BOX)] = previews.DEFAULT_BOX,
    height: Annotated[int, Query(ge=1, le=previews.MAX_BOX)] = previews.DEFAULT_BOX,
    output_format: Annotated[previews.PreviewFormat, Query(alias="format")] = "webp",
) -> Response:
    """Return a thumbnail of an image in the conversation, fitting in width x height."""
    conversation = await chat_service.get_visitor_conversation(uow, visitor, conversation_id)
    stored = await chat_uploads.visitor_attachment(uow, visitor, conversation, object_id)
    if stored.content_type not in previews.PREVIEW_SOURCE_TYPES:
        raise UnsupportedMediaType(
            f"The file is {stored.content_type}; previews exist only for PNG, JPEG, GIF and "
            "WebP images."
        )
    etag = f'"{stored.sha256}-{width}x{height}-{output_format}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": content_disposition(f"preview.{output_format}").replace(
            "attachment", "inline", 1
        ),
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    path = blob_path(stored.workspace_id, stored.id)
    data = b"".join([chunk async for chunk in uow.rt.storage.read(path)])
    try:
        rendered = await previews.render_preview_in_thread(
            data,
            content_type=stored.content_type,
            width=width,
            height=height,
            output=output_format,
            max_pixels=uow.settings.preview_max_pixels,
        )
    except previews.ImageTooLarge as exc:
        raise ValidationFailed("content", f"{str(exc).capitalize()}.", "image_too_large") from exc
    except previews.NotAnImage as exc:
        raise ValidationFailed("content", f"{str(exc).capitalize()}.", "invalid_image") from exc
    return Response(rendered.data, media_type=rendered.content_type, headers=headers)


# --- CORS preflight ---------------------------------------------------------------------------


@router.options("/config", status_code=204, response_class=Response)
@router.options("/visitors", status_code=204, response_class=Response)
@router.options("/visitor", status_code=204, response_class=Response)
@router.options("/conversations", status_code=204, response_class=Response)
@router.options("/uploads", status_code=204, response_class=Response)
async def preflight(public_key: PublicKeyPath, request: Request, uow: UowDep) -> Response:
    """Respond to the browser's CORS preflight for the chat's origins."""
    return await preflight_response(uow, request, public_key)


@router.options(
    "/conversations/{conversation_id}/messages", status_code=204, response_class=Response
)
@router.options("/conversations/{conversation_id}/read", status_code=204, response_class=Response)
async def preflight_conversation(
    public_key: PublicKeyPath, conversation_id: str, request: Request, uow: UowDep
) -> Response:
    """Respond to the CORS preflight. The request itself checks the conversation."""
    return await preflight_response(uow, request, public_key)


@router.options(
    "/conversations/{conversation_id}/attachments/{object_id}",
    status_code=204,
    response_class=Response,
)
@router.options(
    "/conversations/{conversation_id}/attachments/{object_id}/preview",
    status_code=204,
    response_class=Response,
)
async def preflight_attachment(
    public_key: PublicKeyPath,
    conversation_id: str,
    object_id: str,
    request: Request,
    uow: UowDep,
) -> Response:
    """Respond to the CORS preflight. The request itself checks the file."""
    return await preflight_response(uow, request, public_key)
