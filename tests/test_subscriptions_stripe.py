"""Stripe subscriptions: webhook mirroring of every status, event order, API versions, and
the requests that create and change subscriptions, against the fake in tests/stripe_server.py.

Subscription objects of the webhook tests come from tests/fixtures/corpus/stripe (dj-stripe's
2019 test objects, whose current_period_* sit on the subscription as before API version
2025-03-31; the newer shape moves them onto the items). Events are signed and delivered to
the webhook endpoint like Stripe does, then applied by the event job.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import owner
from frontdesk.core.clock import FrozenClock, iso_utc
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.models import Plan, StripeCustomer, Subscription
from frontdesk.payments.subscriptions import STATUSES, apply_stripe_subscription_event
from frontdesk.runtime import Runtime
from stripe_server import (
    FakeStripe,
    StripeWorkspace,
    connect_workspace,
    serve_fake_stripe,
    signed,
)

# The four subscription objects of the third-party corpus, with its README and licence.
FIXTURES = Path(__file__).parent / "fixtures" / "corpus" / "stripe"
START = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def fake_stripe(clock: FrozenClock) -> AsyncIterator[FakeStripe]:
    async with serve_fake_stripe() as fake:
        fake.clock = clock
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


async def deliver(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    payload: dict[str, Any],
    clock: FrozenClock,
) -> None:
    """Sign ``payload`` with the workspace's webhook secret, post it and run the jobs."""
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


async def test_corpus_object_both_versions(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workspace: StripeWorkspace,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
) -> None:
    obj = corpus_subscription(1)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"])

    await deliver(
        client,
        runtime,
        workspace,
        fake_stripe.event(
            "customer.subscription.created", obj, created=1557995200, api_version="2019-05-16"
        ),
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
        fake_stripe.event(
            "customer.subscription.updated",
            renewed,
            created=1560673600,
            api_version="2025-03-31.basil",
        ),
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
    fake_stripe: FakeStripe,
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
            fake_stripe.event(
                "customer.subscription.updated", changed, created=created, api_version="2019-05-16"
            ),
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
    fake_stripe: FakeStripe,
) -> None:
    obj = corpus_subscription(3)
    subscription_id = await mirrored(runtime, workspace.workspace_id, obj["id"])
    canceled = {**obj, "status": "canceled", "canceled_at": 1557999000}
    await deliver(
        client,
        runtime,
        workspace,
        fake_stripe.event(
            "customer.subscription.deleted", canceled, created=1557999000, api_version="2019-05-16"
        ),
        clock,
    )
    # An update created before the cancellation arrives late.
    await deliver(
        client,
        runtime,
        workspace,
        fake_stripe.event(
            "customer.subscription.updated", obj, created=1557998000, api_version="2019-05-16"
        ),
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
    fake_stripe: FakeStripe,
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
        fake_stripe.event(
            "invoice.payment_failed", failed, created=1600000000, api_version="2020-08-27"
        ),
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
        fake_stripe.event("invoice.paid", paid, created=1600000500, api_version="2025-03-31.basil"),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "active"
    assert copied.past_due_since is None


async def test_first_invoice_failure_leaves_incomplete(
    runtime: Runtime, client: httpx.AsyncClient, fake_stripe: FakeStripe
) -> None:
    staff = await owner(client)
    obj = corpus_subscription(1)
    subscription_id = await mirrored(runtime, staff.workspace_id, obj["id"])
    failed = {"id": "in_x", "billing_reason": "subscription_create", "subscription": obj["id"]}
    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            staff.workspace_id,
            fake_stripe.event(
                "invoice.payment_failed", failed, created=1600000000, api_version="2020-08-27"
            ),
        )
    assert (await load(runtime, subscription_id)).status == "incomplete"


