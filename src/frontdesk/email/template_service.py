"""Workspace email templates: versions per locale, checks, previews and sending.

Every save is checked by ``frontdesk.email.templating`` before it is stored (syntax, tags,
undeclared variables), and every render runs in its sandbox. Saving a locale adds a version;
earlier versions stay readable. A message requests a locale and gets the nearest one the
template has: the exact tag (``pt-BR``), then its language (``pt``), then the template's
default locale.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import ValidationError

from frontdesk.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.builtin_templates import provided_names
from frontdesk.email.composer import RenderedEmail
from frontdesk.email.models import EmailTemplate, EmailTemplateVersion
from frontdesk.email.schemas import (
    TemplateContent,
    TemplateCreate,
    TemplateOut,
    TemplateUpdate,
    TemplateVersionOut,
)
from frontdesk.email.templating import (
    TemplateError,
    TemplateRenderError,
    TemplateSource,
    VariableSpec,
    check_template,
    render_template,
    sample_data,
)

log = structlog.get_logger()


def _field_errors(errors: Sequence[TemplateError], prefix: str = "") -> list[FieldError]:
    result = []
    for error in errors:
        message = re.sub(r" at 0x[0-9a-f]+", "", error.message)
        result.append(FieldError(field=f"{prefix}{error.field}", message=message, code=error.code))
    return result


def parse_variables(raw: Sequence[dict[str, Any]], field: str = "variables") -> list[VariableSpec]:
    """Validate a variable schema; raise ValidationFailed naming each bad entry."""
    variables: list[VariableSpec] = []
    errors: list[FieldError] = []
    for index, item in enumerate(raw):
        try:
            variables.append(VariableSpec.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                location = ".".join(str(part) for part in error["loc"])
                errors.append(
                    FieldError(
                        field=f"{field}.{index}" + (f".{location}" if location else ""),
                        message=error["msg"],
                        code=str(error["type"]),
                    )
                )
    if errors:
        raise ValidationFailed.many(errors)
    return variables


def _source(content: TemplateContent | EmailTemplateVersion) -> TemplateSource:
    return TemplateSource(
        subject=content.subject,
        body_format=content.body_format,  # type: ignore[arg-type]
        body=content.body,
        text=content.text,
    )


def _check(content: TemplateContent, variables: Sequence[VariableSpec]) -> None:
    errors = check_template(_source(content), variables)
    if errors:
        raise ValidationFailed.many(_field_errors(errors))


async def _current_versions(
    uow: UnitOfWork, template_id: uuid.UUID
) -> dict[str, EmailTemplateVersion]:
    rows = await uow.session.scalars(
        sa.select(EmailTemplateVersion)
        .where(EmailTemplateVersion.template_id == template_id)
        .order_by(EmailTemplateVersion.locale, EmailTemplateVersion.version)
    )
    current: dict[str, EmailTemplateVersion] = {}
    for row in rows:
        current[row.locale] = row
    return current


async def view(uow: UnitOfWork, template: EmailTemplate) -> TemplateOut:
    current = await _current_versions(uow, template.id)
    return TemplateOut(
        id=template.id,
        key=template.key,
        name=template.name,
        description=template.description,
        variables=template.variables,
        default_locale=template.default_locale,
        locales={
            locale: TemplateVersionOut.model_validate(version)
            for locale, version in current.items()
        },
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


async def get_template(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, template_id: uuid.UUID
) -> EmailTemplate:
    template = await uow.session.scalar(
        sa.select(EmailTemplate).where(
            EmailTemplate.id == template_id, EmailTemplate.workspace_id == workspace_id
        )
    )
    if template is None:
        raise NotFound("No such email template in this workspace.")
    return template


async def list_templates(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> list[EmailTemplate]:
    rows = await uow.session.scalars(
        sa.select(EmailTemplate)
        .where(EmailTemplate.workspace_id == workspace_id)
        .order_by(EmailTemplate.key)
    )
    return list(rows)


def _new_version(
    template: EmailTemplate,
    content: TemplateContent,
    *,
    locale: str,
    version: int,
    actor_id: uuid.UUID | None,
    now: Any,
) -> EmailTemplateVersion:
    return EmailTemplateVersion(
        id=uuid7(),
        template_id=template.id,
        locale=locale,
        version=version,
        subject=content.subject,
        body_format=content.body_format,
        body=content.body,
        text=content.text,
        created_by=actor_id,
        created_at=now,
    )


def _check_builtin_variables(key: str, variables: Sequence[VariableSpec]) -> None:
    """Reject variables that built-in email ``key`` does not provide, when it is one."""
    provided = provided_names(key)
    if provided is None:
        return
    errors = [
        FieldError(
            field=f"variables.{index}.name",
            message=f"The {key} email provides only {', '.join(sorted(provided))}; remove "
            f"'{variable.name}'.",
            code="not_provided",
        )
        for index, variable in enumerate(variables)
        if variable.name not in provided
    ]
    if errors:
        raise ValidationFailed.many(errors)


async def create_template(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, actor_id: uuid.UUID | None, data: TemplateCreate
) -> EmailTemplate:
    variables = parse_variables(data.variables)
    _check_builtin_variables(data.key, variables)
    _check(data, variables)
    existing = await uow.session.scalar(
        sa.select(EmailTemplate.id).where(
            EmailTemplate.workspace_id == workspace_id, EmailTemplate.key == data.key
        )
    )
    if existing is not None:
        raise Conflict(
            f"A template with key '{data.key}' exists; change that one or pick another key.",
            code="template_exists",
        )
    now = uow.now()
    template = EmailTemplate(
        id=uuid7(),
        workspace_id=workspace_id,
        key=data.key,
        name=data.name,
        description=data.description,
        variables=[variable.model_dump(mode="json") for variable in variables],
        default_locale=data.locale,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(template)
    await uow.session.flush()
    uow.session.add(
        _new_version(template, data, locale=data.locale, version=1, actor_id=actor_id, now=now)
    )
    await uow.session.flush()
    log.info("email.template_created", template_id=str(template.id), key=data.key)
    return template


async def save_locale(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    template_id: uuid.UUID,
    locale: str,
    actor_id: uuid.UUID | None,
    content: TemplateContent,
) -> EmailTemplate:
    """Add a version of ``locale``, the first one when the template does not have it yet."""
    template = await get_template(uow, workspace_id=workspace_id, template_id=template_id)
    _check(content, parse_variables(template.variables))
    latest = await uow.session.scalar(
        sa.select(sa.func.max(EmailTemplateVersion.version)).where(
            EmailTemplateVersion.template_id == template.id,
            EmailTemplateVersion.locale == locale,
        )
    )
    now = uow.now()
    uow.session.add(
        _new_version(
            template, content, locale=locale, version=(latest or 0) + 1, actor_id=actor_id, now=now
        )
    )
    template.updated_at = now
    await uow.session.flush()
    return template


async def update_template(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, template_id: uuid.UUID, changes: TemplateUpdate
) -> EmailTemplate:
    """Change the name, description, schema or default locale.

    A new schema must still cover every variable that the current versions use.
    """
    template = await get_template(uow, workspace_id=workspace_id, template_id=template_id)
    sent = changes.model_fields_set
    if "variables" in sent and changes.variables is not None:
        variables = parse_variables(changes.variables)
        _check_builtin_variables(template.key, variables)
        errors: list[FieldError] = []
        for locale, version in (await _current_versions(uow, template.id)).items():
            errors.extend(
                _field_errors(
                    check_template(_source(version), variables), prefix=f"locales.{locale}."
                )
            )
        if errors:
            raise ValidationFailed.many(errors)
        template.variables = [variable.model_dump(mode="json") for variable in variables]
    if "name" in sent and changes.name is not None:
        template.name = changes.name
    if "description" in sent:
        template.description = changes.description
    if "default_locale" in sent and changes.default_locale is not None:
        if changes.default_locale not in await _current_versions(uow, template.id):
            raise ValidationFailed(
                "default_locale",
                "The template has no version in this locale; save one first.",
                "unknown_locale",
            )
        template.default_locale = changes.default_locale
    template.updated_at = uow.now()
    await uow.session.flush()
    return template


async def delete_template(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, template_id: uuid.UUID
) -> None:
    template = await get_template(uow, workspace_id=workspace_id, template_id=template_id)
    await uow.session.delete(template)
    log.info("email.template_deleted", template_id=str(template_id))


async def list_versions(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, template_id: uuid.UUID, locale: str | None
) -> list[EmailTemplateVersion]:
    template = await get_template(uow, workspace_id=workspace_id, template_id=template_id)
    query = sa.select(EmailTemplateVersion).where(EmailTemplateVersion.template_id == template.id)
    if locale:
        query = query.where(EmailTemplateVersion.locale == locale)
    rows = await uow.session.scalars(
        query.order_by(EmailTemplateVersion.locale, EmailTemplateVersion.version.desc())
    )
    return list(rows)


def choose_locale(available: Sequence[str], requested: str | None, default: str) -> str:
    """Return the exact requested locale, else its language, else ``default``."""
    if requested:
        if requested in available:
            return requested
        language = requested.split("-", 1)[0]
        if language in available:
            return language
    return default


async def render(
    uow: UnitOfWork,
    template: EmailTemplate,
    *,
    locale: str | None,
    data: dict[str, Any] | None,
) -> tuple[EmailTemplateVersion, RenderedEmail]:
    """Render the current version of the best locale; ``data`` None uses the samples.

    Raises ValidationFailed naming every unknown, missing or mistyped variable (fields
    ``data.<name>``) and every problem of the template.
    """
    current = await _current_versions(uow, template.id)
    chosen = choose_locale(list(current), locale, template.default_locale)
    version = current[chosen]
    variables = parse_variables(template.variables)
    values = sample_data(variables) if data is None else data
    try:
        rendered = render_template(_source(version), variables, values)
    except TemplateRenderError as exc:
        raise ValidationFailed.many(_field_errors(exc.errors)) from exc
    return version, rendered


async def render_replacement(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, key: str, language: str, values: dict[str, Any]
) -> RenderedEmail | None:
    """Render the workspace's template that replaces built-in email ``key``, if it has one.

    Only the variables the template declares are passed. Returns None when there is no such
    template or it fails to render; the caller then sends the built-in text.
    """
    template = await uow.session.scalar(
        sa.select(EmailTemplate).where(
            EmailTemplate.workspace_id == workspace_id, EmailTemplate.key == key
        )
    )
    if template is None:
        return None
    declared = {variable["name"] for variable in template.variables}
    data = {name: value for name, value in values.items() if name in declared and value is not None}
    try:
        _version, rendered = await render(uow, template, locale=language, data=data)
    except ValidationFailed as exc:
        log.warning(
            "email.template_fallback",
            template_id=str(template.id),
            key=key,
            errors=[error.code for error in exc.errors],
        )
        return None
    return rendered
