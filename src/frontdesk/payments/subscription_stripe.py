"""Stripe Billing for subscriptions: customers, products, prices, subscriptions, webhooks.

Every POST carries an idempotency key made of our own ids, so a retried request returns
Stripe's first response instead of creating a second object. Keys of updates also carry the
subscription's ``updated_at`` before the change, so pausing twice in a day (with a resume
in between) is two operations, while a repeat of the same request is one.

Our copy follows Stripe: the object Stripe returns to a request, and then the objects in
webhook events, overwrite status, periods and flags. ``stripe_updated`` keeps the time of the
last copy (the event's ``created``, or our clock for a response). An event created before
it changes nothing, so events that arrive out of order never move a subscription backwards.

NOTE: a response is stamped with our clock, so if it runs ahead of Stripe's, events created
within that lead after the request are ignored until the next one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
import structlog

from frontdesk.contacts.models import Contact
from frontdesk.core.errors import ProblemError, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import subscriptions as service
from frontdesk.payments.models import Plan, StripeCustomer, Subscription
from frontdesk.payments.stripe import credentials
from frontdesk.payments.stripe.client import (
    AmountNotPayable,
    CardError,
    InvalidRequestError,
    StripeClient,
    StripeError,
    to_stripe_amount,
)

log = structlog.get_logger()

SUBSCRIPTION_EVENT_PREFIX = "customer.subscription."
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed")
# The metadata key of the tax rates that Frontdesk creates, with the plan's id as value.
TAX_RATE_PLAN_KEY = "frontdesk_plan"


class StripeRejected(ProblemError):
    status = 502
    code = "stripe_rejected"
    title = "Stripe rejected the request"


def _problem(error: StripeError, action: str) -> ProblemError:
    """Turn a Stripe error into the problem a staff member can act on."""
    if isinstance(error, CardError):
        return StripeRejected(f"Stripe declined the card while it tried to {action}: {error}")
    if isinstance(error, InvalidRequestError):
        return StripeRejected(f"Stripe rejected the request to {action}: {error}")
    return credentials.StripeUnavailable(
        f"Stripe could not {action}: {error}. Nothing was changed; try again."
    )


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def _update_key(subscription: Subscription, action: str) -> str:
    version = int(subscription.updated_at.timestamp() * 1_000_000)
    return f"{subscription.workspace_id}:{subscription.id}:{action}:{version}:v1"


# --- Objects in Stripe ----------------------------------------------------------------------


async def _customer_id(uow: UnitOfWork, client: StripeClient, contact: Contact) -> str:
    known = await uow.session.get(StripeCustomer, (contact.workspace_id, contact.id))
    if known is not None:
        return known.stripe_customer_id
    params: dict[str, Any] = {
        "metadata": {"contact_id": str(contact.id), "workspace_id": str(contact.workspace_id)}
    }
    if contact.email:
        params["email"] = contact.email
    if contact.name:
        params["name"] = contact.name
    customer = await client.post(
        "/v1/customers",
        params,
        idempotency_key=f"{contact.workspace_id}:{contact.id}:customer:v1",
    )
    uow.session.add(
        StripeCustomer(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            stripe_customer_id=customer["id"],
            created_at=uow.now(),
        )
    )
    return str(customer["id"])


async def _price_id(client: StripeClient, plan: Plan) -> str:
    """Return the plan's Stripe price, creating its product and price on first use."""
    if plan.stripe_price_id:
        return plan.stripe_price_id
    try:
        unit_amount = to_stripe_amount(plan.amount, plan.currency)
    except AmountNotPayable as exc:
        raise ValidationFailed("plan_id", str(exc), "amount_not_payable") from exc
    if not plan.stripe_product_id:
        product = await client.post(
            "/v1/products",
            {"name": plan.name, "metadata": {"plan_id": str(plan.id)}},
            idempotency_key=f"{plan.workspace_id}:{plan.id}:product:v1",
        )
        plan.stripe_product_id = str(product["id"])
    # The price's terms are part of the key: a plan whose terms changed gets a new price.
    terms = f"{plan.amount}-{plan.currency}-{plan.interval}-{plan.interval_count}"
    price = await client.post(
        "/v1/prices",
        {
            "product": plan.stripe_product_id,
            "unit_amount": unit_amount,
            "currency": plan.currency.lower(),
            "recurring": {"interval": plan.interval, "interval_count": plan.interval_count},
            "metadata": {"plan_id": str(plan.id)},
        },
        idempotency_key=f"{plan.workspace_id}:{plan.id}:price:{terms}:v1",
    )
    plan.stripe_price_id = str(price["id"])
    return plan.stripe_price_id


