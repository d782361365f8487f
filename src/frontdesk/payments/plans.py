"""Plans: what a subscription bills, how much and how often.

A plan used by a subscription is archived instead of deleted, and its price terms (amount,
currency, interval, interval_count) no longer change, so that every subscription keeps the
terms it was sold with. A plan change moves a subscription to another plan.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from frontdesk.core.clock import iso_utc
from frontdesk.core.errors import Conflict, NotFound, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.text import is_blank
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import money
from frontdesk.payments.models import Plan, Subscription
from frontdesk.payments.periods import INTERVALS, MAX_INTERVAL_COUNT

MAX_TRIAL_DAYS = 730
# Stripe takes amounts of at most eight digits (https://docs.stripe.com/currencies), so a
# larger plan could not be billed there.
MAX_AMOUNT = 99_999_999
PRICE_TERMS = ("amount", "currency", "interval", "interval_count")


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "id": str(plan.id),
        "name": plan.name,
        "amount": plan.amount,
        "currency": plan.currency,
        "interval": plan.interval,
        "interval_count": plan.interval_count,
        "trial_days": plan.trial_days,
        "tax_rate": plan.tax_rate,
        "archived": not plan.active,
        "stripe_product_id": plan.stripe_product_id,
        "stripe_price_id": plan.stripe_price_id,
        "created_at": iso_utc(plan.created_at),
        "updated_at": iso_utc(plan.updated_at),
    }


def check_tax_rate(text: str) -> str:
    """Return the tax rate (percent, 0 to 100, 4 places) as a normalized decimal string."""
    rate = money.parse_decimal(text, "tax_rate", places=4, minimum=Decimal(0), maximum=Decimal(100))
    return money.decimal_text(rate)


def check_terms(interval: str, interval_count: int, trial_days: int, amount: int) -> None:
    if interval not in INTERVALS:
        raise ValidationFailed("interval", "Use week, month or year.", "invalid")
    maximum = MAX_INTERVAL_COUNT[interval]
    if not 1 <= interval_count <= maximum:
        raise ValidationFailed(
            "interval_count",
            f"Use 1 to {maximum} for the interval '{interval}'.",
            "out_of_range",
        )
    if not 0 <= trial_days <= MAX_TRIAL_DAYS:
        raise ValidationFailed("trial_days", f"Use 0 to {MAX_TRIAL_DAYS} days.", "out_of_range")
    if not 0 < amount <= MAX_AMOUNT:
        raise ValidationFailed(
            "amount",
            f"Use a positive amount in the currency's minor unit, at most {MAX_AMOUNT}.",
            "out_of_range",
        )


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if is_blank(cleaned):
        raise ValidationFailed("name", "The name cannot be empty.", "blank")
    return cleaned


async def get_plan(uow: UnitOfWork, *, workspace_id: uuid.UUID, plan_id: uuid.UUID) -> Plan:
    plan = await uow.session.get(Plan, plan_id)
    if plan is None or plan.workspace_id != workspace_id:
        raise NotFound(f"No plan with id {plan_id} in this workspace.")
    return plan


async def get_plan_for_field(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, field: str = "plan_id"
) -> Plan:
    """Load a plan named in a request body. An unknown or archived plan is a field error."""
    plan = await uow.session.get(Plan, plan_id)
    if plan is None or plan.workspace_id != workspace_id:
        raise ValidationFailed(field, f"No plan {plan_id} in this workspace.", "not_found")
    if not plan.active:
        raise ValidationFailed(field, "The plan is archived; choose an active plan.", "archived")
    return plan


async def list_plans(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, include_archived: bool
) -> list[Plan]:
    statement = sa.select(Plan).where(Plan.workspace_id == workspace_id)
    if not include_archived:
        statement = statement.where(Plan.active.is_(True))
    return list(await uow.session.scalars(statement.order_by(Plan.created_at, Plan.id)))


async def plan_in_use(uow: UnitOfWork, plan: Plan) -> bool:
    used = await uow.session.scalar(
        sa.select(Subscription.id).where(Subscription.plan_id == plan.id).limit(1)
    )
    return used is not None


async def create_plan(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    name: str,
    amount: int,
    currency: str,
    interval: str,
    interval_count: int,
    trial_days: int,
    tax_rate: str,
) -> Plan:
    name = _check_name(name)
    currency = money.check_currency(currency)
    check_terms(interval, interval_count, trial_days, amount)
    now = uow.now()
    plan = Plan(
        id=uuid7(),
        workspace_id=workspace_id,
        name=name,
        amount=amount,
        currency=currency,
        interval=interval,
        interval_count=interval_count,
        trial_days=trial_days,
        tax_rate=check_tax_rate(tax_rate),
        active=True,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(plan)
    await uow.session.flush()
    uow.record_event("plan.created", plan_dict(plan), workspace_id=workspace_id)
    return plan


async def update_plan(uow: UnitOfWork, plan: Plan, changes: dict[str, Any]) -> Plan:
    """Apply the given fields. Price terms change only while no subscription uses the plan."""
    changed_terms = [name for name in PRICE_TERMS if name in changes]
    if changed_terms and await plan_in_use(uow, plan):
        raise Conflict(
            f"The plan has subscriptions, so its {changed_terms[0]} cannot change; create a "
            "new plan and change the subscriptions' plan instead.",
            code="plan_in_use",
        )
    if "name" in changes:
        plan.name = _check_name(changes["name"])
    if "currency" in changes:
        plan.currency = money.check_currency(changes["currency"])
    if "tax_rate" in changes:
        plan.tax_rate = check_tax_rate(changes["tax_rate"])
    for name in ("amount", "interval", "interval_count", "trial_days"):
        if name in changes:
            setattr(plan, name, changes[name])
    check_terms(plan.interval, plan.interval_count, plan.trial_days, plan.amount)
    if "archived" in changes:
        plan.active = not changes["archived"]
    if changed_terms:
        # A Stripe price is immutable, so the next Stripe subscription creates a new one.
        plan.stripe_price_id = None
    plan.updated_at = uow.now()
    await uow.session.flush()
    uow.record_event("plan.updated", plan_dict(plan), workspace_id=plan.workspace_id)
    return plan


async def delete_plan(uow: UnitOfWork, plan: Plan) -> bool:
    """Delete an unused plan, or archive a used one. Returns whether it was deleted."""
    if await plan_in_use(uow, plan):
        if plan.active:
            plan.active = False
            plan.updated_at = uow.now()
            await uow.session.flush()
            uow.record_event("plan.archived", plan_dict(plan), workspace_id=plan.workspace_id)
        return False
    data = plan_dict(plan)
    await uow.session.delete(plan)
    await uow.session.flush()
    uow.record_event("plan.deleted", data, workspace_id=plan.workspace_id)
    return True
