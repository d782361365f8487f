"""Subscriptions: a contact's plan billed by the scheduler (manual) or by Stripe Billing.

Manual subscriptions move through trialing, active, past_due, paused and canceled here and
in payments/subscription_jobs.py, which issues one invoice per period start. Stripe
subscriptions are created in Stripe (payments/subscription_stripe.py) and their status is
the one Stripe reports through webhooks (``apply_stripe_subscription_event``). Every change
records a ``subscription.*`` event for staff whose data is the subscription's API view.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.models import Contact
from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import Conflict, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import plans, renewals, subscription_stripe
from frontdesk.payments.models import Plan, Subscription
from frontdesk.payments.money import round_half_up
from frontdesk.payments.periods import boundary, period_index

log = structlog.get_logger()

GATEWAYS = ("manual", "stripe")
# Stripe's subscription statuses; manual subscriptions use a subset.
STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
# Statuses after which nothing changes any more.
ENDED = ("canceled", "incomplete_expired")
# A start date may lie this far ahead at most.
MAX_START_DAYS_AHEAD = 366


def subscription_dict(subscription: Subscription) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return iso_utc(value) if value else None

    return {
        "id": str(subscription.id),
        "contact_id": str(subscription.contact_id) if subscription.contact_id else None,
        "plan_id": str(subscription.plan_id),
        "gateway": subscription.gateway,
        "status": subscription.status,
        "current_period_start": moment(subscription.current_period_start),
        "current_period_end": moment(subscription.current_period_end),
        "trial_end": moment(subscription.trial_end),
        "billing_anchor": moment(subscription.billing_anchor),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": moment(subscription.canceled_at),
        "paused_at": moment(subscription.paused_at),
        "past_due_since": moment(subscription.past_due_since),
        "dunning_emails_sent": subscription.dunning_emails_sent,
        "stripe_subscription_id": subscription.stripe_subscription_id,
        "created_at": iso_utc(subscription.created_at),
        "updated_at": iso_utc(subscription.updated_at),
    }


def record(uow: UnitOfWork, subscription: Subscription, name: str, **extra: Any) -> None:
    """Record the event ``subscription.<name>`` with the subscription's view and ``extra``."""
    subscription.updated_at = uow.now()
    data = {"subscription": subscription_dict(subscription), **extra}
    uow.record_event(f"subscription.{name}", data, workspace_id=subscription.workspace_id)
    log.info(
        f"subscription.{name}",
        subscription_id=str(subscription.id),
        status=subscription.status,
        gateway=subscription.gateway,
    )


def billing_anchor(subscription: Subscription) -> datetime:
    """Return the moment a manual subscription's periods are counted from.

    That is the stored ``billing_anchor``: the end of the trial (or a later start date),
    else the start, and the time of the last plan change to another interval. Rows without
    one, such as Stripe subscriptions, count from the trial end or the creation time.
    """
    return subscription.billing_anchor or subscription.trial_end or subscription.created_at


def next_period(subscription: Subscription, plan: Plan) -> tuple[datetime, datetime]:
    """Return the period that starts where the current one ends."""
    assert subscription.current_period_end is not None
    start = subscription.current_period_end
    anchor = billing_anchor(subscription)
    index = period_index(anchor, plan.interval, plan.interval_count, start)
    return start, boundary(anchor, plan.interval, plan.interval_count, index + 1)


# --- Loading --------------------------------------------------------------------------------


async def get_subscription(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, subscription_id: uuid.UUID, lock: bool = False
) -> Subscription:
    statement = sa.select(Subscription).where(
        Subscription.id == subscription_id, Subscription.workspace_id == workspace_id
    )
    if lock:
        statement = statement.with_for_update()
    subscription = await uow.session.scalar(statement)
    if subscription is None:
        raise NotFound(f"No subscription with id {subscription_id} in this workspace.")
    return subscription


async def list_subscriptions(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    status: str | None,
    contact_id: uuid.UUID | None,
    plan_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Subscription], str | None]:
    statement = sa.select(Subscription).where(Subscription.workspace_id == workspace_id)
    if status is not None:
        statement = statement.where(Subscription.status == status)
    if contact_id is not None:
        statement = statement.where(Subscription.contact_id == contact_id)
    if plan_id is not None:
        statement = statement.where(Subscription.plan_id == plan_id)
    return await fetch_newest_first(
        uow.session, statement, Subscription, cursor=cursor, limit=limit
    )


async def _get_contact(uow: UnitOfWork, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    contact = await uow.session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise ValidationFailed(
            "contact_id", f"No contact {contact_id} in this workspace.", "not_found"
        )
    return contact


# --- Creating -------------------------------------------------------------------------------


def _start_moment(now: datetime, start_date: date | None) -> datetime:
    """Return when the subscription starts: now for today (or no date), else midnight UTC."""
    today = now.date()
    if start_date is None or start_date == today:
        return now
    if start_date < today:
        raise ValidationFailed(
            "start_date",
            f"The start date is in the past; use {today.isoformat()} or later.",
            "in_past",
        )
    if start_date > today + timedelta(days=MAX_START_DAYS_AHEAD):
        raise ValidationFailed(
            "start_date",
            f"Use a start date at most {MAX_START_DAYS_AHEAD} days ahead.",
            "too_far",
        )
    return datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC)