def _same_percentage(value: Any, percentage: Decimal) -> bool:
    try:
        return Decimal(str(value)) == percentage
    except InvalidOperation:
        return False


async def _tax_rate_id(client: StripeClient, plan: Plan) -> str | None:
    """Return the id of the plan's exclusive tax rate, creating the rate if none is active."""
    percentage = Decimal(plan.tax_rate)
    if percentage == 0:
        return None
    # NOTE: plans store no tax rate id, so every new subscription lists the account's active
    # exclusive tax rates (one request per 100) to find the rate whose metadata names the
    # plan. A rate archived in Stripe, or whose metadata was edited, is replaced by a new one.
    rates = await client.list_all("/v1/tax_rates", {"active": True, "inclusive": False})
    for rate in rates:
        metadata = rate.get("metadata") or {}
        if (
            metadata.get(TAX_RATE_PLAN_KEY) == str(plan.id)
            and rate.get("inclusive") is False
            and _same_percentage(rate.get("percentage"), percentage)
        ):
            return str(rate["id"])
    # Stripe cannot change a tax rate's percentage (POST /v1/tax_rates/{id} takes none), so a
    # plan whose percentage changed needs a new rate, and the percentage is part of the key.
    tax_rate = await client.post(
        "/v1/tax_rates",
        {
            "display_name": "Tax",
            "percentage": plan.tax_rate,
            "inclusive": False,
            "metadata": {TAX_RATE_PLAN_KEY: str(plan.id)},
        },
        idempotency_key=f"{plan.workspace_id}:{plan.id}:tax-rate:{plan.tax_rate}:v2",
    )
    return str(tax_rate["id"])


async def create_in_stripe(
    uow: UnitOfWork, subscription: Subscription, plan: Plan, contact: Contact
) -> None:
    """Create the customer (once per contact), the plan's price and the subscription."""
    client = await credentials.client_for(uow, subscription.workspace_id)
    async with client:
        try:
            customer_id = await _customer_id(uow, client, contact)
            price_id = await _price_id(client, plan)
            params: dict[str, Any] = {
                "customer": customer_id,
                "items": [{"price": price_id}],
                # The first invoice waits for a payment instead of failing the request.
                "payment_behavior": "default_incomplete",
                "metadata": {
                    "subscription_id": str(subscription.id),
                    "workspace_id": str(subscription.workspace_id),
                },
            }
            if plan.trial_days:
                params["trial_period_days"] = plan.trial_days
            tax_rate_id = await _tax_rate_id(client, plan)
            if tax_rate_id:
                params["default_tax_rates"] = [tax_rate_id]
            created = await client.post(
                "/v1/subscriptions",
                params,
                idempotency_key=f"{subscription.workspace_id}:{subscription.id}:subscription:v1",
            )
        except StripeError as error:
            raise _problem(error, "create the subscription") from error
    subscription.stripe_subscription_id = str(created["id"])
    mirror(subscription, created, changed_at=int(uow.now().timestamp()))


async def _update(
    uow: UnitOfWork, subscription: Subscription, params: dict[str, Any], action: str
) -> dict[str, Any]:
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    client = await credentials.client_for(uow, subscription.workspace_id)
    async with client:
        try:
            return await client.post(
                path, params, idempotency_key=_update_key(subscription, action)
            )
        except StripeError as error:
            raise _problem(error, action.replace("-", " ") + " the subscription") from error


async def _cancel_now(client: StripeClient, path: str) -> dict[str, Any]:
    """Cancel at once with DELETE and return the canceled subscription.

    Stripe returns 404 ``resource_missing`` to a DELETE of a subscription that is already
    canceled, as after a retry whose first response was lost, or a cancel in the Dashboard.
    The subscription itself can still be read, so a canceled one counts as done.
    """
    try:
        return await client.delete(path)
    except InvalidRequestError as error:
        if error.code != "resource_missing":
            raise
        current = await client.get(path)
        if current.get("status") != "canceled":
            raise
        return current