async def test_found_by_metadata_and_workspace(
    runtime: Runtime, client: httpx.AsyncClient, fake_stripe: FakeStripe
) -> None:
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
            fake_stripe.event(
                "customer.subscription.updated",
                linked,
                created=1557995300,
                api_version="2019-05-16",
            ),
        )
    assert (await load(runtime, subscription_id)).status == "incomplete"

    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            ours.workspace_id,
            fake_stripe.event(
                "customer.subscription.updated",
                linked,
                created=1557995300,
                api_version="2019-05-16",
            ),
        )
    copied = await load(runtime, subscription_id)
    assert copied.status == "active"
    assert copied.stripe_subscription_id == obj["id"]


async def test_unknown_subscription_ignored(
    runtime: Runtime, client: httpx.AsyncClient, fake_stripe: FakeStripe
) -> None:
    staff = await owner(client)
    async with unit_of_work(runtime) as uow:
        await apply_stripe_subscription_event(
            uow,
            staff.workspace_id,
            fake_stripe.event(
                "customer.subscription.updated",
                corpus_subscription(1),
                created=1557995300,
                api_version="2019-05-16",
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


# --- Requests to Stripe ---------------------------------------------------------------------


async def _subscribe(
    client: httpx.AsyncClient, workspace: StripeWorkspace, contact_id: str, plan_id: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/subscriptions",
        headers=workspace.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _taxed_plan(client: httpx.AsyncClient, workspace: StripeWorkspace) -> tuple[str, str]:
    """Create a contact and a plan with 20 % tax, and return their ids."""
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    patched = await client.patch(
        f"/api/v1/plans/{plan_id}", headers=workspace.headers, json={"tax_rate": "20"}
    )
    assert patched.status_code == 200, patched.text
    return contact_id, plan_id


async def test_create_in_stripe_with_our_keys(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    patched = await client.patch(
        f"/api/v1/plans/{plan_id}",
        headers=workspace.headers,
        json={"tax_rate": "20", "trial_days": 14},
    )
    assert patched.status_code == 200
    created = await _subscribe(client, workspace, contact_id, plan_id)
    trial_end = datetime.fromtimestamp(int(START.timestamp()) + 14 * 86400, tz=UTC)
    assert created["status"] == "trialing"
    assert created["stripe_subscription_id"].startswith("sub_")
    assert created["trial_end"] == iso_utc(trial_end)
    assert created["current_period_start"] == iso_utc(START)
    # Stripe's first period of a trialing subscription ends with the trial.
    assert created["current_period_end"] == iso_utc(trial_end)

    ws = workspace.workspace_id
    [customer] = fake_stripe.posts("/v1/customers")
    assert customer.idempotency_key == f"{ws}:{contact_id}:customer:v1"
    assert customer.params["email"] == "ada@example.org"
    [price] = fake_stripe.posts("/v1/prices")
    assert price.params["unit_amount"] == "2000"
    assert price.params["currency"] == "usd"
    assert price.params["recurring"] == {"interval": "month", "interval_count": "1"}
    [tax_rate] = fake_stripe.posts("/v1/tax_rates")
    assert tax_rate.params["percentage"] == "20"
    assert tax_rate.params["inclusive"] == "false"
    assert tax_rate.params["metadata"] == {"frontdesk_plan": plan_id}
    [tax_rate_object] = fake_stripe.created("txr")
    [subscription] = fake_stripe.posts("/v1/subscriptions")
    assert subscription.idempotency_key == f"{ws}:{created['id']}:subscription:v1"
    assert subscription.params["trial_period_days"] == "14"
    assert subscription.params["payment_behavior"] == "default_incomplete"
    assert subscription.params["metadata"]["subscription_id"] == created["id"]
    assert subscription.params["items"][0]["price"] == fake_stripe.created("price")[0]["id"]
    assert subscription.params["default_tax_rates"] == [tax_rate_object["id"]]

    in_stripe = fake_stripe.objects[created["stripe_subscription_id"]]
    assert in_stripe["customer"] == fake_stripe.created("cus")[0]["id"]
    assert in_stripe["default_tax_rates"][0]["id"] == tax_rate_object["id"]
    assert in_stripe["items"]["data"][0]["price"]["unit_amount"] == 2000

    # A second subscription of the contact reuses the customer, the plan's price and the
    # tax rate, which it finds in the list of the account's tax rates.
    again = await _subscribe(client, workspace, contact_id, plan_id)
    assert len(fake_stripe.posts("/v1/customers")) == 1
    assert len(fake_stripe.posts("/v1/prices")) == 1
    assert len(fake_stripe.posts("/v1/tax_rates")) == 1
    assert len(fake_stripe.sent("GET", "/v1/tax_rates")) == 2
    assert len(fake_stripe.posts("/v1/subscriptions")) == 2
    assert fake_stripe.posts("/v1/subscriptions")[1].params["default_tax_rates"] == [
        tax_rate_object["id"]
    ]
    assert again["stripe_subscription_id"] != created["stripe_subscription_id"]
    async with runtime.sessionmaker() as session:
        plan = await session.get(Plan, uuid.UUID(plan_id))
        assert plan is not None
        assert plan.stripe_price_id == fake_stripe.created("price")[0]["id"]
        assert plan.stripe_product_id == fake_stripe.created("prod")[0]["id"]


async def test_tax_rate_reused_after_keys_expire(
    client: httpx.AsyncClient, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    contact_id, plan_id = await _taxed_plan(client, workspace)
    first = await _subscribe(client, workspace, contact_id, plan_id)
    # Stripe prunes idempotency keys after 24 hours, and the list still finds the rate.
    fake_stripe.idempotency.clear()
    second = await _subscribe(client, workspace, contact_id, plan_id)

    [tax_rate] = fake_stripe.created("txr")
    for created in (first, second):
        in_stripe = fake_stripe.objects[created["stripe_subscription_id"]]
        assert [rate["id"] for rate in in_stripe["default_tax_rates"]] == [tax_rate["id"]]
    assert len(fake_stripe.posts("/v1/tax_rates")) == 1


async def test_tax_rate_found_on_later_page(
    client: httpx.AsyncClient,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    contact_id, plan_id = await _taxed_plan(client, workspace)
    ours = fake_stripe.create_tax_rate(
        {
            "display_name": "Tax",
            "percentage": "20",
            "inclusive": "false",
            "metadata": {"frontdesk_plan": plan_id},
        }
    )
    # A full page of newer rates comes first, because Stripe lists the newest first.
    clock.advance(seconds=1)
    for number in range(100):
        fake_stripe.create_tax_rate(
            {"display_name": f"VAT {number}", "percentage": "20", "inclusive": "false"}
        )

    created = await _subscribe(client, workspace, contact_id, plan_id)

    in_stripe = fake_stripe.objects[created["stripe_subscription_id"]]
    assert [rate["id"] for rate in in_stripe["default_tax_rates"]] == [ours["id"]]
    assert fake_stripe.posts("/v1/tax_rates") == []
    pages = fake_stripe.sent("GET", "/v1/tax_rates")
    assert len(pages) == 2
    assert pages[0].params == {"active": "true", "inclusive": "false", "limit": "100"}
    assert "starting_after" in pages[1].params


async def test_tax_rate_skips_foreign_rates(
    client: httpx.AsyncClient, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    contact_id, plan_id = await _taxed_plan(client, workspace)
    marker = {"frontdesk_plan": plan_id}
    rate = {"display_name": "Tax", "percentage": "20", "inclusive": "false"}
    skipped = [
        # Made by someone else, without our metadata.
        fake_stripe.create_tax_rate(rate),
        # Ours, but archived in the Dashboard.
        fake_stripe.create_tax_rate({**rate, "metadata": marker, "active": "false"}),
        # Tax included in the price.
        fake_stripe.create_tax_rate({**rate, "metadata": marker, "inclusive": "true"}),
        # Another plan's rate.
        fake_stripe.create_tax_rate({**rate, "metadata": {"frontdesk_plan": str(uuid.uuid4())}}),
        # Another percentage.
        fake_stripe.create_tax_rate({**rate, "percentage": "19", "metadata": marker}),
    ]

    created = await _subscribe(client, workspace, contact_id, plan_id)

    [post] = fake_stripe.posts("/v1/tax_rates")
    new_rate = fake_stripe.created("txr")[-1]
    assert new_rate["id"] not in {rate["id"] for rate in skipped}
    assert new_rate["metadata"] == marker
    assert post.params["metadata"] == marker
    in_stripe = fake_stripe.objects[created["stripe_subscription_id"]]
    assert [rate["id"] for rate in in_stripe["default_tax_rates"]] == [new_rate["id"]]


async def test_changes_sent_to_stripe(
    client: httpx.AsyncClient,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    body = await _subscribe(client, workspace, contact_id, plan_id)
    assert body["status"] == "incomplete"
    path = f"/api/v1/subscriptions/{body['id']}"
    stripe_path = f"/v1/subscriptions/{body['stripe_subscription_id']}"
    in_stripe = fake_stripe.objects[body["stripe_subscription_id"]]
    [item] = in_stripe["items"]["data"]

    clock.advance(seconds=5)
    paused = await client.post(f"{path}/pause", headers=workspace.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused_at"] is not None
    assert fake_stripe.posts(stripe_path)[-1].params == {"pause_collection": {"behavior": "void"}}
    assert in_stripe["pause_collection"] == {"behavior": "void", "resumes_at": None}

    clock.advance(seconds=5)
    resumed = await client.post(f"{path}/resume", headers=workspace.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused_at"] is None
    assert fake_stripe.posts(stripe_path)[-1].params["pause_collection"] == ""
    assert in_stripe["pause_collection"] is None

    # Pausing again is a new operation with a new idempotency key.
    clock.advance(seconds=5)
    again = await client.post(f"{path}/pause", headers=workspace.headers)
    assert again.status_code == 200, again.text
    keys = [request.idempotency_key for request in fake_stripe.posts(stripe_path)]
    assert len(set(keys)) == 3
    assert not any(request.replayed for request in fake_stripe.posts(stripe_path))
    resumed_again = await client.post(f"{path}/resume", headers=workspace.headers)
    assert resumed_again.status_code == 200, resumed_again.text

    other = await client.post(
        "/api/v1/plans",
        headers=workspace.headers,
        json={"name": "Platinum", "amount": 5000, "currency": "USD", "interval": "month"},
    )
    assert other.status_code == 201, other.text
    changed = await client.post(
        f"{path}/change-plan",
        headers=workspace.headers,
        json={"plan_id": other.json()["id"], "proration": True},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan_id"] == other.json()["id"]
    update = fake_stripe.posts(stripe_path)[-1].params
    new_price = fake_stripe.created("price")[-1]
    assert update["proration_behavior"] == "create_prorations"
    assert update["items"] == [{"id": item["id"], "price": new_price["id"]}]
    assert in_stripe["items"]["data"][0]["price"]["id"] == new_price["id"]
    assert [p["to_price"] for p in fake_stripe.prorations] == [new_price["id"]]

    clock.advance(seconds=5)
    later = await client.post(
        f"{path}/cancel", headers=workspace.headers, json={"at_period_end": True}
    )
    assert later.status_code == 200, later.text
    assert later.json()["cancel_at_period_end"] is True
    assert fake_stripe.posts(stripe_path)[-1].params == {"cancel_at_period_end": "true"}
    assert in_stripe["cancel_at"] == item["current_period_end"]

    clock.advance(seconds=5)
    now = await client.post(f"{path}/cancel", headers=workspace.headers, json={})
    assert now.status_code == 200, now.text
    assert now.json()["status"] == "canceled"
    [delete] = fake_stripe.sent("DELETE", stripe_path)
    # Stripe ignores idempotency keys on DELETE, so the client sends none.
    assert delete.idempotency_key is None
    assert delete.params == {}
    assert in_stripe["status"] == "canceled"
    assert in_stripe["canceled_at"] == int(clock.now().timestamp())


async def test_change_plan_without_proration(
    client: httpx.AsyncClient, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    body = await _subscribe(client, workspace, contact_id, plan_id)
    other = await client.post(
        "/api/v1/plans",
        headers=workspace.headers,
        json={"name": "Silver", "amount": 1000, "currency": "USD", "interval": "month"},
    )
    changed = await client.post(
        f"/api/v1/subscriptions/{body['id']}/change-plan",
        headers=workspace.headers,
        json={"plan_id": other.json()["id"], "proration": False},
    )
    assert changed.status_code == 200, changed.text
    stripe_path = f"/v1/subscriptions/{body['stripe_subscription_id']}"
    assert fake_stripe.posts(stripe_path)[-1].params["proration_behavior"] == "none"
    assert fake_stripe.prorations == []


async def test_cancel_after_stripe_canceled(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    body = await _subscribe(client, workspace, contact_id, plan_id)
    stripe_id = body["stripe_subscription_id"]
    # Canceled in Stripe already, as after a DELETE whose response was lost.
    clock.advance(seconds=5)
    fake_stripe.cancel_subscription(stripe_id, {})
    clock.advance(seconds=5)

    response = await client.post(
        f"/api/v1/subscriptions/{body['id']}/cancel", headers=workspace.headers, json={}
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    first_cancel = int((START + timedelta(seconds=5)).timestamp())
    assert fake_stripe.objects[stripe_id]["canceled_at"] == first_cancel
    canceled_at = datetime.fromisoformat(response.json()["canceled_at"].replace("Z", "+00:00"))
    assert canceled_at == START + timedelta(seconds=5)
    assert len(fake_stripe.sent("DELETE", f"/v1/subscriptions/{stripe_id}")) == 1
    assert len(fake_stripe.sent("GET", f"/v1/subscriptions/{stripe_id}")) == 1


async def test_cancel_unknown_in_stripe_is_502(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    body = await _subscribe(client, workspace, contact_id, plan_id)
    # Removed from the fake, so Stripe returns 404 for the id.
    del fake_stripe.objects[body["stripe_subscription_id"]]

    response = await client.post(
        f"/api/v1/subscriptions/{body['id']}/cancel", headers=workspace.headers, json={}
    )

    assert response.status_code == 502, response.text
    assert response.json()["code"] == "stripe_rejected"
    assert "No such subscription" in response.json()["detail"]
    copied = await load(runtime, uuid.UUID(body["id"]))
    assert copied.status == "incomplete"
    assert copied.canceled_at is None


async def test_built_events_applied(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    body = await _subscribe(client, workspace, contact_id, plan_id)
    stripe_id = body["stripe_subscription_id"]
    subscription_id = uuid.UUID(body["id"])

    clock.advance(seconds=5)
    await deliver(
        client,
        runtime,
        workspace,
        fake_stripe.invoice_event("invoice.paid", stripe_id, billing_reason="subscription_create"),
        clock,
    )
    assert (await load(runtime, subscription_id)).status == "active"
    assert fake_stripe.objects[stripe_id]["status"] == "active"

    clock.advance(seconds=5)
    failed = fake_stripe.invoice_event("invoice.payment_failed", stripe_id)
    invoice = failed["data"]["object"]
    assert invoice["parent"]["subscription_details"]["subscription"] == stripe_id
    assert "subscription" not in invoice
    await deliver(client, runtime, workspace, failed, clock)
    copied = await load(runtime, subscription_id)
    assert copied.status == "past_due"
    assert copied.past_due_since == clock.now()

    clock.advance(seconds=5)
    fake_stripe.cancel_subscription(stripe_id, {})
    await deliver(
        client,
        runtime,
        workspace,
        fake_stripe.subscription_event("customer.subscription.deleted", stripe_id),
        clock,
    )
    copied = await load(runtime, subscription_id)
    assert copied.status == "canceled"
    assert copied.canceled_at == clock.now()
