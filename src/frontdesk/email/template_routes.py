"""Email templates API: write, version, preview and send workspace templates."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Response

from frontdesk.auth.dependencies import Actor, AdminDep, AgentDep
from frontdesk.auth.models import User
from frontdesk.conversations import service as conversations
from frontdesk.conversations.attachments import resolve_attachments
from frontdesk.conversations.formatting import fit_email_text
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import template_service
from frontdesk.email.inbound_service import reply_address
from frontdesk.email.mime import parse_address
from frontdesk.email.models import EmailMessage, InboundEmail
from frontdesk.email.schemas import (
    LOCALE_PATTERN,
    AttachmentRef,
    TemplateContent,
    TemplateCreate,
    TemplateList,
    TemplateOut,
    TemplatePreviewIn,
    TemplatePreviewOut,
    TemplateSendIn,
    TemplateSendOut,
    TemplateUpdate,
    TemplateVersionList,
    TemplateVersionOut,
)
from frontdesk.email.service import queue_email, workspace_provider_setting
from frontdesk.enquiries.models import Enquiry
from frontdesk.storage import scanning
from frontdesk.storage.models import StoredObject

router = APIRouter(prefix="/email/templates", tags=["email templates"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such template, or not this workspace's."},
    409: {"model": Problem, "description": "A template with this key exists."},
    422: {"model": Problem, "description": "Invalid input; `errors` names each field."},
}
LocalePath = Annotated[str, Path(pattern=LOCALE_PATTERN, max_length=20)]


@router.post("", status_code=201, response_model=TemplateOut, responses=_ERRORS)
async def create_template(uow: UowDep, actor: AdminDep, body: TemplateCreate) -> TemplateOut:
    """Create a template with its variable schema and its first locale (version 1)."""
    template = await template_service.create_template(
        uow, workspace_id=actor.workspace_id, actor_id=actor.user_id, data=body
    )
    return await template_service.view(uow, template)


@router.get("", response_model=TemplateList, responses=_ERRORS)
async def list_templates(uow: UowDep, actor: AgentDep) -> TemplateList:
    templates = await template_service.list_templates(uow, workspace_id=actor.workspace_id)
    return TemplateList(items=[await template_service.view(uow, item) for item in templates])


@router.get("/{template_id}", response_model=TemplateOut, responses=_ERRORS)
async def get_template(uow: UowDep, actor: AgentDep, template_id: uuid.UUID) -> TemplateOut:
    template = await template_service.get_template(
        uow, workspace_id=actor.workspace_id, template_id=template_id
    )
    return await template_service.view(uow, template)


@router.patch("/{template_id}", response_model=TemplateOut, responses=_ERRORS)
async def update_template(
    uow: UowDep, actor: AdminDep, template_id: uuid.UUID, body: TemplateUpdate
) -> TemplateOut:
    template = await template_service.update_template(
        uow, workspace_id=actor.workspace_id, template_id=template_id, changes=body
    )
    return await template_service.view(uow, template)


@router.delete("/{template_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_template(uow: UowDep, actor: AdminDep, template_id: uuid.UUID) -> Response:
    await template_service.delete_template(
        uow, workspace_id=actor.workspace_id, template_id=template_id
    )
    return Response(status_code=204)


@router.put("/{template_id}/locales/{locale}", response_model=TemplateOut, responses=_ERRORS)
async def save_locale(
    uow: UowDep,
    actor: AdminDep,
    template_id: uuid.UUID,
    locale: LocalePath,
    body: TemplateContent,
) -> TemplateOut:
    """Save a new version of one locale; earlier versions stay in the history."""
    template = await template_service.save_locale(
        uow,
        workspace_id=actor.workspace_id,
        template_id=template_id,
        locale=locale,
        actor_id=actor.user_id,
        content=body,
    )
    return await template_service.view(uow, template)


@router.get("/{template_id}/versions", response_model=TemplateVersionList, responses=_ERRORS)
async def list_versions(
    uow: UowDep,
    actor: AgentDep,
    template_id: uuid.UUID,
    locale: Annotated[str | None, Query(pattern=LOCALE_PATTERN, max_length=20)] = None,
) -> TemplateVersionList:
    versions = await template_service.list_versions(
        uow, workspace_id=actor.workspace_id, template_id=template_id, locale=locale
    )
    return TemplateVersionList(items=[TemplateVersionOut.model_validate(v) for v in versions])


@router.post("/{template_id}/preview", response_model=TemplatePreviewOut, responses=_ERRORS)
async def preview(
    uow: UowDep, actor: AgentDep, template_id: uuid.UUID, body: TemplatePreviewIn | None = None
) -> TemplatePreviewOut:
    """Render with the given data, or with the samples; problems come back as 422 errors.

    Show the HTML in a sandboxed iframe: its styles would otherwise apply to your page.
    """
    template = await template_service.get_template(
        uow, workspace_id=actor.workspace_id, template_id=template_id
    )
    body = body or TemplatePreviewIn()
    version, rendered = await template_service.render(
        uow, template, locale=body.locale, data=body.data
    )
    return TemplatePreviewOut(
        locale=version.locale,
        version=version.version,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )


@router.post(
    "/{template_id}/send", status_code=202, response_model=TemplateSendOut, responses=_ERRORS
)
async def send(
    uow: UowDep, actor: AgentDep, template_id: uuid.UUID, body: TemplateSendIn
) -> TemplateSendOut:
    """Render the template with ``data`` and queue the email to ``to``."""
    template = await template_service.get_template(
        uow, workspace_id=actor.workspace_id, template_id=template_id
    )
    if body.enquiry_id is not None:
        found = await uow.session.scalar(
            sa.select(Enquiry.id).where(
                Enquiry.id == body.enquiry_id, Enquiry.workspace_id == actor.workspace_id
            )
        )
        if found is None:
            raise ValidationFailed("enquiry_id", "No such enquiry in this workspace.", "not_found")
    attachments = await _attachments(uow, actor.workspace_id, body.attachments)
    in_reply_to = None
    if body.enquiry_id is not None:
        # The email replies to the newest message a person sent about the enquiry, and to an
        # auto-reply only when nothing else was received.
        written_by_person = sa.case((InboundEmail.automatic_reason.is_(None), 0), else_=1)
        in_reply_to = await uow.session.scalar(
            sa.select(InboundEmail.message_id)
            .where(InboundEmail.enquiry_id == body.enquiry_id, InboundEmail.message_id.is_not(None))
            .order_by(written_by_person, InboundEmail.created_at.desc())
            .limit(1)
        )
    _version, rendered = await template_service.render(
        uow, template, locale=body.locale, data=body.data
    )
    reply_to = None
    provider = await workspace_provider_setting(uow, actor.workspace_id)
    if body.enquiry_id is not None and provider is not None:
        # Replies come back to the same mailbox with the enquiry's token in the address.
        address = parse_address(provider.from_address).address
        reply_to = reply_address(address, uow.rt.secrets.secret_key, body.enquiry_id)
    message = await queue_email(
        uow,
        kind="template",
        reply_to=reply_to,
        to=str(body.to),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        workspace_id=actor.workspace_id,
        enquiry_id=body.enquiry_id,
        auto_submitted=False,
        category=body.category,
        attachments=attachments,
        in_reply_to=in_reply_to,
    )
    message.template_key = template.key
    if body.enquiry_id is not None:
        await _add_to_conversation(uow, actor, body.enquiry_id, message, rendered.text, attachments)
    return TemplateSendOut(email_id=message.id, status=message.status)


async def _add_to_conversation(
    uow: UnitOfWork,
    actor: Actor,
    enquiry_id: uuid.UUID,
    message: EmailMessage,
    text: str,
    attachments: list[dict[str, Any]],
) -> None:
    """Post the sent email's text as the member's message in the enquiry's conversation."""
    enquiry = await uow.session.get(Enquiry, enquiry_id)
    user = await uow.session.get(User, actor.user_id)
    if enquiry is None:
        return
    conversation = await conversations.conversation_for_enquiry(uow, enquiry)
    files = await resolve_attachments(
        uow,
        workspace_id=actor.workspace_id,
        object_ids=[uuid.UUID(item["object_id"]) for item in attachments],
    )
    text = fit_email_text(text)
    await conversations.post_message(
        uow,
        conversation,
        author=conversations.Author(
            type="member", id=actor.user_id, name=user.full_name if user else None
        ),
        body=text if text.strip() or files else "(empty email)",
        attachments=files,
        data={"email_id": str(message.id), "subject": message.subject},
    )