async def cancel_in_stripe(
    uow: UnitOfWork, subscription: Subscription, *, at_period_end: bool
) -> None:
    if at_period_end:
        updated = await _update(uow, subscription, {"cancel_at_period_end": "true"}, "cancel")
    else:
        client = await credentials.client_for(uow, subscription.workspace_id)
        path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
        async with client:
            try:
                updated = await _cancel_now(client, path)
            except StripeError as error:
                raise _problem(error, "cancel the subscription") from error
    mirror(subscription, updated, changed_at=int(uow.now().timestamp()))


async def pause_in_stripe(uow: UnitOfWork, subscription: Subscription) -> None:
    # "void": invoices of the paused periods are voided, so nothing is owed for them.
    params = {"pause_collection": {"behavior": "void"}}
    updated = await _update(uow, subscription, params, "pause")
    mirror(subscription, updated, changed_at=int(uow.now().timestamp()))


async def resume_in_stripe(uow: UnitOfWork, subscription: Subscription) -> None:
    # An empty value unsets pause_collection in Stripe's form encoding.
    params = {"pause_collection": "", "cancel_at_period_end": "false"}
    updated = await _update(uow, subscription, params, "resume")
    mirror(subscription, updated, changed_at=int(uow.now().timestamp()))


async def change_plan_in_stripe(
    uow: UnitOfWork, subscription: Subscription, plan: Plan, *, proration: bool
) -> None:
    client = await credentials.client_for(uow, subscription.workspace_id)
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    async with client:
        try:
            current = await client.get(path)
            items = (current.get("items") or {}).get("data") or []
            if not items:
                raise ValidationFailed(
                    "plan_id", "The Stripe subscription has no item to change.", "no_item"
                )
            price_id = await _price_id(client, plan)
            updated = await client.post(
                path,
                {
                    "items": [{"id": items[0]["id"], "price": price_id}],
                    "proration_behavior": "create_prorations" if proration else "none",
                },
                idempotency_key=_update_key(subscription, f"plan-{plan.id}"),
            )
        except StripeError as error:
            raise _problem(error, "change the plan of the subscription") from error
    mirror(subscription, updated, changed_at=int(uow.now().timestamp()))


# --- Our copy -------------------------------------------------------------------------------


def _period(obj: dict[str, Any], name: str) -> datetime | None:
    """Read current_period_start or _end: on the subscription before API version 2025-03-31,
    on its items since."""
    value = _timestamp(obj.get(name))
    if value is not None:
        return value
    items = (obj.get("items") or {}).get("data") or []
    for item in items:
        value = _timestamp(item.get(name))
        if value is not None:
            return value
    return None


def mirror(subscription: Subscription, obj: dict[str, Any], *, changed_at: int) -> list[str]:
    """Copy a Stripe subscription object onto ours and return the names of the changed fields."""
    before = service.subscription_dict(subscription)
    status = obj.get("status")
    if status in service.STATUSES:
        subscription.status = status
    else:
        log.warning("stripe.subscription_status_unknown", status=status)
    subscription.current_period_start = _period(obj, "current_period_start")
    subscription.current_period_end = _period(obj, "current_period_end")
    subscription.trial_end = _timestamp(obj.get("trial_end"))
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    subscription.canceled_at = _timestamp(obj.get("canceled_at")) or (
        _timestamp(obj.get("ended_at")) if subscription.status == "canceled" else None
    )
    changed = datetime.fromtimestamp(changed_at, tz=UTC)
    if obj.get("pause_collection") or subscription.status == "paused":
        subscription.paused_at = subscription.paused_at or changed
    else:
        subscription.paused_at = None
    if subscription.status in ("past_due", "unpaid"):
        subscription.past_due_since = subscription.past_due_since or changed
    else:
        subscription.past_due_since = None
        subscription.dunning_emails_sent = 0
    subscription.stripe_updated = max(subscription.stripe_updated or 0, changed_at)
    after = service.subscription_dict(subscription)
    return [name for name in after if name != "updated_at" and after[name] != before[name]]


