"""The Stripe client against the local fake: form encoding, headers, idempotency, errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from frontdesk.payments.stripe.client import (
    STRIPE_API_VERSION,
    AmountNotPayable,
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
