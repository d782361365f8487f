"""Stripe subscriptions: webhook mirroring of every status, event order, API versions.

Subscription objects come from tests/fixtures/corpus/stripe (dj-stripe's 2019 test objects, whose
current_period_* sit on the subscription as before API version 2025-03-31; the newer shape
moves them onto the items). Events are signed and delivered to the webhook endpoint like
Stripe does, then applied by the event job.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import run_jobs
from factories import owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.models import Plan, StripeCustomer, Subscription
from frontdesk.payments.subscriptions import STATUSES, apply_stripe_subscription_event
from frontdesk.runtime import Runtime
from live_server import HOST, listening_socket
from stripe_server import (
    EXAMPLES,
    FakeStripe,
    RecordedRequest,
    StripeWorkspace,
    build_app,
    connect_workspace,
    parse_form,
    serve_fake_stripe,
    signed,
    stripe_error,
)

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


async def test_corpus_object_both_versions(
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


# --- Requests to Stripe ---------------------------------------------------------------------
#
# NOTE: tests/stripe_server.py does not serve customers, products, prices, tax rates or
# subscriptions yet. Until it does, the fake below serves them with the same checks (secret
# key, Stripe-Version, form body, Idempotency-Key replay) and records into the same FakeStripe
# state, built from the examples in fixtures3.json.


class BillingFake:
    """Customers, products, prices, tax rates and subscriptions for a FakeStripe."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        self.clock: FrozenClock | None = None

    def _object(self, resource: str, prefix: str, params: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(EXAMPLES[resource])
        obj["id"] = f"{prefix}_{uuid.uuid4().hex[:24]}"
        obj["metadata"] = params.get("metadata") or {}
        self.fake.objects[obj["id"]] = obj
        return obj

    def _now(self) -> int:
        assert self.clock is not None
        return int(self.clock.now().timestamp())

    def create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self._object("subscription", "sub", params)
        price = self.fake.objects[params["items"][0]["price"]]
        now = self._now()
        trial_days = int(params.get("trial_period_days") or 0)
        obj.update(
            customer=params["customer"],
            status="trialing" if trial_days else "incomplete",
            trial_end=now + trial_days * 86400 if trial_days else None,
            cancel_at_period_end=False,
            canceled_at=None,
            pause_collection=None,
        )
        item = obj["items"]["data"][0]
        item.update(
            id=f"si_{uuid.uuid4().hex[:24]}",
            price=price,
            current_period_start=now,
            current_period_end=now + 30 * 86400,
        )
        return obj

    def update_subscription(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if "cancel_at_period_end" in params:
            obj["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        if "pause_collection" in params:
            value = params["pause_collection"]
            obj["pause_collection"] = value if isinstance(value, dict) and value else None
        if "items" in params:
            change = params["items"][0]
            item = obj["items"]["data"][0]
            assert change["id"] == item["id"], "the update must name the existing item"
            item["price"] = self.fake.objects[change["price"]]
        return obj

    def route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        creators = {
            "/v1/customers": ("customer", "cus"),
            "/v1/products": ("product", "prod"),
            "/v1/tax_rates": ("tax_rate", "txr"),
        }
        if method == "POST" and path in creators:
            return 200, self._object(*creators[path], params)
        if method == "POST" and path == "/v1/prices":
            price = self._object("price", "price", params)
            price.update(
                product=params["product"],
                unit_amount=int(params["unit_amount"]),
                currency=params["currency"],
                recurring={**price.get("recurring", {}), **params["recurring"]},
            )
            return 200, price
        if method == "POST" and path == "/v1/subscriptions":
            return 200, self.create_subscription(params)
        obj = self.fake.objects.get(path.removeprefix("/v1/subscriptions/"))
        if obj is None:
            return 404, {"error": {"type": "invalid_request_error", "message": "No such object"}}
        if method == "GET":
            return 200, obj
        if method == "DELETE":
            obj.update(status="canceled", canceled_at=self._now(), ended_at=self._now())
            return 200, obj
        return 200, self.update_subscription(obj, params)


BILLING_PATHS = (
    "/v1/customers",
    "/v1/products",
    "/v1/prices",
    "/v1/tax_rates",
    "/v1/subscriptions",
)


def billing_app(fake: FakeStripe, billing: BillingFake) -> Starlette:
    inner = build_app(fake)

    async def handle(request: Request) -> Response:
        path = request.url.path
        if not path.startswith(BILLING_PATHS):
            return await _forward(inner, request)
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in fake.secret_keys:
            return stripe_error(401, "Invalid API Key provided", "invalid_request_error")
        if not request.headers.get("stripe-version"):
            return stripe_error(
                400, "A Stripe-Version header is required.", "invalid_request_error"
            )
        key = request.headers.get("idempotency-key")
        if request.method == "GET":
            params = parse_form(list(request.query_params.multi_items()))
        else:
            if not key:
                return stripe_error(400, "An Idempotency-Key is required.", "invalid_request_error")
            if request.method == "POST" and not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                return stripe_error(400, "The body must be form-encoded.", "invalid_request_error")
            params = parse_form(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            known = fake.idempotency.get(key)
            if known is not None:
                target, first_params, status, answer = known
                if target != f"{request.method} {path}" or first_params != params:
                    return stripe_error(
                        400, "Key reused with other parameters.", "idempotency_error"
                    )
                fake.requests.append(RecordedRequest(request.method, path, key, params, True))
                return JSONResponse(answer, status_code=status)
        fake.requests.append(RecordedRequest(request.method, path, key, params))
        queued = fake.failures.get(path)
        if queued:
            status, error, _retry = queued.pop(0)
            return JSONResponse({"error": error}, status_code=status)
        status, answer = billing.route(request.method, path, params)
        if key and status < 500:
            fake.idempotency[key] = (
                f"{request.method} {path}",
                params,
                status,
                copy.deepcopy(answer),
            )
        return JSONResponse(answer, status_code=status)

    return Starlette(routes=[Route("/v1/{rest:path}", handle, methods=["GET", "POST", "DELETE"])])


async def _forward(app: Starlette, request: Request) -> Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        response = await client.request(
            request.method,
            request.url.path,
            params=list(request.query_params.multi_items()),
            headers=[(k, v) for k, v in request.headers.items() if k != "host"],
            content=await request.body(),
        )
    return Response(response.content, response.status_code, dict(response.headers))


@pytest.fixture
async def billing(fake_stripe: FakeStripe, clock: FrozenClock) -> AsyncIterator[BillingFake]:
    """Serve the billing fake in front of the Stripe fake and point the app at it."""
    billing = BillingFake(fake_stripe)
    billing.clock = clock
    sock = listening_socket()
    config = uvicorn.Config(
        billing_app(fake_stripe, billing), lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    fake_stripe.url = f"http://{HOST}:{sock.getsockname()[1]}"
    try:
        yield billing
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
def settings_overrides(fake_stripe: FakeStripe, request: pytest.FixtureRequest) -> dict[str, Any]:
    if "billing" in request.fixturenames:
        request.getfixturevalue("billing")
    return {"stripe_api_base": fake_stripe.url, "stripe_max_retries": 0}


async def test_create_in_stripe_with_our_keys(
    client: httpx.AsyncClient,
    runtime: Runtime,
    billing: BillingFake,
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
    response = await client.post(
        "/api/v1/subscriptions",
        headers=workspace.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "trialing"
    assert created["stripe_subscription_id"].startswith("sub_")
    assert (
        created["trial_end"]
        == datetime.fromtimestamp(int(START.timestamp()) + 14 * 86400, tz=UTC).isoformat()
    )
    assert created["current_period_start"] == START.isoformat()

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
    [subscription] = fake_stripe.posts("/v1/subscriptions")
    assert subscription.idempotency_key == f"{ws}:{created['id']}:subscription:v1"
    assert subscription.params["trial_period_days"] == "14"
    assert subscription.params["payment_behavior"] == "default_incomplete"
    assert subscription.params["metadata"]["subscription_id"] == created["id"]
    assert subscription.params["items"][0]["price"] == fake_stripe.created("price")[0]["id"]

    # A second subscription of the contact reuses the customer and the plan's price.
    again = await client.post(
        "/api/v1/subscriptions",
        headers=workspace.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert again.status_code == 201, again.text
    assert len(fake_stripe.posts("/v1/customers")) == 1
    assert len(fake_stripe.posts("/v1/prices")) == 1
    assert len(fake_stripe.posts("/v1/subscriptions")) == 2
    async with runtime.sessionmaker() as session:
        plan = await session.get(Plan, uuid.UUID(plan_id))
        assert plan is not None
        assert plan.stripe_price_id == fake_stripe.created("price")[0]["id"]
        assert plan.stripe_product_id == fake_stripe.created("prod")[0]["id"]


async def test_changes_sent_to_stripe(
    client: httpx.AsyncClient,
    billing: BillingFake,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    clock: FrozenClock,
) -> None:
    contact_id, plan_id = await _contact_and_plan(client, workspace.headers)
    created = await client.post(
        "/api/v1/subscriptions",
        headers=workspace.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "stripe"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "incomplete"
    path = f"/api/v1/subscriptions/{body['id']}"
    stripe_path = f"/v1/subscriptions/{body['stripe_subscription_id']}"

    clock.advance(seconds=5)
    paused = await client.post(f"{path}/pause", headers=workspace.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused_at"] is not None
    assert fake_stripe.posts(stripe_path)[-1].params == {"pause_collection": {"behavior": "void"}}

    clock.advance(seconds=5)
    resumed = await client.post(f"{path}/resume", headers=workspace.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused_at"] is None
    assert fake_stripe.posts(stripe_path)[-1].params["pause_collection"] == ""

    # Pausing again is a new operation with a new idempotency key.
    clock.advance(seconds=5)
    again = await client.post(f"{path}/pause", headers=workspace.headers)
    assert again.status_code == 200, again.text
    keys = [request.idempotency_key for request in fake_stripe.posts(stripe_path)]
    assert len(set(keys)) == 3
    await client.post(f"{path}/resume", headers=workspace.headers)

    other = await client.post(
        "/api/v1/plans",
        headers=workspace.headers,
        json={"name": "Platinum", "amount": 5000, "currency": "USD", "interval": "month"},
    )
    changed = await client.post(
        f"{path}/change-plan",
        headers=workspace.headers,
        json={"plan_id": other.json()["id"], "proration": True},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan_id"] == other.json()["id"]
    update = fake_stripe.posts(stripe_path)[-1].params
    assert update["proration_behavior"] == "create_prorations"
    assert update["items"][0]["price"] == fake_stripe.created("price")[-1]["id"]

    clock.advance(seconds=5)
    later = await client.post(
        f"{path}/cancel", headers=workspace.headers, json={"at_period_end": True}
    )
    assert later.json()["cancel_at_period_end"] is True
    assert fake_stripe.posts(stripe_path)[-1].params == {"cancel_at_period_end": "true"}

    clock.advance(seconds=5)
    now = await client.post(f"{path}/cancel", headers=workspace.headers, json={})
    assert now.status_code == 200, now.text
    assert now.json()["status"] == "canceled"
    deletes = [r for r in fake_stripe.requests if r.method == "DELETE" and r.path == stripe_path]
    assert len(deletes) == 1
