"""Scheduled subscription work: renewals, trial ends, cancellations, past due and dunning.

One periodic job runs the steps in order. Each step changes a subscription and records its
event in the same transaction. It selects only subscriptions whose state still needs the
step, so a step that runs twice does nothing the second time. For example, a renewal moves
the period forward together with the invoice it issues, and a dunning email raises the
count that the next run checks.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.models import Contact
from frontdesk.core.db import dialect_name
from frontdesk.core.errors import ProblemError
from frontdesk.core.jobs import periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.service import queue_email
from frontdesk.payments import money, renewals
from frontdesk.payments.models import Invoice, Plan, Subscription
from frontdesk.payments.settings import load_settings
from frontdesk.payments.subscriptions import next_period, record

log = structlog.get_logger()

SUBSCRIPTIONS_JOB = "payments.subscriptions.run"
# Subscriptions handled per step and run. The next run, five minutes later, takes the rest.
BATCH = 200
# Periods caught up per subscription and run, after downtime longer than a period.
MAX_PERIODS_PER_RUN = 12
UNPAID_INVOICE = ("open", "partially_paid", "overdue")


def _lock(uow: UnitOfWork, statement: sa.Select[Any]) -> sa.Select[Any]:
    if dialect_name(uow.session) == "postgresql":
        # A subscription that a staff request is changing now waits for the next run.
        return statement.with_for_update(skip_locked=True)
    return statement


async def renew_due(uow: UnitOfWork, *, limit: int = BATCH) -> int:
    """Start the next period of manual subscriptions whose period ended; returns how many.

    A trial that ended becomes active, a subscription set to cancel at period end is
    canceled, a paused one moves to the next period without an invoice, and any other gets
    the invoice of its new period.
    """
    now = uow.now()
    statement = (
        sa.select(Subscription)
        .where(
            Subscription.gateway == "manual",
            Subscription.status.in_(("trialing", "active", "past_due", "paused")),
            Subscription.current_period_end <= now,
        )
        .order_by(Subscription.current_period_end, Subscription.id)
        .limit(limit)
    )
    subscriptions = list(await uow.session.scalars(_lock(uow, statement)))
    for subscription in subscriptions:
        subscription_id = subscription.id
        try:
            # A savepoint per subscription, so one that cannot be invoiced does not stop
            # the renewals of the others.
            async with uow.session.begin_nested():
                await _renew(uow, subscription, now)
        except ProblemError as exc:
            log.error(
                "subscription.renewal_failed",
                subscription_id=str(subscription_id),
                code=exc.code,
                error=exc.detail,
            )
    return len(subscriptions)


async def _renew(uow: UnitOfWork, subscription: Subscription, now: datetime) -> None:
    plan = await uow.session.get(Plan, subscription.plan_id)
    assert plan is not None
    for _ in range(MAX_PERIODS_PER_RUN):
        assert subscription.current_period_end is not None
        if subscription.current_period_end > now:
            return
        await _renew_once(uow, subscription, plan)
        if subscription.status == "canceled":
            return


async def _renew_once(uow: UnitOfWork, subscription: Subscription, plan: Plan) -> None:
    if subscription.contact_id is None:
        # The contact was deleted, so nobody is left to invoice.
        subscription.status = "canceled"
        subscription.canceled_at = subscription.current_period_end
        record(uow, subscription, "canceled", reason="contact_deleted")
        return
    if subscription.cancel_at_period_end:
        subscription.status = "canceled"
        subscription.canceled_at = subscription.current_period_end
        record(uow, subscription, "canceled", reason="period_end")
        return
    ended_trial = subscription.status == "trialing"
    start, end = next_period(subscription, plan)
    subscription.current_period_start = start
    subscription.current_period_end = end
    if ended_trial:
        subscription.status = "active"
        record(uow, subscription, "trial_ended")
    if subscription.status == "paused":
        record(uow, subscription, "renewed", invoice_id=None, paused=True)
        return
    invoice = await renewals.issue_period_invoice(uow, subscription, plan)
    record(uow, subscription, "renewed", invoice_id=str(invoice.id), paused=False)


def _overdue(now: datetime) -> sa.ColumnElement[bool]:
    """Invoices still owed after their due date, even before the daily job marks them."""
    return sa.and_(Invoice.status.in_(UNPAID_INVOICE), Invoice.due_date < now.date())


async def mark_past_due(uow: UnitOfWork, *, limit: int = BATCH) -> int:
    """Move active manual subscriptions with an overdue invoice to past_due."""
    now = uow.now()
    owed = (
        sa.select(Invoice.id)
        .where(Invoice.subscription_id == Subscription.id, _overdue(now))
        .exists()
    )
    statement = (
        sa.select(Subscription)
        .where(Subscription.gateway == "manual", Subscription.status == "active", owed)
        .order_by(Subscription.id)
        .limit(limit)
    )
    subscriptions = list(await uow.session.scalars(_lock(uow, statement)))
    for subscription in subscriptions:
        subscription.status = "past_due"
        subscription.past_due_since = now
        subscription.dunning_emails_sent = 0
        record(uow, subscription, "past_due")
    return len(subscriptions)


async def recover_paid(uow: UnitOfWork, *, limit: int = BATCH) -> int:
    """Return past_due manual subscriptions to active once no invoice of theirs is overdue."""
    now = uow.now()
    owed = (
        sa.select(Invoice.id)
        .where(Invoice.subscription_id == Subscription.id, _overdue(now))
        .exists()
    )
    statement = (
        sa.select(Subscription)
        .where(Subscription.gateway == "manual", Subscription.status == "past_due", ~owed)
        .order_by(Subscription.id)
        .limit(limit)
    )
    subscriptions = list(await uow.session.scalars(_lock(uow, statement)))
    for subscription in subscriptions:
        _reactivate(uow, subscription)
    return len(subscriptions)


async def recover_settled(uow: UnitOfWork, subscription_id: uuid.UUID) -> bool:
    """Return a past_due manual subscription to active if none of its invoices is overdue.

    Invoice changes call this in their own transaction, so a payment recorded on the last
    overdue invoice reactivates the subscription at once. ``recover_paid`` does the same on
    each run as a safety net. Returns whether the subscription changed.
    """
    now = uow.now()
    subscription = await uow.session.scalar(
        sa.select(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.gateway == "manual",
            Subscription.status == "past_due",
        )
        .with_for_update()
    )
    if subscription is None:
        return False
    owed = await uow.session.scalar(
        sa.select(Invoice.id)
        .where(Invoice.subscription_id == subscription.id, _overdue(now))
        .limit(1)
    )
    if owed is not None:
        return False
    _reactivate(uow, subscription)
    return True


def _reactivate(uow: UnitOfWork, subscription: Subscription) -> None:
    subscription.status = "active"
    subscription.past_due_since = None
    subscription.dunning_emails_sent = 0
    record(uow, subscription, "recovered")


async def send_dunning(uow: UnitOfWork, *, limit: int = BATCH) -> int:
    """Send the dunning email that is due for each past-due subscription; returns how many.

    The n-th email goes out once ``dunning_days[n]`` days have passed since past_due_since.
    When several became due at once (after downtime), one email goes out and the count
    jumps, so no day's email is ever sent twice or in a burst.
    """
    now = uow.now()
    statement = (
        sa.select(Subscription)
        .where(
            Subscription.status.in_(("past_due", "unpaid")),
            Subscription.past_due_since.is_not(None),
        )
        .order_by(Subscription.past_due_since, Subscription.id)
        .limit(limit)
    )
    sent = 0
    days_by_workspace: dict[Any, list[int]] = {}
    for subscription in list(await uow.session.scalars(_lock(uow, statement))):
        if subscription.workspace_id not in days_by_workspace:
            settings = await load_settings(uow, subscription.workspace_id)
            days_by_workspace[subscription.workspace_id] = sorted(
                {int(day) for day in settings.dunning_days if int(day) >= 0}
            )
        assert subscription.past_due_since is not None
        since = subscription.past_due_since
        due = [
            day
            for day in days_by_workspace[subscription.workspace_id]
            if since + timedelta(days=day) <= now
        ]
        if len(due) <= subscription.dunning_emails_sent:
            continue
        emailed = await _email_dunning(uow, subscription, attempt=len(due))
        subscription.dunning_emails_sent = len(due)
        record(uow, subscription, "dunning_email_sent", attempt=len(due), emailed=emailed)
        sent += 1
    return sent


def _amount_due(invoice: Invoice) -> int:
    return invoice.total - invoice.amount_paid - invoice.amount_credited


def _amount_text(amount: int, currency: str) -> str:
    """Format minor units in major units: 1050 EUR is "10.50 EUR"."""
    places = money.CURRENCIES.get(currency, 2)
    return f"{Decimal(amount).scaleb(-places):.{places}f} {currency}"


async def _email_dunning(uow: UnitOfWork, subscription: Subscription, *, attempt: int) -> bool:
    contact = (
        await uow.session.get(Contact, subscription.contact_id) if subscription.contact_id else None
    )
    if contact is None or not contact.email:
        log.warning("subscription.dunning_no_email", subscription_id=str(subscription.id))
        return False
    plan = await uow.session.get(Plan, subscription.plan_id)
    assert plan is not None
    invoices = list(
        await uow.session.scalars(
            sa.select(Invoice)
            .where(
                Invoice.subscription_id == subscription.id,
                Invoice.status.in_(UNPAID_INVOICE),
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    owed = [
        f"Invoice {invoice.number or invoice.id}: {_amount_text(_amount_due(invoice), invoice.currency)}"
        f" due on {invoice.due_date}"
        for invoice in invoices
    ]
    greeting = f"Hello {contact.name}," if contact.name else "Hello,"
    lines = [
        greeting,
        "",
        f"the payment for your subscription to {plan.name} is overdue.",
        *(owed or ["Please update your payment details so that the renewal can be charged."]),
        "",
        "Please pay at your earliest convenience to keep your subscription active.",
    ]
    text = "\n".join(lines)
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    await queue_email(
        uow,
        kind="subscription_dunning",
        to=contact.email,
        subject=f"Payment overdue for {plan.name} (reminder {attempt})",
        text=text,
        html=body,
        workspace_id=subscription.workspace_id,
    )
    return True


async def run_subscriptions(uow: UnitOfWork) -> dict[str, int]:
    """Run every step once; returns how many subscriptions each step changed."""
    counts = {
        "renewed": await renew_due(uow),
        "past_due": await mark_past_due(uow),
        "recovered": await recover_paid(uow),
        "dunning": await send_dunning(uow),
    }
    if any(counts.values()):
        log.info("subscriptions.run", **counts)
    return counts


@periodic(SUBSCRIPTIONS_JOB, every_seconds=300)
async def run_subscriptions_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    await run_subscriptions(uow)
