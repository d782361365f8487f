"""The Stripe client against the local fake: form encoding, headers, idempotency, errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontdesk.payments.stripe.client import (
    STRIPE_API_VERSION,
    AmountNotPayable,
    ApiConnectionError,
    AuthenticationError,
    CardError,
    ClientOptions,
    IdempotencyError,
    InvalidRequestError,
    RateLimitError,
    StripeClient,
    encode_form,
    from_stripe_amount,
    to_stripe_amount,
)
from stripe_server import FakeStripe, parse_form, serve_fake_stripe

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with serve_fake_stripe() as fake:
        yield fake


def client(fake: FakeStripe, key: str | None = None, *, retries: int = 0) -> StripeClient:
    options = ClientOptions(
        api_base=fake.url, timeout_seconds=5, max_retries=retries, retry_base_seconds=0.01
    )
    return StripeClient(key or fake.new_secret_key(), options)


def test_fixtures_match_checksums() -> None:
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_encode_form_nested_keys() -> None:
    params = {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 500}}],
        "metadata": {"invoice_id": "abc"},
        "automatic_payment_methods": {"enabled": True},
        "customer": None,
    }
    pairs = encode_form(params)
    assert ("line_items[0][price_data][currency]", "eur") in pairs
    assert ("line_items[0][quantity]", "1") in pairs
    assert ("metadata[invoice_id]", "abc") in pairs
    assert ("automatic_payment_methods[enabled]", "true") in pairs
    assert all(key != "customer" for key, _ in pairs)
    assert parse_form(pairs)["line_items"][0]["price_data"]["unit_amount"] == "500"


def test_amount_units_differ_for_isk_and_three_decimal() -> None:
    assert to_stripe_amount(1500, "JPY") == 1500
    assert to_stripe_amount(1234, "EUR") == 1234
    assert to_stripe_amount(150, "ISK") == 15000
    assert from_stripe_amount(15000, "ISK") == 150
    assert to_stripe_amount(1230, "KWD") == 1230
    with pytest.raises(AmountNotPayable):
        to_stripe_amount(1235, "KWD")


async def test_post_sends_version_and_form(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        intent = await stripe.post(
            "/v1/payment_intents",
            {"amount": 1200, "currency": "eur", "metadata": {"payment_id": "p1"}},
            idempotency_key="ws:p1:payment_intent:v1",
        )
    assert intent["object"] == "payment_intent"
    assert intent["amount"] == 1200
    assert intent["metadata"] == {"payment_id": "p1"}
    recorded = fake_stripe.posts("/v1/payment_intents")[0]
    assert recorded.idempotency_key == "ws:p1:payment_intent:v1"
    assert STRIPE_API_VERSION.startswith("2025-")


async def test_unknown_key_is_authentication_error(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe, "sk_test_unknown") as stripe:
        with pytest.raises(AuthenticationError) as caught:
            await stripe.get("/v1/balance")
    assert caught.value.status == 401
    assert "Invalid API Key" in caught.value.message


async def test_fake_rejects_json_body_and_missing_version(fake_stripe: FakeStripe) -> None:
    key = fake_stripe.new_secret_key()
    async with httpx.AsyncClient(base_url=fake_stripe.url) as http:
        as_json = await http.post(
            "/v1/payment_intents",
            json={"amount": 100, "currency": "eur"},
            headers={
                "Authorization": f"Bearer {key}",
                "Stripe-Version": STRIPE_API_VERSION,
                "Idempotency-Key": "k1",
            },
        )
        no_version = await http.get("/v1/balance", headers={"Authorization": f"Bearer {key}"})
    assert as_json.status_code == 400
    assert as_json.json()["error"]["type"] == "invalid_request_error"
    assert no_version.status_code == 400


async def test_same_key_same_params_replays(fake_stripe: FakeStripe) -> None:
    params = {"amount": 500, "currency": "eur"}
    async with client(fake_stripe) as stripe:
        first = await stripe.post("/v1/payment_intents", params, idempotency_key="same")
        second = await stripe.post("/v1/payment_intents", params, idempotency_key="same")
    assert first["id"] == second["id"]
    assert len(fake_stripe.created("pi")) == 1
    assert fake_stripe.posts("/v1/payment_intents")[1].replayed


async def test_same_key_other_params_is_idempotency_error(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        await stripe.post(
            "/v1/payment_intents", {"amount": 500, "currency": "eur"}, idempotency_key="k"
        )
        with pytest.raises(IdempotencyError) as caught:
            await stripe.post(
                "/v1/payment_intents", {"amount": 501, "currency": "eur"}, idempotency_key="k"
            )
    assert caught.value.status == 400
    assert caught.value.error_type == "idempotency_error"


async def test_rate_limit_is_retried_with_same_key(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(
        "/v1/payment_intents",
        429,
        {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"},
    )
    async with client(fake_stripe, retries=2) as stripe:
        intent = await stripe.post(
            "/v1/payment_intents", {"amount": 700, "currency": "eur"}, idempotency_key="retry-me"
        )
    posts = fake_stripe.posts("/v1/payment_intents")
    assert len(posts) == 2
    assert {p.idempotency_key for p in posts} == {"retry-me"}
    assert intent["amount"] == 700


async def test_rate_limit_without_retries_raises(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next("/v1/balance", 429, {"type": "invalid_request_error", "message": "slow"})
    async with client(fake_stripe, retries=0) as stripe:
        with pytest.raises(RateLimitError):
            await stripe.get("/v1/balance")


async def test_card_error_and_invalid_request(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(
        "/v1/payment_intents",
        402,
        {"type": "card_error", "code": "card_declined", "message": "Your card was declined."},
    )
    async with client(fake_stripe) as stripe:
        with pytest.raises(CardError) as declined:
            await stripe.post(
                "/v1/payment_intents", {"amount": 1, "currency": "eur"}, idempotency_key="c1"
            )
        with pytest.raises(InvalidRequestError) as missing:
            await stripe.get("/v1/payment_intents/pi_missing")
    assert declined.value.code == "card_declined"
    assert missing.value.status == 404


async def test_list_all_follows_pages(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        for number in range(5):
            await stripe.post(
                "/v1/payment_intents",
                {"amount": 100 + number, "currency": "eur"},
                idempotency_key=f"list-{number}",
            )
        items = await stripe.list_all("/v1/payment_intents", limit=2)
    assert len(items) == 5
    assert len({item["id"] for item in items}) == 5


async def _subscription(stripe: StripeClient) -> dict[str, Any]:
    """Create a customer, a monthly price and a subscription of them in the fake."""
    customer = await stripe.post("/v1/customers", {}, idempotency_key="customer")
    product = await stripe.post("/v1/products", {"name": "Gold"}, idempotency_key="product")
    price = await stripe.post(
        "/v1/prices",
        {
            "product": product["id"],
            "unit_amount": 2000,
            "currency": "eur",
            "recurring": {"interval": "month"},
        },
        idempotency_key="price",
    )
    return await stripe.post(
        "/v1/subscriptions",
        {"customer": customer["id"], "items": [{"price": price["id"]}]},
        idempotency_key="subscription",
    )


async def test_delete_sends_no_key_or_body(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        subscription = await _subscription(stripe)
        path = f"/v1/subscriptions/{subscription['id']}"
        canceled = await stripe.delete(path, {"invoice_now": True})
    assert canceled["status"] == "canceled"
    [request] = fake_stripe.sent("DELETE", path)
    assert request.idempotency_key is None
    assert request.params == {"invoice_now": "true"}


async def test_delete_retries_rate_limit(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe, retries=2) as stripe:
        subscription = await _subscription(stripe)
        path = f"/v1/subscriptions/{subscription['id']}"
        fake_stripe.fail_next(path, 429, {"type": "invalid_request_error", "message": "slow"})
        fake_stripe.fail_next(path, 500, {"type": "api_error", "message": "down"})
        canceled = await stripe.delete(path)
    assert canceled["status"] == "canceled"
    assert len(fake_stripe.sent("DELETE", path)) == 3


async def test_delete_should_retry_false_raises(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe, retries=2) as stripe:
        subscription = await _subscription(stripe)
        path = f"/v1/subscriptions/{subscription['id']}"
        fake_stripe.fail_next(
            path, 500, {"type": "api_error", "message": "down"}, should_retry="false"
        )
        with pytest.raises(ApiConnectionError):
            await stripe.delete(path)
    assert len(fake_stripe.sent("DELETE", path)) == 1


async def test_delete_timeout_is_connection_error(fake_stripe: FakeStripe) -> None:
    options = ClientOptions(
        api_base=fake_stripe.url, timeout_seconds=5, max_retries=1, retry_base_seconds=0.01
    )
    calls: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadTimeout("no response", request=request)

    async with StripeClient("sk_test_x", options, transport=httpx.MockTransport(record)) as stripe:
        with pytest.raises(ApiConnectionError) as caught:
            await stripe.delete("/v1/subscriptions/sub_1")
    assert "timed out" in caught.value.message
    assert calls == ["DELETE", "DELETE"]


async def test_delete_again_is_resource_missing(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        subscription = await _subscription(stripe)
        path = f"/v1/subscriptions/{subscription['id']}"
        await stripe.delete(path)
        with pytest.raises(InvalidRequestError) as caught:
            await stripe.delete(path)
        still = await stripe.get(path)
    assert caught.value.status == 404
    assert caught.value.code == "resource_missing"
    assert still["status"] == "canceled"


async def test_fake_rejects_delete_body(fake_stripe: FakeStripe) -> None:
    key = fake_stripe.new_secret_key()
    async with httpx.AsyncClient(base_url=fake_stripe.url) as http:
        response = await http.request(
            "DELETE",
            "/v1/subscriptions/sub_1",
            content=b"invoice_now=true",
            headers={"Authorization": f"Bearer {key}", "Stripe-Version": STRIPE_API_VERSION},
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_fake_billing_errors(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        with pytest.raises(InvalidRequestError) as missing:
            await stripe.post("/v1/products", {}, idempotency_key="p1")
        with pytest.raises(InvalidRequestError) as unknown_param:
            await stripe.post("/v1/products", {"name": "A", "colour": "red"}, idempotency_key="p2")
        with pytest.raises(InvalidRequestError) as unknown_price:
            await stripe.post(
                "/v1/subscriptions",
                {
                    "customer": (await stripe.post("/v1/customers", {}, idempotency_key="c"))["id"],
                    "items": [{"price": "price_missing"}],
                },
                idempotency_key="s1",
            )
        with pytest.raises(InvalidRequestError) as unknown_id:
            await stripe.get("/v1/subscriptions/sub_missing")
    assert missing.value.status == 400
    assert missing.value.code == "parameter_missing"
    assert missing.value.param == "name"
    assert unknown_param.value.code == "parameter_unknown"
    assert unknown_param.value.param == "colour"
    assert unknown_price.value.status == 400
    assert unknown_price.value.code == "resource_missing"
    assert unknown_price.value.param == "items[0][price]"
    assert unknown_id.value.status == 404
    assert unknown_id.value.code == "resource_missing"
    assert unknown_id.value.message == "No such subscription: 'sub_missing'"


async def test_fake_subscription_shape(fake_stripe: FakeStripe) -> None:
    async with client(fake_stripe) as stripe:
        subscription = await _subscription(stripe)
        listed = await stripe.get("/v1/subscriptions", {"status": "all"})
    [item] = subscription["items"]["data"]
    # API version 2025-03-31.basil keeps the period on the items only.
    assert "current_period_start" not in subscription
    assert item["current_period_end"] > item["current_period_start"]
    assert item["price"]["recurring"]["interval"] == "month"
    assert subscription["status"] == "incomplete"
    invoice = fake_stripe.objects[subscription["latest_invoice"]]
    assert invoice["parent"]["subscription_details"]["subscription"] == subscription["id"]
    assert invoice["amount_due"] == 2000
    assert [obj["id"] for obj in listed["data"]] == [subscription["id"]]
