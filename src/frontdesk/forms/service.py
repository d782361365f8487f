"""Form use cases: create, change (with published versions), delete, and read."""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.config import Settings
from frontdesk.core.errors import FieldError, NotFound, ValidationFailed, check_not_null
from frontdesk.core.ids import new_token, uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.forms.models import Form, FormVersion
from frontdesk.forms.schemas import (
    FieldDefinition,
    FileOptions,
    FormCreate,
    FormOut,
    FormUpdate,
)
from frontdesk.forms.validation import check_fields, normalize_settings

log = structlog.get_logger()

# Public ids are new_token() output: URL-safe base64 characters.
_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def public_url(settings: Settings, form: Form) -> str:
    """Return the form's public address, built from FRONTDESK_PUBLIC_URL, never a request."""
    return f"{settings.resolved_public_url}/f/{form.public_id}"


def form_view(settings: Settings, form: Form) -> FormOut:
    return FormOut(
        id=form.id,
        name=form.name,
        fields=[FieldDefinition.model_validate(field) for field in form.fields],
        published=form.published,
        version=form.version,
        language=form.language,
        redirect_url=form.redirect_url,
        success_message=form.success_message,
        allowed_origins=list(form.allowed_origins),
        public_id=form.public_id,
        public_url=public_url(settings, form),
        created_at=form.created_at,
        updated_at=form.updated_at,
    )


def _stored_fields(fields: list[FieldDefinition]) -> list[dict[str, Any]]:
    """Return the definitions as stored; a file field keeps its limits, defaults included."""
    stored = []
    for field in fields:
        if field.type == "file" and field.file is None:
            field = field.model_copy(update={"file": FileOptions()})
        stored.append(field.model_dump(mode="json", exclude_none=True))
    return stored


def _check_definition(
    fields: list[FieldDefinition] | None,
    *,
    language: str | None,
    redirect_url: str | None,
    allowed_origins: list[str] | None,
    max_file_bytes: int,
) -> dict[str, Any]:
    errors: list[FieldError] = (
        check_fields(fields, max_file_bytes=max_file_bytes) if fields is not None else []
    )
    values, setting_errors = normalize_settings(
        language=language, redirect_url=redirect_url, allowed_origins=allowed_origins
    )
    errors.extend(setting_errors)
    if errors:
        raise ValidationFailed.many(errors)
    return values


async def _publish_version(uow: UnitOfWork, form: Form) -> None:
    """Record a new version when a published form's name or fields differ from the latest one."""
    if not form.published:
        return
    latest = (
        await uow.session.execute(
            sa.select(FormVersion)
            .where(FormVersion.form_id == form.id)
            .order_by(FormVersion.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest is not None and latest.name == form.name and latest.fields == form.fields:
        return
    form.version += 1
    uow.session.add(
        FormVersion(
            form_id=form.id,
            version=form.version,
            name=form.name,
            fields=form.fields,
            created_at=uow.now(),
        )
    )
    log.info("form.version_published", form_id=str(form.id), version=form.version)


async def create_form(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, actor_user_id: uuid.UUID | None, data: FormCreate
) -> Form:
    """Create a form; it is published (version 1) unless ``data.published`` is False.

    Raises ValidationFailed naming every invalid part of the definition; nothing is stored.
    """
    settings = _check_definition(
        data.fields,
        language=data.language,
        redirect_url=data.redirect_url,
        allowed_origins=data.allowed_origins,
        max_file_bytes=uow.settings.storage_max_object_bytes,
    )
    now = uow.now()
    form = Form(
        id=uuid7(),
        workspace_id=workspace_id,
        public_id=new_token(16),
        name=data.name,
        fields=_stored_fields(data.fields),
        published=data.published,
        version=0,
        language=settings["language"],
        redirect_url=settings.get("redirect_url"),
        success_message=(data.success_message or "").strip() or None,
        allowed_origins=settings["allowed_origins"],
        created_at=now,
        updated_at=now,
    )
    uow.session.add(form)
    await uow.session.flush()
    await _publish_version(uow, form)
    await uow.session.flush()
    log.info(
        "form.created",
        form_id=str(form.id),
        workspace_id=str(workspace_id),
        actor_id=str(actor_user_id) if actor_user_id else None,
    )
    return form


async def list_forms(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> list[Form]:
    statement = (
        sa.select(Form)
        .where(Form.workspace_id == workspace_id)
        .order_by(Form.created_at.desc(), Form.id.desc())
    )
    return list((await uow.session.execute(statement)).scalars())


async def get_form(uow: UnitOfWork, *, workspace_id: uuid.UUID, form_id: uuid.UUID) -> Form:
    """Load a form of the workspace; another workspace's form is not found."""
    form = await uow.session.get(Form, form_id)
    if form is None or form.workspace_id != workspace_id:
        raise NotFound(f"No form with id {form_id} in this workspace.")
    return form


async def find_published_form(uow: UnitOfWork, public_id: str) -> Form | None:
    """Return the published form with this public id, or None."""
    if not _PUBLIC_ID.match(public_id):
        return None
    statement = sa.select(Form).where(Form.public_id == public_id, Form.published.is_(True))
    return (await uow.session.execute(statement)).scalar_one_or_none()


_NOT_NULL = ("name", "fields", "published", "language", "allowed_origins")


async def update_form(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    form_id: uuid.UUID,
    actor_user_id: uuid.UUID | None,
    changes: FormUpdate,
) -> Form:
    """Apply a change. A published form whose name or fields change gets a new version, and
    so does a form that becomes published with content different from its latest version."""
    form = await get_form(uow, workspace_id=workspace_id, form_id=form_id)
    sent = changes.model_fields_set
    check_not_null(changes, _NOT_NULL)
    settings = _check_definition(
        changes.fields if "fields" in sent else None,
        language=changes.language if "language" in sent else None,
        redirect_url=(changes.redirect_url or "") if "redirect_url" in sent else None,
        allowed_origins=changes.allowed_origins if "allowed_origins" in sent else None,
        max_file_bytes=uow.settings.storage_max_object_bytes,
    )
    if "name" in sent and changes.name is not None:
        form.name = changes.name
    if "fields" in sent and changes.fields is not None:
        form.fields = _stored_fields(changes.fields)
    if "published" in sent and changes.published is not None:
        form.published = changes.published
    if "success_message" in sent:
        form.success_message = (changes.success_message or "").strip() or None
    for name, value in settings.items():
        setattr(form, name, value)
    form.updated_at = uow.now()
    await _publish_version(uow, form)
    await uow.session.flush()
    log.info(
        "form.updated",
        form_id=str(form.id),
        version=form.version,
        fields=sorted(sent),
        actor_id=str(actor_user_id) if actor_user_id else None,
    )
    return form


async def delete_form(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, form_id: uuid.UUID, actor_user_id: uuid.UUID
) -> None:
    """Delete a form and its versions. Its enquiries stay, with the form id and version in
    their source details."""
    form = await get_form(uow, workspace_id=workspace_id, form_id=form_id)
    await uow.session.delete(form)
    await uow.session.flush()
    log.info("form.deleted", form_id=str(form_id), actor_id=str(actor_user_id))


async def list_versions(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, form_id: uuid.UUID
) -> list[FormVersion]:
    await get_form(uow, workspace_id=workspace_id, form_id=form_id)
    statement = (
        sa.select(FormVersion)
        .where(FormVersion.form_id == form_id)
        .order_by(FormVersion.version.desc())
    )
    return list((await uow.session.execute(statement)).scalars())