async def _find(
    uow: UnitOfWork, workspace_id: uuid.UUID, stripe_id: str | None, metadata: Any
) -> Subscription | None:
    if stripe_id:
        found = await uow.session.scalar(
            sa.select(Subscription)
            .where(
                Subscription.workspace_id == workspace_id,
                Subscription.stripe_subscription_id == stripe_id,
            )
            .with_for_update()
        )
        if found is not None:
            return found
    # A webhook may arrive before the create request's response, so the metadata names our row.
    ours = metadata.get("subscription_id") if isinstance(metadata, dict) else None
    try:
        our_id = uuid.UUID(str(ours)) if ours else None
    except ValueError:
        return None
    if our_id is None:
        return None
    found = await uow.session.scalar(
        sa.select(Subscription)
        .where(
            Subscription.id == our_id,
            Subscription.workspace_id == workspace_id,
            Subscription.gateway == "stripe",
        )
        .with_for_update()
    )
    if found is not None and found.stripe_subscription_id is None and stripe_id:
        found.stripe_subscription_id = stripe_id
    return found


def _invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The subscription of an invoice: ``subscription`` before API version 2025-03-31,
    ``parent.subscription_details.subscription`` since."""
    value = invoice.get("subscription")
    if value is None:
        parent = invoice.get("parent") or {}
        value = (parent.get("subscription_details") or {}).get("subscription")
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _is_stale(subscription: Subscription, created: int) -> bool:
    return subscription.stripe_updated is not None and created < subscription.stripe_updated


async def apply_event(uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Apply one subscription or invoice event; other and unknown objects are logged and skipped."""
    event_type = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    created = int(event.get("created") or 0)
    if event_type.startswith(SUBSCRIPTION_EVENT_PREFIX):
        stripe_id = obj.get("id")
        metadata = obj.get("metadata")
    elif event_type in INVOICE_EVENTS:
        stripe_id = _invoice_subscription_id(obj)
        if stripe_id is None:
            return
        metadata = ((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata")
    else:
        return
    subscription = await _find(uow, workspace_id, stripe_id, metadata)
    if subscription is None:
        log.info("stripe.subscription_unknown", event_id=event.get("id"), type=event_type)
        return
    if _is_stale(subscription, created):
        log.info(
            "stripe.subscription_event_stale",
            event_id=event.get("id"),
            subscription_id=str(subscription.id),
        )
        return
    extra = {"stripe_event_id": event.get("id"), "stripe_event_type": event_type}
    if event_type.startswith(SUBSCRIPTION_EVENT_PREFIX):
        await _apply_subscription_object(uow, subscription, obj, created, extra)
    else:
        _apply_invoice_event(uow, subscription, event_type, obj, created, extra)


async def _apply_subscription_object(
    uow: UnitOfWork,
    subscription: Subscription,
    obj: dict[str, Any],
    created: int,
    extra: dict[str, Any],
) -> None:
    previous_status = subscription.status
    changed = mirror(subscription, obj, changed_at=created)
    items = (obj.get("items") or {}).get("data") or []
    price_id = ((items[0].get("price") or {}).get("id")) if items else None
    if price_id:
        plan_id = await uow.session.scalar(
            sa.select(Plan.id).where(
                Plan.workspace_id == subscription.workspace_id, Plan.stripe_price_id == price_id
            )
        )
        if plan_id is not None and plan_id != subscription.plan_id:
            subscription.plan_id = plan_id
            changed.append("plan_id")
    if not changed:
        return
    name = "updated"
    if subscription.status != previous_status:
        name = {"canceled": "canceled", "past_due": "past_due", "paused": "paused"}.get(
            subscription.status, "updated"
        )
    service.record(uow, subscription, name, changed=changed, **extra)


def _apply_invoice_event(
    uow: UnitOfWork,
    subscription: Subscription,
    event_type: str,
    invoice: dict[str, Any],
    created: int,
    extra: dict[str, Any],
) -> None:
    moment = datetime.fromtimestamp(created, tz=UTC)
    extra["stripe_invoice_id"] = invoice.get("id")
    if event_type == "invoice.paid":
        if subscription.status in ("past_due", "unpaid", "incomplete"):
            subscription.status = "active"
            subscription.past_due_since = None
            subscription.dunning_emails_sent = 0
            subscription.stripe_updated = created
            service.record(uow, subscription, "recovered", **extra)
        return
    # invoice.payment_failed: a renewal that failed makes the subscription past due. The
    # first invoice of a new subscription leaves it incomplete, as in Stripe.
    if invoice.get("billing_reason") == "subscription_create":
        return
    if subscription.status in ("active", "trialing"):
        subscription.status = "past_due"
        subscription.past_due_since = subscription.past_due_since or moment
        subscription.stripe_updated = created
        service.record(uow, subscription, "past_due", **extra)