async def create_subscription(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    contact_id: uuid.UUID,
    plan_id: uuid.UUID,
    gateway: str,
    start_date: date | None,
) -> Subscription:
    """Create a subscription. A manual one without trial issues its first invoice now."""
    contact = await _get_contact(uow, workspace_id, contact_id)
    plan = await plans.get_plan_for_field(uow, workspace_id=workspace_id, plan_id=plan_id)
    if gateway not in GATEWAYS:
        raise ValidationFailed("gateway", "Use manual or stripe.", "invalid")
    now = uow.now()
    subscription = Subscription(
        id=uuid7(),
        workspace_id=workspace_id,
        contact_id=contact.id,
        plan_id=plan.id,
        gateway=gateway,
        status="incomplete",
        cancel_at_period_end=False,
        dunning_emails_sent=0,
        created_at=now,
        updated_at=now,
    )
    if gateway == "stripe":
        if start_date is not None and start_date != now.date():
            raise ValidationFailed(
                "start_date",
                "Stripe subscriptions start today; leave start_date out.",
                "not_supported",
            )
        uow.session.add(subscription)
        await uow.session.flush()
        await subscription_stripe.create_in_stripe(uow, subscription, plan, contact)
        record(uow, subscription, "created", actor_id=str(actor_id) if actor_id else None)
        return subscription

    start = _start_moment(now, start_date)
    if not contact.email:
        raise ValidationFailed(
            "contact_id",
            "The contact has no email address, so renewal invoices could not reach them; "
            "add one to the contact first.",
            "no_email",
        )
    # A later start date counts as a trial: nothing is billed before the paid period.
    trial_end = start + timedelta(days=plan.trial_days) if plan.trial_days else None
    if start > now:
        trial_end = trial_end or start
    subscription.trial_end = trial_end
    subscription.billing_anchor = trial_end or start
    uow.session.add(subscription)
    if trial_end is not None:
        subscription.status = "trialing"
        subscription.current_period_start = now
        subscription.current_period_end = trial_end
        await uow.session.flush()
        record(uow, subscription, "created", actor_id=str(actor_id) if actor_id else None)
        return subscription
    subscription.status = "active"
    subscription.current_period_start = start
    subscription.current_period_end = boundary(start, plan.interval, plan.interval_count, 1)
    await uow.session.flush()
    record(uow, subscription, "created", actor_id=str(actor_id) if actor_id else None)
    invoice = await renewals.issue_period_invoice(uow, subscription, plan)
    record(uow, subscription, "renewed", invoice_id=str(invoice.id))
    return subscription


# --- Changing -------------------------------------------------------------------------------


def _check_not_ended(subscription: Subscription) -> None:
    if subscription.status in ENDED:
        raise Conflict(
            f"The subscription is {subscription.status}; create a new one instead.",
            code="subscription_ended",
        )


async def cancel_subscription(
    uow: UnitOfWork, subscription: Subscription, *, at_period_end: bool, actor_id: uuid.UUID | None
) -> Subscription:
    """Cancel now, or at the end of the current period (undone by a later resume)."""
    _check_not_ended(subscription)
    actor = str(actor_id) if actor_id else None
    if subscription.gateway == "stripe":
        await subscription_stripe.cancel_in_stripe(uow, subscription, at_period_end=at_period_end)
    if at_period_end:
        subscription.cancel_at_period_end = True
        record(uow, subscription, "cancel_scheduled", actor_id=actor)
        return subscription
    if subscription.gateway == "manual":
        subscription.status = "canceled"
        subscription.canceled_at = uow.now()
    else:
        # Stripe's response, copied by cancel_in_stripe, carries when Stripe canceled it.
        subscription.canceled_at = subscription.canceled_at or uow.now()
    record(uow, subscription, "canceled", actor_id=actor)
    return subscription


async def pause_subscription(
    uow: UnitOfWork, subscription: Subscription, *, actor_id: uuid.UUID | None
) -> Subscription:
    """Stop billing: periods go on but no invoice is issued (Stripe: pause_collection void)."""
    _check_not_ended(subscription)
    if subscription.paused_at is not None:
        raise Conflict("The subscription is paused already.", code="subscription_paused")
    if subscription.gateway == "stripe":
        await subscription_stripe.pause_in_stripe(uow, subscription)
    else:
        subscription.status = "paused"
    subscription.paused_at = uow.now()
    record(uow, subscription, "paused", actor_id=str(actor_id) if actor_id else None)
    return subscription


