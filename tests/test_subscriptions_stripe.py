"""Stripe subscriptions: webhook mirroring of every status, event order, API versions.

Subscription objects come from tests/fixtures/corpus/stripe (dj-stripe's 2019 test objects, whose
current_period_* sit on the subscription as before API version 2025-03-31; the newer shape
moves them onto the items). Events are signed and delivered to the webhook endpoint like
Stripe does, then applied by the event job.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.models import Plan, StripeCustomer, Subscription
from frontdesk.payments.subscriptions import STATUSES, apply_stripe_subscription_event
from frontdesk.runtime import Runtime
from stripe_server import FakeStripe, StripeWorkspace, connect_workspace, serve_fake_stripe, signed

# The four subscription objects of the third-party corpus, with its README and licence.
FIXTURES = Path(__file__).parent / "fixtures" / "corpus" / "stripe"
START = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with serve_fake_stripe() as fake:
        yield fake


@pytest.fixture
def settings_overrides(fake_stripe: FakeStripe) -> dict[str, Any]:
    return {"stripe_api_base": fake_stripe.url, "stripe_max_retries": 0}


@pytest.fixture
async def workspace(client: httpx.AsyncClient, fake_stripe: FakeStripe) -> StripeWorkspace:
    return await connect_workspace(client, fake_stripe)


def corpus_subscription(number: int) -> dict[str, Any]:
    path = FIXTURES / f"subscription_sub_fakefakefakefakefake000{number}.json"
    obj: dict[str, Any] = json.loads(path.read_text())
    return obj


def new_version(obj: dict[str, Any]) -> dict[str, Any]:
    """Move current_period_* from the subscription onto its items, as API 2025-03-31 does."""
    moved = copy.deepcopy(obj)
    start = moved.pop("current_period_start")
    end = moved.pop("current_period_end")
    for item in moved["items"]["data"]:
        item["current_period_start"] = start
        item["current_period_end"] = end
    return moved


def event(event_type: str, obj: dict[str, Any], created: int, version: str) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": version,
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": copy.deepcopy(obj)},
    }


async def deliver(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    payload: dict[str, Any],
    clock: FrozenClock,
) -> None:
    body, headers = signed(
        payload, [workspace.webhook_secret], timestamp=int(clock.now().timestamp())
    )
    response = await client.post(workspace.webhook_path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    await run_jobs(runtime)


async def mirrored(
    runtime: Runtime, workspace_id: uuid.UUID, stripe_id: str | None, **values: Any
) -> uuid.UUID:
    """Insert a plan and a Stripe subscription row of ours for ``stripe_id``."""
    now = START
    async with runtime.sessionmaker() as session:
        plan = Plan(
            workspace_id=workspace_id,
            name="Gold",
            amount=2000,
            currency="USD",
            interval="month",
            interval_count=1,
            trial_days=0,
            tax_rate="0",
            active=True,
            stripe_price_id="gold21323",
            created_at=now,
            updated_at=now,
        )
        session.add(plan)
        await session.flush()
        subscription = Subscription(
            workspace_id=workspace_id,
            plan_id=plan.id,
            gateway="stripe",
            status=values.pop("status", "incomplete"),
            cancel_at_period_end=False,
            dunning_emails_sent=0,
            stripe_subscription_id=stripe_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(subscription)
        await session.commit()
        return subscription.id


async def load(runtime: Runtime, subscription_id: uuid.UUID) -> Subscription:
    async with runtime.sessionmaker() as session:
        subscription = await session.get(Subscription, subscription_id)
        assert subscription is not None
        return subscription


async def test_corpus_object_mirrored_old_and_new_versions(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    obj = corpus_subscription(1)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"])

    await deliver(
        client,
        runtime,
        workspace,
        event("customer.subscription.created", obj, 1557995200, "2019-05-16"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "active"
    assert copied.current_period_start == datetime.fromtimestamp(1557995176, tz=UTC)
    assert copied.current_period_end == datetime.fromtimestamp(1560673576, tz=UTC)
    assert copied.stripe_updated == 1557995200

    renewed = new_version(obj)
    for item in renewed["items"]["data"]:
        item["current_period_start"] = 1560673576
        item["current_period_end"] = 1563265576
    await deliver(
        client,
        runtime,
        workspace,
        event("customer.subscription.updated", renewed, 1560673600, "2025-03-31.basil"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.current_period_start == datetime.fromtimestamp(1560673576, tz=UTC)
    assert copied.current_period_end == datetime.fromtimestamp(1563265576, tz=UTC)


async def test_every_status_mirrored(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    obj = corpus_subscription(2)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"])
    created = 1557995300
    for status in STATUSES:
        created += 10
        changed = {**obj, "status": status}
        if status == "canceled":
            changed["canceled_at"] = created
        await deliver(
            client,
            runtime,
            workspace,
            event("customer.subscription.updated", changed, created, "2019-05-16"),
            clock,
        )
        copied = await load(runtime, subscription_id)
        assert copied.status == status
        if status in ("past_due", "unpaid"):
            assert copied.past_due_since is not None
        else:
            assert copied.past_due_since is None
        if status == "paused":
            assert copied.paused_at is not None


async def test_older_event_changes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    obj = corpus_subscription(3)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"])
    canceled = {**obj, "status": "canceled", "canceled_at": 1557999000}
    await deliver(
        client,
        runtime,
        workspace,
        event("customer.subscription.deleted", canceled, 1557999000, "2019-05-16"),
        clock,
    )
    # An update created before the cancellation arrives late.
    await deliver(
        client,
        runtime,
        workspace,
        event("customer.subscription.updated", obj, 1557998000, "2019-05-16"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "canceled"
    assert copied.canceled_at == datetime.fromtimestamp(1557999000, tz=UTC)
    assert copied.stripe_updated == 1557999000

    async with runtime.sessionmaker() as session:
        names = list(
            await session.scalars(
                sa.select(Event.name).where(
                    Event.workspace_id == workspace.workspace_id,
                    Event.name.like("subscription.%"),
                )
            )
        )
    assert names == ["subscription.canceled"]


async def test_invoice_events_past_due_and_paid(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    obj = corpus_subscription(4)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"], status="active")
    # Before API 2025-03-31 an invoice names its subscription in "subscription".
    failed = {
        "id": "in_failed",
        "object": "invoice",
        "billing_reason": "subscription_cycle",
        "subscription": obj["id"],
        "status": "open",
    }
    await deliver(
        client,
        runtime,
        workspace,
        event("invoice.payment_failed", failed, 1600000000, "2020-08-27"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "past_due"
    assert copied.past_due_since == datetime.fromtimestamp(1600000000, tz=UTC)

    # Since 2025-03-31 it is under parent.subscription_details.
    paid = {
        "id": "in_failed",
        "object": "invoice",
        "billing_reason": "subscription_cycle",
        "status": "paid",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": obj["id"], "metadata": {}},
        },
    }
    await deliver(
        client,
        runtime,
        workspace,
        event("invoice.paid", paid, 1600000500, "2025-03-31.basil"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "active"
    assert copied.past_due_since is None


async def test_first_invoice_failure_leaves_incomplete(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    staff = await owner(client)
    obj = corpus_subscription(1)
    subscription_id = await mirrored(runtime, staff.workspace_id, obj["id"])
    failed = {"id": "in_x", "billing_reason": "subscription_create", "subscription": obj["id"]}
    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            staff.workspace_id,
            event("invoice.payment_failed", failed, 1600000000, "2020-08-27"),
        )
    assert (await load(runtime, subscription_id)).status == "incomplete"


async def test_found_by_metadata_and_workspace(runtime: Runtime, client: httpx.AsyncClient) -> None:
    ours = await owner(client)
    theirs = await owner(client)
    obj = corpus_subscription(2)
    subscription_id = await mirrored(runtime, ours.workspace_id, None)
    linked = {**obj, "metadata": {"subscription_id": str(subscription_id)}}

    # Another workspace's event does not touch our row.
    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            theirs.workspace_id,
            event("customer.subscription.updated", linked, 1557995300, "2019-05-16"),
        )
    assert (await load(runtime, subscription_id)).status == "incomplete"

    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            ours.workspace_id,
            event("customer.subscription.updated", linked, 1557995300, "2019-05-16"),
        )
    copied = await load(runtime, subscription_id)
    assert copied.status == "active"
    assert copied.stripe_subscription_id == obj["id"]


async def test_unknown_subscription_ignored(runtime: Runtime, client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            staff.workspace_id,
            event(
                "customer.subscription.updated", corpus_subscription(1), 1557995300, "2019-05-16"
            ),
        )
    async with runtime.sessionmaker() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(Subscription))
    assert count == 0


async def _contact_and_plan(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    enquiry = await client.post(
        "/api/v1/enquiries",
        headers=headers,
        json={"message": "Hi", "contact": {"name": "Ada", "email": "ada@example.org"}},
    )
    assert enquiry.status_code == 201, enquiry.text
    plan = await client.post(
        "/api/v1/plans",
        headers=headers,
        json={"name": "Gold", "amount": 2000, "currency": "USD", "interval": "month"},
    )
    assert plan.status_code == 201, plan.text
    return str(enquiry.json()["contact"]["id"]), str(plan.json()["id"])


async def test_stripe_without_keys_is_409(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    contact_id, plan_id = await _contact_and_plan(client, staff.headers)
    response = await client.post(
        "/api/v1/subscriptions",
        headers=staff.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "stripe_not_configured"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0


async def test_stripe_failure_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, workspace: StripeWorkspace, fake_stripe: FakeStripe
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    fake_stripe.fail_next(
        "/v1/customers",
        400,
        {"type": "invalid_request_error", "message": "Invalid email address: ada@example.org"},
    )
    response = await client.post(
        "/api/v1/subscriptions",
        headers=workspace.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "stripe_rejected"
    posted = fake_stripe.posts("/v1/customers")
    assert len(posted) == 1
    assert posted[0].idempotency_key == f"{workspace.workspace_id}:{contact_id}:customer:v1"
    assert posted[0].params["metadata"]["contact_id"] == contact_id
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0
        assert await session.scalar(sa.select(sa.func.count()).select_from(StripeCustomer)) == 0
