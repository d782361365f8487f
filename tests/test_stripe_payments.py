"""Stripe keys, Checkout for invoices, refunds through Stripe and reconciliation."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import factories
from conftest import run_jobs
from frontdesk.core.clock import FrozenClock
from frontdesk.core.errors import Conflict, ValidationFailed
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.models import Invoice, Payment, Refund, StripeAccount
from frontdesk.payments.stripe.checkout import create_checkout_for_invoice, create_payment_intent
from frontdesk.payments.stripe.reconcile import reconcile
from frontdesk.payments.stripe.refunds import REFUND_JOB, refund_stripe_payment, send_refund
from frontdesk.runtime import Runtime
from stripe_server import (
    FakeStripe,
    StripeWorkspace,
    connect_workspace,
    issued_invoice,
    serve_fake_stripe,
    signed,
    stripe_payment,
)


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


# --- Keys -------------------------------------------------------------------------------------


async def test_keys_stored_encrypted_and_masked(
    client: httpx.AsyncClient, runtime: Runtime, fake_stripe: FakeStripe
) -> None:
    staff = await factories.owner(client)
    secret_key = fake_stripe.new_secret_key()

    saved = await client.put(
        "/api/v1/payments/stripe",
        headers=staff.headers,
        json={
            "secret_key": secret_key,
            "webhook_secret": "whsec_generated_for_this_test",
            "publishable_key": "pk_test_abc",
        },
    )
    shown = await client.get("/api/v1/payments/stripe", headers=staff.headers)

    assert saved.status_code == 200, saved.text
    body = shown.json()
    assert body["configured"] is True
    assert body["livemode"] is False
    assert body["has_webhook_secret"] is True
    assert body["secret_key"].endswith(secret_key[-4:])
    assert secret_key not in shown.text
    assert "whsec_generated_for_this_test" not in shown.text
    assert body["webhook_url"].startswith("http://frontdesk.test/webhooks/stripe/")
    assert [r.path for r in fake_stripe.requests] == ["/v1/account"]
    async with runtime.sessionmaker() as session:
        account = await session.get(StripeAccount, staff.workspace_id)
        assert account is not None
        assert secret_key not in account.secret_key_encrypted


async def test_rejected_key_stores_nothing(
    client: httpx.AsyncClient, fake_stripe: FakeStripe
) -> None:
    staff = await factories.owner(client)
    response = await client.put(
        "/api/v1/payments/stripe",
        headers=staff.headers,
        json={"secret_key": "sk_test_not_known_to_stripe"},
    )
    shown = await client.get("/api/v1/payments/stripe", headers=staff.headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "secret_key"
    assert response.json()["errors"][0]["code"] == "stripe_key_rejected"
    assert shown.json()["configured"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret_key": "pk_test_123"}, "secret_key"),
        ({"secret_key": "sk_test_1", "webhook_secret": "secret"}, "webhook_secret"),
        ({"secret_key": "sk_test_1", "publishable_key": "sk_test_1"}, "publishable_key"),
        ({"secret_key": "sk_test_1", "publishable_key": "pk_live_1"}, "publishable_key"),
    ],
)
async def test_invalid_keys_are_422(
    client: httpx.AsyncClient, fake_stripe: FakeStripe, body: dict[str, Any], field: str
) -> None:
    staff = await factories.owner(client)
    if body["secret_key"] == "sk_test_1":
        body = {**body, "secret_key": fake_stripe.new_secret_key()}
    response = await client.put("/api/v1/payments/stripe", headers=staff.headers, json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


async def test_stripe_down_is_502(client: httpx.AsyncClient, fake_stripe: FakeStripe) -> None:
    staff = await factories.owner(client)
    fake_stripe.fail_next("/v1/account", 500, {"type": "api_error", "message": "Stripe is down"})
    response = await client.put(
        "/api/v1/payments/stripe",
        headers=staff.headers,
        json={"secret_key": fake_stripe.new_secret_key()},
    )
    assert response.status_code == 502
    assert response.json()["code"] == "stripe_unavailable"


async def test_agent_cannot_set_keys(
    client: httpx.AsyncClient, runtime: Runtime, fake_stripe: FakeStripe
) -> None:
    staff = await factories.owner(client)
    agent = await factories.member(client, runtime, staff.workspace_id, role="agent")
    response = await client.put(
        "/api/v1/payments/stripe",
        headers=agent.headers,
        json={"secret_key": fake_stripe.new_secret_key()},
    )
    assert response.status_code == 403
    assert fake_stripe.requests == []


async def test_delete_keys_closes_webhook(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    deleted = await client.delete("/api/v1/payments/stripe", headers=workspace.headers)
    shown = await client.get("/api/v1/payments/stripe", headers=workspace.headers)
    event = fake_stripe.event("plan.created", {"id": "plan_1", "object": "plan"})
    body, headers = signed(
        event, [workspace.webhook_secret], timestamp=int(clock.now().timestamp())
    )
    webhook = await client.post(workspace.webhook_path, content=body, headers=headers)

    assert deleted.status_code == 204
    assert shown.json()["configured"] is False
    assert webhook.status_code == 404


# --- Checkout ---------------------------------------------------------------------------------


async def checkout(runtime: Runtime, invoice_id: uuid.UUID) -> str:
    async with unit_of_work(runtime) as uow:
        invoice = await uow.session.get(Invoice, invoice_id)
        assert invoice is not None
        return await create_checkout_for_invoice(uow, invoice)


async def test_checkout_session_for_amount_due(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=12_345)

    url = await checkout(runtime, invoice.id)

    sessions = fake_stripe.created("cs_test")
    assert len(sessions) == 1
    assert url == sessions[0]["url"]
    post = fake_stripe.posts("/v1/checkout/sessions")[0]
    item = post.params["line_items"][0]
    assert post.params["mode"] == "payment"
    assert item["price_data"]["unit_amount"] == "12345"
    assert item["price_data"]["currency"] == "eur"
    assert post.params["metadata"] == {
        "invoice_id": str(invoice.id),
        "workspace_id": str(workspace.workspace_id),
    }
    assert post.params["success_url"].endswith(f"/pay/{invoice.public_token}?checkout=success")
    assert post.idempotency_key == f"{workspace.workspace_id}:{invoice.id}:checkout:0:v1"
    async with runtime.sessionmaker() as session:
        payment = await session.scalar(sa.select(Payment).where(Payment.invoice_id == invoice.id))
        assert payment is not None
        assert payment.status == "pending"
        assert payment.amount == 12_345
        assert payment.stripe_checkout_session_id == sessions[0]["id"]


async def test_second_checkout_reuses_open_session(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    first = await checkout(runtime, invoice.id)
    second = await checkout(runtime, invoice.id)
    assert first == second
    assert len(fake_stripe.posts("/v1/checkout/sessions")) == 1


async def test_checkout_isk_amount_in_stripe_units(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=4_900, currency="ISK")
    await checkout(runtime, invoice.id)
    item = fake_stripe.posts("/v1/checkout/sessions")[0].params["line_items"][0]
    assert item["price_data"]["unit_amount"] == "490000"
    assert item["price_data"]["currency"] == "isk"


async def test_checkout_rejects_unpayable_invoice(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    paid = await issued_invoice(runtime, workspace.workspace_id)
    async with unit_of_work(runtime) as uow:
        invoice = await uow.session.get(Invoice, paid.id)
        assert invoice is not None
        invoice.status = "paid"
    with pytest.raises(Conflict):
        await checkout(runtime, paid.id)
    odd = await issued_invoice(runtime, workspace.workspace_id, total=1_005, currency="KWD")
    with pytest.raises(ValidationFailed):
        await checkout(runtime, odd.id)
    assert fake_stripe.posts("/v1/checkout/sessions") == []


async def test_checkout_after_crash_gets_same_session(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    with pytest.raises(RuntimeError):
        async with unit_of_work(runtime) as uow:
            loaded = await uow.session.get(Invoice, invoice.id)
            assert loaded is not None
            first = await create_checkout_for_invoice(uow, loaded)
            raise RuntimeError("the process died before the commit")

    second = await checkout(runtime, invoice.id)

    posts = fake_stripe.posts("/v1/checkout/sessions")
    assert len(posts) == 2
    assert posts[0].idempotency_key == posts[1].idempotency_key
    assert posts[1].replayed
    assert len(fake_stripe.created("cs_test")) == 1
    assert first == second


async def test_checkout_completed_pays_invoice(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=8_000)
    await checkout(runtime, invoice.id)
    session = fake_stripe.created("cs_test")[0]
    intent = fake_stripe.create_payment_intent({"amount": 8_000, "currency": "eur"})
    fake_stripe.succeed_payment_intent(intent)
    session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
    event = fake_stripe.event(
        "checkout.session.completed", session, created=int(clock.now().timestamp())
    )
    body, headers = signed(
        event, [workspace.webhook_secret], timestamp=int(clock.now().timestamp())
    )

    response = await client.post(workspace.webhook_path, content=body, headers=headers)
    await run_jobs(runtime)

    assert response.status_code == 200
    async with runtime.sessionmaker() as db:
        paid = await db.get(Invoice, invoice.id)
        payment = await db.scalar(sa.select(Payment).where(Payment.invoice_id == invoice.id))
    assert paid is not None
    assert paid.status == "paid"
    assert paid.amount_paid == 8_000
    assert payment is not None
    assert payment.status == "succeeded"
    assert payment.stripe_payment_intent_id == intent["id"]


# --- Refunds ----------------------------------------------------------------------------------


async def paid_stripe_payment(
    runtime: Runtime, fake: FakeStripe, workspace: StripeWorkspace, total: int = 10_000
) -> Payment:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=total)
    intent = fake.create_payment_intent({"amount": total, "currency": "eur"})
    fake.succeed_payment_intent(intent)
    return await stripe_payment(runtime, invoice, intent_id=intent["id"], status="succeeded")


async def request_refund(runtime: Runtime, payment_id: uuid.UUID, amount: int) -> Refund:
    async with unit_of_work(runtime) as uow:
        payment = await uow.session.get(Payment, payment_id)
        assert payment is not None
        return await refund_stripe_payment(uow, payment, amount, "broken on arrival", None)


async def test_refund_job_retried_after_crash_refunds_once(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    payment = await paid_stripe_payment(runtime, fake_stripe, workspace)
    refund = await request_refund(runtime, payment.id, 2_500)
    with pytest.raises(RuntimeError):
        async with unit_of_work(runtime) as uow:
            await send_refund(uow, {"refund_id": str(refund.id)})
            raise RuntimeError("the worker was killed before the commit")

    await run_jobs(runtime)

    posts = fake_stripe.posts("/v1/refunds")
    assert len(posts) == 2
    assert posts[0].idempotency_key == f"{workspace.workspace_id}:{refund.id}:refund:v1"
    assert posts[1].idempotency_key == posts[0].idempotency_key
    assert posts[1].replayed
    assert posts[0].params["amount"] == "2500"
    assert posts[0].params["metadata"]["refund_id"] == str(refund.id)
    created = fake_stripe.created("re")
    assert len(created) == 1
    async with runtime.sessionmaker() as session:
        stored = await session.get(Refund, refund.id)
    assert stored is not None
    assert stored.stripe_refund_id == created[0]["id"]
    assert stored.status == "succeeded"
    async with runtime.sessionmaker() as session:
        refunded = await session.get(Payment, payment.id)
        invoice = await session.get(Invoice, refunded.invoice_id if refunded else None)
    assert refunded is not None
    assert refunded.amount_refunded == 2_500
    assert refunded.status == "partially_refunded"
    assert invoice is not None
    assert invoice.amount_paid == 7_500


async def test_refund_limits_and_gateway(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    payment = await paid_stripe_payment(runtime, fake_stripe, workspace, total=3_000)
    await request_refund(runtime, payment.id, 2_000)
    with pytest.raises(ValidationFailed) as too_much:
        await request_refund(runtime, payment.id, 1_001)
    assert too_much.value.errors[0].field == "amount"

    manual = await issued_invoice(runtime, workspace.workspace_id)
    async with unit_of_work(runtime) as uow:
        cash = Payment(
            workspace_id=workspace.workspace_id,
            invoice_id=manual.id,
            gateway="manual",
            method="cash",
            status="succeeded",
            currency="EUR",
            amount=500,
            amount_refunded=0,
            created_at=uow.now(),
            updated_at=uow.now(),
        )
        uow.session.add(cash)
    with pytest.raises(Conflict):
        await request_refund(runtime, cash.id, 100)


async def test_refund_rejected_by_stripe_marked_failed(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    payment = await paid_stripe_payment(runtime, fake_stripe, workspace)
    refund = await request_refund(runtime, payment.id, 1_000)
    fake_stripe.fail_next(
        "/v1/refunds",
        400,
        {"type": "invalid_request_error", "code": "charge_disputed", "message": "Disputed."},
    )
    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        stored = await session.get(Refund, refund.id)
        job = await session.scalar(sa.select(Job).where(Job.name == REFUND_JOB))
    assert job is not None
    assert (job.status, job.last_error) == ("succeeded", None)
    assert stored is not None
    assert stored.status == "failed"
    assert stored.stripe_refund_id is None
    assert stored.failure_reason == "charge_disputed: Disputed."


# --- Reconciliation ---------------------------------------------------------------------------


async def test_reconcile_lists_differences(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    matching = await paid_stripe_payment(runtime, fake_stripe, workspace)
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    behind = fake_stripe.create_payment_intent({"amount": invoice.total, "currency": "eur"})
    fake_stripe.succeed_payment_intent(behind)
    lagging = await stripe_payment(runtime, invoice, intent_id=behind["id"], status="pending")
    unknown = fake_stripe.create_payment_intent({"amount": 999, "currency": "eur"})
    fake_stripe.succeed_payment_intent(unknown)
    status, stripe_refund = fake_stripe.create_refund(
        {"payment_intent": unknown["id"], "amount": "100"}
    )
    assert status == 200

    async with unit_of_work(runtime) as uow:
        report = await reconcile(uow, workspace.workspace_id)

    found = {(d.kind, d.stripe_id) for d in report.differences}
    assert ("payment_status", behind["id"]) in found
    assert ("payment_missing", unknown["id"]) in found
    assert ("refund_missing", stripe_refund["id"]) in found
    assert all(d.local_id != str(matching.id) for d in report.differences)
    assert report.payment_intents == 3
    assert lagging.status == "pending"


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m frontdesk`` in a child process without blocking this event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "frontdesk",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_reconcile_command(
    runtime: Runtime, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    settings = runtime.settings
    assert settings.encryption_keys is not None
    assert settings.secret_key is not None
    env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": settings.resolved_database_url,
        "FRONTDESK_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
        "FRONTDESK_SECRET_KEY": settings.secret_key.get_secret_value(),
        "FRONTDESK_DATA_DIR": str(settings.data_dir),
        "FRONTDESK_STRIPE_API_BASE": fake_stripe.url,
        "FRONTDESK_LOG_LEVEL": "ERROR",
    }
    unknown = fake_stripe.create_payment_intent({"amount": 999, "currency": "eur"})
    fake_stripe.succeed_payment_intent(unknown)

    code, out, err = await run_cli(
        "payments", "reconcile", "--workspace", str(workspace.workspace_id), env=env
    )
    bad_code, _, bad_err = await run_cli("payments", "reconcile", "--workspace", "studio", env=env)

    assert code == 1, err
    assert "Traceback" not in err, err
    assert f"payment_missing: stripe {unknown['id']}" in out
    assert "1 differences" in out
    assert bad_code == 2
    assert "--workspace" in bad_err


async def test_refund_through_payments_api(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    payment = await paid_stripe_payment(runtime, fake_stripe, workspace, total=6_000)

    response = await client.post(
        f"/api/v1/payments/{payment.id}/refunds",
        headers=workspace.headers,
        json={"amount": 1_500, "reason": "one item missing"},
    )
    await run_jobs(runtime)

    assert response.status_code == 201, response.text
    refunds = fake_stripe.created("re")
    assert len(refunds) == 1
    assert refunds[0]["amount"] == 1_500
    charge = fake_stripe.objects[refunds[0]["charge"]]
    event = fake_stripe.event("charge.refunded", charge, created=int(clock.now().timestamp()))
    body, headers = signed(
        event, [workspace.webhook_secret], timestamp=int(clock.now().timestamp())
    )
    await client.post(workspace.webhook_path, content=body, headers=headers)
    await run_jobs(runtime)
    shown = await client.get(f"/api/v1/payments/{payment.id}", headers=workspace.headers)
    assert shown.json()["status"] == "partially_refunded"
    assert shown.json()["amount_refunded"] == 1_500
    async with runtime.sessionmaker() as session:
        stored = await session.scalars(sa.select(Refund).where(Refund.payment_id == payment.id))
        rows = list(stored)
    assert len(rows) == 1
    assert rows[0].stripe_refund_id == refunds[0]["id"]


# --- PaymentIntents ---------------------------------------------------------------------------


async def test_payment_intent_failed_then_succeeded(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=4_000)
    async with unit_of_work(runtime) as uow:
        payment = Payment(
            workspace_id=workspace.workspace_id,
            invoice_id=invoice.id,
            gateway="stripe",
            method="card",
            status="pending",
            currency="EUR",
            amount=4_000,
            amount_refunded=0,
            created_at=uow.now(),
            updated_at=uow.now(),
        )
        uow.session.add(payment)
        await uow.session.flush()
        intent = await create_payment_intent(uow, payment)
    post = fake_stripe.posts("/v1/payment_intents")[0]
    assert post.idempotency_key == f"{workspace.workspace_id}:{payment.id}:payment_intent:v1"
    assert post.params["metadata"]["payment_id"] == str(payment.id)
    assert intent["client_secret"].startswith(intent["id"])
    now = int(clock.now().timestamp())
    declined = {
        **intent,
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
    }
    charged = dict(fake_stripe.objects[intent["id"]])
    fake_stripe.succeed_payment_intent(charged)

    for event in (
        fake_stripe.event("payment_intent.payment_failed", declined, created=now),
        fake_stripe.event("payment_intent.succeeded", charged, created=now + 20),
    ):
        body, headers = signed(event, [workspace.webhook_secret], timestamp=now)
        assert (
            await client.post(workspace.webhook_path, content=body, headers=headers)
        ).status_code == 200
        await run_jobs(runtime)
        if event["type"] == "payment_intent.payment_failed":
            shown = await client.get(f"/api/v1/payments/{payment.id}", headers=workspace.headers)
            assert shown.json()["status"] == "failed"

    async with runtime.sessionmaker() as session:
        final = await session.get(Payment, payment.id)
        paid = await session.get(Invoice, invoice.id)
    assert final is not None
    assert final.status == "succeeded"
    assert final.failure_reason == "Your card was declined."
    assert final.stripe_charge_id == charged["latest_charge"]
    assert paid is not None
    assert paid.status == "paid"