async def resume_subscription(
    uow: UnitOfWork, subscription: Subscription, *, actor_id: uuid.UUID | None
) -> Subscription:
    """Resume a paused subscription, or keep one that was to be canceled at period end."""
    _check_not_ended(subscription)
    if subscription.paused_at is None and not subscription.cancel_at_period_end:
        raise Conflict(
            "The subscription is neither paused nor set to cancel; nothing to resume.",
            code="subscription_not_paused",
        )
    if subscription.gateway == "stripe":
        await subscription_stripe.resume_in_stripe(uow, subscription)
    elif subscription.paused_at is not None:
        subscription.status = "past_due" if subscription.past_due_since else "active"
    subscription.paused_at = None
    subscription.cancel_at_period_end = False
    record(uow, subscription, "resumed", actor_id=str(actor_id) if actor_id else None)
    return subscription


async def change_plan(
    uow: UnitOfWork,
    subscription: Subscription,
    *,
    plan_id: uuid.UUID,
    proration: bool,
    actor_id: uuid.UUID | None,
) -> Subscription:
    """Move the subscription to another plan of the same currency.

    Manual, same interval: the new plan bills from the next period. With ``proration``, the
    price difference for the rest of the current period is invoiced now when it is positive.
    Manual, another interval or interval count: ``restart_period`` starts a new period now.
    Stripe: the item's price changes with proration_behavior create_prorations (or none).
    """
    _check_not_ended(subscription)
    old = await uow.session.get(Plan, subscription.plan_id)
    assert old is not None
    new = await plans.get_plan_for_field(
        uow, workspace_id=subscription.workspace_id, plan_id=plan_id
    )
    if new.id == old.id:
        raise ValidationFailed("plan_id", "The subscription is on this plan already.", "unchanged")
    if new.currency != old.currency:
        raise ValidationFailed(
            "plan_id",
            f"The plan bills in {new.currency} but the subscription in {old.currency}; "
            "choose a plan in the same currency.",
            "currency_mismatch",
        )
    extra: dict[str, Any] = {"from_plan_id": str(old.id), "to_plan_id": str(new.id)}
    if subscription.gateway == "stripe":
        await subscription_stripe.change_plan_in_stripe(uow, subscription, new, proration=proration)
        subscription.plan_id = new.id
    elif (new.interval, new.interval_count) != (old.interval, old.interval_count):
        subscription.plan_id = new.id
        extra.update(await restart_period(uow, subscription, old, new, proration=proration))
    else:
        subscription.plan_id = new.id
        if proration and subscription.status in ("active", "past_due"):
            amount = prorated_difference(subscription, old, new, uow.now())
            extra["proration_amount"] = amount
            if amount > 0:
                invoice = await renewals.issue_proration_invoice(
                    uow, subscription, old, new, amount
                )
                extra["invoice_id"] = str(invoice.id)
    extra["actor_id"] = str(actor_id) if actor_id else None
    extra["proration"] = proration
    record(uow, subscription, "plan_changed", **extra)
    return subscription


async def restart_period(
    uow: UnitOfWork, subscription: Subscription, old: Plan, new: Plan, *, proration: bool
) -> dict[str, Any]:
    """Start a new period of the new plan now, for a manual change to another interval.

    The current period ends now and the billing anchor moves to now, so later periods
    count from the change. An active or past_due subscription gets the new period's
    invoice at once. With ``proration``, that invoice's line is reduced by the unused share
    of the old plan's amount, at most the new amount. A trialing subscription keeps its
    trial, whose end starts the first period of the new plan, and a paused one moves to the
    new period without an invoice. Returns the data for the ``plan_changed`` event.
    """
    if subscription.status == "trialing":
        return {"period_restarted": False}
    now = uow.now()
    billed = subscription.status in ("active", "past_due")
    credit = 0
    if proration and billed:
        credit = min(new.amount, round_half_up(old.amount * unused_share(subscription, now)))
    old_end = subscription.current_period_end
    subscription.billing_anchor = now
    subscription.current_period_start = now
    subscription.current_period_end = boundary(now, new.interval, new.interval_count, 1)
    data: dict[str, Any] = {"period_restarted": True, "credit_amount": credit}
    if billed:
        invoice = await renewals.issue_period_invoice(
            uow, subscription, new, credit=credit, credited_plan=old, credited_until=old_end
        )
        data["invoice_id"] = str(invoice.id)
    return data


def unused_share(subscription: Subscription, now: datetime) -> Decimal:
    """Return the part of the current period after ``now``, from 0 to 1."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None or now >= end:
        return Decimal(0)
    return Decimal((end - max(now, start)).total_seconds()) / Decimal((end - start).total_seconds())


def prorated_difference(subscription: Subscription, old: Plan, new: Plan, now: datetime) -> int:
    """Return (new - old amount) * the unused share of the current period, rounded half up."""
    return round_half_up((new.amount - old.amount) * unused_share(subscription, now))


# --- Stripe webhooks ------------------------------------------------------------------------


async def apply_stripe_subscription_event(
    uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any]
) -> None:
    """Apply an invoice.paid, invoice.payment_failed or customer.subscription.* event."""
    await subscription_stripe.apply_event(uow, workspace_id, event)
