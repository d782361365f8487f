"""A workspace's payment settings: number patterns, defaults, business details, branding.

A workspace without a stored row gets the defaults below; the first PUT stores the row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from frontdesk.core.db import dialect_name
from frontdesk.core.errors import ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import money
from frontdesk.payments.models import PaymentSettings
from frontdesk.payments.schemas import PaymentSettingsIn, PaymentSettingsOut
from frontdesk.storage.models import StoredObject

DEFAULT_INVOICE_PATTERN = "INV-{YYYY}-{seq:04}"
DEFAULT_CREDIT_NOTE_PATTERN = "CN-{YYYY}-{seq:04}"
DEFAULT_CURRENCY = "EUR"
DEFAULT_PAYMENT_TERMS_DAYS = 14
DEFAULT_REMINDER_DAYS = [-3, 0, 7]
DEFAULT_DUNNING_DAYS = [3, 7, 14]


def _defaults(workspace_id: uuid.UUID) -> PaymentSettings:
    return PaymentSettings(
        workspace_id=workspace_id,
        invoice_number_pattern=DEFAULT_INVOICE_PATTERN,
        credit_note_number_pattern=DEFAULT_CREDIT_NOTE_PATTERN,
        default_currency=DEFAULT_CURRENCY,
        payment_terms_days=DEFAULT_PAYMENT_TERMS_DAYS,
        reminder_days=list(DEFAULT_REMINDER_DAYS),
        dunning_days=list(DEFAULT_DUNNING_DAYS),
        business_details={},
        bank_details="",
        branding={},
    )


async def load_settings(uow: UnitOfWork, workspace_id: uuid.UUID) -> PaymentSettings:
    """Return the workspace's settings, or unsaved defaults when it has none.

    The defaults are not added to the session, so reading never writes.
    """
    stored = await uow.session.get(PaymentSettings, workspace_id)
    return stored if stored is not None else _defaults(workspace_id)


async def _locked_row(uow: UnitOfWork, workspace_id: uuid.UUID, now: datetime) -> PaymentSettings:
    """Return the stored row, inserting the defaults first, locked until the transaction ends.

    A concurrent first save inserts the same primary key, so the insert ignores a conflict.
    """
    defaults = _defaults(workspace_id)
    values = {
        column.key: getattr(defaults, column.key)
        for column in PaymentSettings.__table__.columns
        if column.key not in ("created_at", "updated_at")
    }
    insert = postgresql.insert if dialect_name(uow.session) == "postgresql" else sqlite.insert
    await uow.session.execute(
        insert(PaymentSettings)
        .values(**values, created_at=now, updated_at=now)
        .on_conflict_do_nothing()
    )
    statement = sa.select(PaymentSettings).where(PaymentSettings.workspace_id == workspace_id)
    if dialect_name(uow.session) == "postgresql":
        statement = statement.with_for_update()
    return (
        await uow.session.execute(statement.execution_options(populate_existing=True))
    ).scalar_one()


def settings_view(settings: PaymentSettings) -> PaymentSettingsOut:
    return PaymentSettingsOut(
        invoice_number_pattern=settings.invoice_number_pattern,
        credit_note_number_pattern=settings.credit_note_number_pattern,
        default_currency=settings.default_currency,
        default_currency_exponent=money.exponent(settings.default_currency),
        payment_terms_days=settings.payment_terms_days,
        reminder_days=list(settings.reminder_days or []),
        dunning_days=list(settings.dunning_days or []),
        business_details=dict(settings.business_details or {}),
        bank_details=settings.bank_details or "",
        branding=dict(settings.branding or {}),
        updated_at=settings.updated_at,
    )


async def update_settings(
    uow: UnitOfWork, workspace_id: uuid.UUID, changes: PaymentSettingsIn
) -> PaymentSettings:
    """Store the given fields; fields left out keep their current (or default) values."""
    if changes.branding is not None and changes.branding.logo_object_id is not None:
        logo = await uow.session.get(StoredObject, changes.branding.logo_object_id)
        if logo is None or logo.workspace_id != workspace_id:
            raise ValidationFailed(
                "branding.logo_object_id",
                "No stored object with this id in the workspace; upload the logo first.",
                "not_found",
            )
    now = uow.now()
    stored = await _locked_row(uow, workspace_id, now)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True, mode="json")
    for name, value in values.items():
        if value is None and name not in ("business_details", "branding"):
            raise ValidationFailed(name, "This field cannot be null; leave it out to keep it.")
        if name in ("business_details", "branding"):
            value = {key: item for key, item in (value or {}).items() if item is not None}
        setattr(stored, name, value)
    stored.updated_at = now
    await uow.session.flush()
    uow.record_event(
        "payments.settings_updated",
        settings_view(stored).model_dump(mode="json"),
        workspace_id=workspace_id,
    )
    return stored