async def _attachments(
    uow: UnitOfWork, workspace_id: uuid.UUID, refs: list[AttachmentRef]
) -> list[dict[str, Any]]:
    """Check the files to attach and describe them for the message.

    Each must be an object of the workspace that may be downloaded (scanned and clean), and
    together they must fit FRONTDESK_EMAIL_MAX_ATTACHMENT_BYTES.
    """
    described: list[dict[str, Any]] = []
    total = 0
    for index, ref in enumerate(refs):
        stored = await uow.session.scalar(
            sa.select(StoredObject).where(
                StoredObject.id == ref.object_id, StoredObject.workspace_id == workspace_id
            )
        )
        if stored is None:
            raise ValidationFailed(
                f"attachments.{index}.object_id", "No such file in this workspace.", "not_found"
            )
        await scanning.ensure_downloadable(uow, stored)
        total += stored.size
        described.append(
            {
                "object_id": str(stored.id),
                "filename": stored.key.rsplit("/", 1)[-1],
                "content_type": stored.content_type,
                "content_id": ref.content_id,
            }
        )
    limit = uow.settings.email_max_attachment_bytes
    if total > limit:
        raise ValidationFailed(
            "attachments",
            f"The files add up to {total} bytes; an email carries at most {limit}.",
            "too_large",
        )
    return described
