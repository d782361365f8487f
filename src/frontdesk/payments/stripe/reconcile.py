"""Compare a workspace's Stripe objects with our records and list the differences.

Stripe is the source of truth for money; a missed or failed webhook leaves our records behind.
The report lists payment intents, refunds and subscriptions whose status or amount differs,
and objects that exist on one side only. It changes nothing: a person decides, and webhooks
Stripe resends (or ``stripe events resend``) bring the records up to date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from frontdesk.config import Settings
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.payments.models import Payment, Refund, Subscription
from frontdesk.payments.stripe.client import StripeClient, from_stripe_amount
from frontdesk.payments.stripe.credentials import client_for

# Our payment statuses that agree with each PaymentIntent status.
INTENT_STATUS_MATCHES: dict[str, frozenset[str]] = {
    "succeeded": frozenset(
        {"succeeded", "partially_refunded", "refunded", "disputed", "dispute_lost"}
    ),
    "processing": frozenset({"processing"}),
    "canceled": frozenset({"canceled", "failed"}),
    "requires_payment_method": frozenset({"pending", "failed"}),
    "requires_confirmation": frozenset({"pending"}),
    "requires_action": frozenset({"pending"}),
    "requires_capture": frozenset({"pending", "processing"}),
}


@dataclass(frozen=True)
class Difference:
    kind: str
    stripe_id: str | None
    local_id: str | None
    detail: str


@dataclass
class ReconcileReport:
    payment_intents: int = 0
    refunds: int = 0
    subscriptions: int = 0
    differences: list[Difference] = field(default_factory=list)


def _created_filter(since: date | None) -> dict[str, Any]:
    if since is None:
        return {}
    start = int(datetime.combine(since, datetime.min.time(), tzinfo=UTC).timestamp())
    return {"created": {"gte": start}}


async def _check_payment_intents(
    uow: UnitOfWork,
    client: StripeClient,
    workspace_id: uuid.UUID,
    since: date | None,
    report: ReconcileReport,
) -> None:
    intents = await client.list_all("/v1/payment_intents", _created_filter(since))
    report.payment_intents = len(intents)
    rows = await uow.session.scalars(
        sa.select(Payment).where(
            Payment.workspace_id == workspace_id, Payment.stripe_payment_intent_id.is_not(None)
        )
    )
    local = {payment.stripe_payment_intent_id: payment for payment in rows}
    for intent in intents:
        payment = local.pop(intent["id"], None)
        status = str(intent.get("status"))
        if payment is None:
            if status in ("succeeded", "processing"):
                report.differences.append(
                    Difference(
                        "payment_missing",
                        intent["id"],
                        None,
                        f"Stripe has a {status} payment intent that no payment records.",
                    )
                )
            continue
        if payment.status not in INTENT_STATUS_MATCHES.get(status, frozenset({payment.status})):
            report.differences.append(
                Difference(
                    "payment_status",
                    intent["id"],
                    str(payment.id),
                    f"Stripe says {status}; our payment is {payment.status}.",
                )
            )
        if status == "succeeded":
            received = from_stripe_amount(int(intent.get("amount_received") or 0), payment.currency)
            if received != payment.amount:
                report.differences.append(
                    Difference(
                        "payment_amount",
                        intent["id"],
                        str(payment.id),
                        f"Stripe received {received}; our payment is {payment.amount} "
                        f"({payment.currency} minor units).",
                    )
                )
    cutoff = _cutoff(since)
    for intent_id, payment in local.items():
        if cutoff is None or payment.created_at.replace(tzinfo=UTC) >= cutoff:
            report.differences.append(
                Difference(
                    "payment_intent_missing",
                    intent_id,
                    str(payment.id),
                    "Our payment names a payment intent that Stripe did not list.",
                )
            )


def _cutoff(since: date | None) -> datetime | None:
    if since is None:
        return None
    return datetime.combine(since, datetime.min.time(), tzinfo=UTC)


async def _check_refunds(
    uow: UnitOfWork,
    client: StripeClient,
    workspace_id: uuid.UUID,
    since: date | None,
    report: ReconcileReport,
) -> None:
    refunds = await client.list_all("/v1/refunds", _created_filter(since))
    report.refunds = len(refunds)
    rows = await uow.session.execute(
        sa.select(Refund, Payment.currency)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.workspace_id == workspace_id, Refund.stripe_refund_id.is_not(None))
    )
    local = {refund.stripe_refund_id: (refund, currency) for refund, currency in rows}
    for obj in refunds:
        found = local.pop(obj["id"], None)
        if found is None:
            report.differences.append(
                Difference("refund_missing", obj["id"], None, "Stripe has a refund that we do not.")
            )
            continue
        refund, currency = found
        if obj.get("status") != refund.status:
            report.differences.append(
                Difference(
                    "refund_status",
                    obj["id"],
                    str(refund.id),
                    f"Stripe says {obj.get('status')}; our refund is {refund.status}.",
                )
            )
        amount = from_stripe_amount(int(obj.get("amount") or 0), currency)
        if amount != refund.amount:
            report.differences.append(
                Difference(
                    "refund_amount",
                    obj["id"],
                    str(refund.id),
                    f"Stripe refunded {amount}; our refund is {refund.amount}.",
                )
            )


async def _check_subscriptions(
    uow: UnitOfWork,
    client: StripeClient,
    workspace_id: uuid.UUID,
    since: date | None,
    report: ReconcileReport,
) -> None:
    # status=all includes canceled subscriptions, which the list leaves out by default.
    subscriptions = await client.list_all(
        "/v1/subscriptions", {"status": "all", **_created_filter(since)}
    )
    report.subscriptions = len(subscriptions)
    rows = await uow.session.scalars(
        sa.select(Subscription).where(
            Subscription.workspace_id == workspace_id,
            Subscription.stripe_subscription_id.is_not(None),
        )
    )
    local = {subscription.stripe_subscription_id: subscription for subscription in rows}
    for obj in subscriptions:
        subscription = local.pop(obj["id"], None)
        if subscription is None:
            report.differences.append(
                Difference(
                    "subscription_missing",
                    obj["id"],
                    None,
                    "Stripe has a subscription that we do not.",
                )
            )
        elif obj.get("status") != subscription.status:
            report.differences.append(
                Difference(
                    "subscription_status",
                    obj["id"],
                    str(subscription.id),
                    f"Stripe says {obj.get('status')}; ours is {subscription.status}.",
                )
            )


async def reconcile(
    uow: UnitOfWork, workspace_id: uuid.UUID, *, since: date | None = None
) -> ReconcileReport:
    """List Stripe's objects created since ``since`` (all without it) and compare them."""
    report = ReconcileReport()
    client = await client_for(uow, workspace_id)
    async with client:
        await _check_payment_intents(uow, client, workspace_id, since, report)
        await _check_refunds(uow, client, workspace_id, since, report)
        await _check_subscriptions(uow, client, workspace_id, since, report)
    return report


async def run_reconcile(
    settings: Settings, workspace_id: uuid.UUID, *, since: date | None
) -> ReconcileReport:
    """Build a runtime from the settings and reconcile one workspace, read-only."""
    # Every model must be loaded: the type of a foreign-key column such as
    # stripe_accounts.workspace_id comes from the table it references.
    import frontdesk.models  # noqa: F401
    from frontdesk.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        async with unit_of_work(runtime) as uow:
            return await reconcile(uow, workspace_id, since=since)
    finally:
        await runtime.close()


def format_report(report: ReconcileReport) -> str:
    lines = [
        f"{difference.kind}: stripe {difference.stripe_id or '-'}, "
        f"ours {difference.local_id or '-'}: {difference.detail}"
        for difference in report.differences
    ]
    lines.append(
        f"Compared {report.payment_intents} payment intents, {report.refunds} refunds and "
        f"{report.subscriptions} subscriptions: {len(report.differences)} differences."
    )
    return "\n".join(lines)
