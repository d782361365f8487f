"""The overdue job: issued invoices past their due date become overdue."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.core.db import dialect_name
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import invoices
from frontdesk.payments.models import Invoice

log = structlog.get_logger()

OVERDUE_JOB = "payments.invoices.mark_overdue"
# Invoices changed per run; the next run takes the rest.
OVERDUE_BATCH = 500


async def mark_overdue(uow: UnitOfWork, *, limit: int = OVERDUE_BATCH) -> int:
    """Move open and partially paid invoices whose due date (UTC) has passed to overdue.

    Running it again changes nothing, because overdue invoices no longer match. Each change
    adds a "status_changed" activity with source "job" and an ``invoice.overdue`` event.
    Returns how many invoices changed.
    """
    today = uow.now().date()
    statement = (
        sa.select(Invoice)
        .where(Invoice.status.in_(("open", "partially_paid")), Invoice.due_date < today)
        .order_by(Invoice.due_date, Invoice.id)
        .limit(limit)
    )
    if dialect_name(uow.session) == "postgresql":
        # An invoice that a request is paying now waits for the next run.
        statement = statement.with_for_update(skip_locked=True)
    rows = list(await uow.session.scalars(statement))
    for invoice in rows:
        before = invoice.status
        invoice.status = "overdue"
        invoice.updated_at = uow.now()
        await invoices.record_change(
            uow,
            invoice,
            activity="status_changed",
            event="invoice.overdue",
            source="job",
            actor_id=None,
            data={
                "from": before,
                "to": "overdue",
                "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
            },
        )
    if rows:
        log.info("invoices.marked_overdue", count=len(rows))
    return len(rows)


@periodic(OVERDUE_JOB, every_seconds=3600)
async def mark_overdue_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    # Hourly, so invoices turn overdue within an hour of midnight UTC.
    await mark_overdue(uow)
