"""Stripe webhooks: signatures, storing once, applying by job, order and version tolerance."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import factories
from conftest import run_jobs
from frontdesk.core.clock import FrozenClock
from frontdesk.core.jobs import Worker
from frontdesk.core.models import Job
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.payments.models import (
    Invoice,
    InvoiceActivity,
    Payment,
    PaymentTransition,
    Plan,
    Refund,
    StripeAccount,
    StripeEvent,
    Subscription,
)
from frontdesk.payments.stripe import events
from frontdesk.payments.stripe.webhooks import (
    SignatureInvalid,
    signature_header,
    verify_signature,
)
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Workspace
from stripe_server import (
    FakeStripe,
    StripeWorkspace,
    connect_workspace,
    issued_invoice,
    serve_fake_stripe,
    signed,
    stripe_payment,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with serve_fake_stripe() as fake:
        yield fake


@pytest.fixture
def settings_overrides(fake_stripe: FakeStripe) -> dict[str, Any]:
    return {"stripe_api_base": fake_stripe.url, "stripe_max_retries": 0}


def now_of(clock: FrozenClock) -> int:
    return int(clock.now().timestamp())


async def deliver(
    client: httpx.AsyncClient,
    workspace: StripeWorkspace,
    event: dict[str, Any],
    clock: FrozenClock,
    *,
    secrets: list[str] | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    body, headers = signed(
        event,
        secrets or [workspace.webhook_secret],
        timestamp=now_of(clock) if timestamp is None else timestamp,
    )
    return await client.post(workspace.webhook_path, content=body, headers=headers)


async def stored_events(runtime: Runtime, workspace_id: uuid.UUID) -> list[StripeEvent]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(StripeEvent).where(StripeEvent.workspace_id == workspace_id)
        )
        return list(rows)


async def reload_payment(runtime: Runtime, payment_id: uuid.UUID) -> Payment:
    async with runtime.sessionmaker() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None
        return payment


async def transitions(runtime: Runtime, payment_id: uuid.UUID) -> list[tuple[str | None, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(PaymentTransition.from_status, PaymentTransition.to_status)
            .where(PaymentTransition.payment_id == payment_id)
            .order_by(PaymentTransition.created_at, PaymentTransition.id)
        )
        return [(row[0], row[1]) for row in rows]


def intent_object(fake: FakeStripe, payment: Payment, *, status: str) -> dict[str, Any]:
    intent = fake.create_payment_intent(
        {"amount": payment.amount, "currency": payment.currency.lower()}
    )
    if status == "succeeded":
        fake.succeed_payment_intent(intent)
    else:
        intent["status"] = status
    intent["id"] = payment.stripe_payment_intent_id
    return intent


@pytest.fixture
async def workspace(client: httpx.AsyncClient, fake_stripe: FakeStripe) -> StripeWorkspace:
    return await connect_workspace(client, fake_stripe)


# --- Signatures -------------------------------------------------------------------------------


def test_verify_accepts_any_matching_v1() -> None:
    body = b'{"id":"evt_1"}'
    header = signature_header(body, ["whsec_old", "whsec_new"], 1000)
    verify_signature(body, header, "whsec_new", now=1000, tolerance_seconds=300)
    verify_signature(body, header, "whsec_old", now=1000, tolerance_seconds=300)
    with pytest.raises(SignatureInvalid) as caught:
        verify_signature(body, header, "whsec_other", now=1000, tolerance_seconds=300)
    assert caught.value.code == "signature_invalid"


def test_verify_rejects_header_without_v1() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(b"{}", "t=1000,v0=abc", "whsec_x", now=1000, tolerance_seconds=300)
    with pytest.raises(SignatureInvalid) as missing:
        verify_signature(b"{}", None, "whsec_x", now=1000, tolerance_seconds=300)
    assert missing.value.code == "signature_missing"


async def test_valid_delivery_settles_invoice(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_valid_1")
    event = fake_stripe.event(
        "payment_intent.succeeded",
        intent_object(fake_stripe, payment, status="succeeded"),
        created=now_of(clock),
    )

    response = await deliver(client, workspace, event, clock)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    stored = await stored_events(runtime, workspace.workspace_id)
    assert [row.event_id for row in stored] == [event["id"]]
    assert stored[0].processed_at is None
    assert await run_jobs(runtime) >= 1
    updated = await reload_payment(runtime, payment.id)
    assert updated.status == "succeeded"
    assert updated.stripe_charge_id is not None
    assert updated.stripe_charge_id.startswith("ch_")
    async with runtime.sessionmaker() as session:
        saved_invoice = await session.get(Invoice, invoice.id)
        assert saved_invoice is not None
        assert saved_invoice.status == "paid"
        assert saved_invoice.amount_paid == invoice.total
    processed = await stored_events(runtime, workspace.workspace_id)
    assert processed[0].processed_at is not None


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "stale", "no_header"])
async def test_rejected_delivery_stores_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    case: str,
) -> None:
    event = fake_stripe.event(
        "payment_intent.processing", {"id": "pi_x", "object": "payment_intent"}
    )
    timestamp = now_of(clock) - 301 if case == "stale" else now_of(clock)
    secret = "whsec_wrong" if case == "wrong_secret" else workspace.webhook_secret
    body, headers = signed(event, [secret], timestamp=timestamp)
    if case == "tampered":
        body = body.replace(b"pi_x", b"pi_y")
    if case == "no_header":
        del headers["Stripe-Signature"]

    response = await client.post(workspace.webhook_path, content=body, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    expected = {"stale": "signature_expired", "no_header": "signature_missing"}
    assert response.json()["code"] == expected.get(case, "signature_invalid")
    assert await stored_events(runtime, workspace.workspace_id) == []


async def test_timestamp_inside_tolerance_accepted(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    event = fake_stripe.event("plan.created", {"id": "plan_1", "object": "plan"})
    response = await deliver(client, workspace, event, clock, timestamp=now_of(clock) - 299)
    assert response.status_code == 200


async def test_several_signatures_one_valid(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    event = fake_stripe.event("plan.created", {"id": "plan_2", "object": "plan"})
    response = await deliver(
        client, workspace, event, clock, secrets=["whsec_rolled_away", workspace.webhook_secret]
    )
    assert response.status_code == 200, response.text
    assert len(await stored_events(runtime, workspace.workspace_id)) == 1


async def test_unknown_address_is_404(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    event = fake_stripe.event("plan.created", {"id": "plan_3", "object": "plan"})
    body, headers = signed(event, [workspace.webhook_secret], timestamp=now_of(clock))
    response = await client.post("/webhooks/stripe/not-a-token", content=body, headers=headers)
    assert response.status_code == 404


# --- Remembered addresses ---------------------------------------------------------------------


def account_reads(runtime: Runtime) -> list[str]:
    """Collect the statements that read a Stripe account by its webhook token."""
    reads: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM stripe_accounts" in statement and "webhook_token" in statement:
            reads.append(statement)

    sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    return reads


async def test_remembered_address_skips_lookup(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    first = fake_stripe.event("plan.created", {"id": "plan_r1", "object": "plan"})
    second = fake_stripe.event("plan.created", {"id": "plan_r2", "object": "plan"})
    assert (await deliver(client, workspace, first, clock)).status_code == 200
    reads = account_reads(runtime)

    response = await deliver(client, workspace, second, clock)

    assert response.status_code == 200, response.text
    assert reads == []
    assert len(await stored_events(runtime, workspace.workspace_id)) == 2


async def test_secret_changed_elsewhere_is_read_again(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    first = fake_stripe.event("plan.created", {"id": "plan_s1", "object": "plan"})
    assert (await deliver(client, workspace, first, clock)).status_code == 200
    # Another process stores a new signing secret, while this one remembers the old one.
    new_secret = "whsec_rotated_elsewhere"
    encrypted = runtime.cipher.encrypt_text(
        new_secret, associated_data=f"stripe-account:{workspace.workspace_id}".encode()
    )
    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(StripeAccount)
            .where(StripeAccount.workspace_id == workspace.workspace_id)
            .values(webhook_secret_encrypted=encrypted)
        )
        await session.commit()

    signed_new = fake_stripe.event("plan.created", {"id": "plan_s2", "object": "plan"})
    signed_old = fake_stripe.event("plan.created", {"id": "plan_s3", "object": "plan"})
    accepted = await deliver(client, workspace, signed_new, clock, secrets=[new_secret])
    rejected = await deliver(client, workspace, signed_old, clock)

    assert accepted.status_code == 200, accepted.text
    assert rejected.status_code == 400
    assert rejected.json()["code"] == "signature_invalid"
    stored = await stored_events(runtime, workspace.workspace_id)
    assert sorted(event.event_id for event in stored) == sorted([first["id"], signed_new["id"]])


async def test_deleted_workspace_is_404(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    first = fake_stripe.event("plan.created", {"id": "plan_d1", "object": "plan"})
    assert (await deliver(client, workspace, first, clock)).status_code == 200
    # Another process deletes the workspace, while this one remembers its address.
    async with runtime.sessionmaker() as session:
        await session.execute(sa.delete(Workspace).where(Workspace.id == workspace.workspace_id))
        await session.commit()

    later = fake_stripe.event("plan.created", {"id": "plan_d2", "object": "plan"})
    response = await deliver(client, workspace, later, clock)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored_events(runtime, workspace.workspace_id) == []


async def test_body_not_an_event_is_422(
    client: httpx.AsyncClient, clock: FrozenClock, workspace: StripeWorkspace
) -> None:
    body = b'{"object": "charge", "id": "ch_1"}'
    headers = {
        "Stripe-Signature": signature_header(body, [workspace.webhook_secret], now_of(clock))
    }
    response = await client.post(workspace.webhook_path, content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


# --- Storing once and applying by job ---------------------------------------------------------


async def test_duplicate_delivery_processed_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_dup_1")
    event = fake_stripe.event(
        "payment_intent.succeeded",
        intent_object(fake_stripe, payment, status="succeeded"),
        created=now_of(clock),
    )

    first = await deliver(client, workspace, event, clock)
    await run_jobs(runtime)
    second = await deliver(client, workspace, event, clock)
    await run_jobs(runtime)

    assert first.json()["duplicate"] is False
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert len(await stored_events(runtime, workspace.workspace_id)) == 1
    async with runtime.sessionmaker() as session:
        jobs = await session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.name == events.EVENT_JOB)
        )
    assert jobs == 1
    assert await transitions(runtime, payment.id) == [("pending", "succeeded")]


async def test_out_of_order_never_moves_back(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_order_1")
    succeeded = fake_stripe.event(
        "payment_intent.succeeded",
        intent_object(fake_stripe, payment, status="succeeded"),
        created=now_of(clock),
    )
    processing = fake_stripe.event(
        "payment_intent.processing",
        intent_object(fake_stripe, payment, status="processing"),
        created=now_of(clock) - 30,
    )

    await deliver(client, workspace, succeeded, clock)
    await run_jobs(runtime)
    await deliver(client, workspace, processing, clock)
    await run_jobs(runtime)

    updated = await reload_payment(runtime, payment.id)
    assert updated.status == "succeeded"
    assert await transitions(runtime, payment.id) == [("pending", "succeeded")]
    stored = await stored_events(runtime, workspace.workspace_id)
    assert all(row.processed_at is not None for row in stored)


async def test_failing_handler_retried_once_applied(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_fail_1")
    event = fake_stripe.event(
        "payment_intent.succeeded",
        intent_object(fake_stripe, payment, status="succeeded"),
        created=now_of(clock),
    )
    real_handler = events.HANDLERS["payment_intent.succeeded"]
    calls: list[int] = []

    async def fails_after_effects_once(
        uow: UnitOfWork, workspace_id: uuid.UUID, evt: dict[str, Any], obj: dict[str, Any]
    ) -> None:
        await real_handler(uow, workspace_id, evt, obj)
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database connection lost after the effects were written")

    monkeypatch.setitem(events.HANDLERS, "payment_intent.succeeded", fails_after_effects_once)
    await deliver(client, workspace, event, clock)

    worker = Worker(runtime, concurrency=1)
    claimed = await worker.claim(limit=1, name=events.EVENT_JOB)
    assert len(claimed) == 1
    await worker.run_batch(claimed)

    after_failure = await reload_payment(runtime, payment.id)
    assert after_failure.status == "pending"
    assert (await stored_events(runtime, workspace.workspace_id))[0].processed_at is None
    async with runtime.sessionmaker() as session:
        job = await session.scalar(sa.select(Job).where(Job.name == events.EVENT_JOB))
        assert job is not None
        assert job.status == "pending"
        assert job.last_error is not None

    clock.advance(seconds=1)  # past the retry's backoff
    await run_jobs(runtime)

    assert len(calls) == 2
    assert (await reload_payment(runtime, payment.id)).status == "succeeded"
    assert await transitions(runtime, payment.id) == [("pending", "succeeded")]
    stored = await stored_events(runtime, workspace.workspace_id)
    assert stored[0].processed_at is not None
    assert stored[0].attempts == 1


# --- Refunds and disputes ---------------------------------------------------------------------


async def test_charge_refunded_partial_then_full(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=10_000)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_ref_1", status="succeeded")
    charge = {
        "id": "ch_ref_1",
        "object": "charge",
        "amount": 10_000,
        "amount_refunded": 2_500,
        "currency": "eur",
        "payment_intent": "pi_ref_1",
        "refunds": {"object": "list", "data": [], "has_more": False},
    }
    partial = fake_stripe.event("charge.refunded", charge, created=now_of(clock))
    full = fake_stripe.event(
        "charge.refunded", {**charge, "amount_refunded": 10_000}, created=now_of(clock) + 5
    )

    await deliver(client, workspace, partial, clock)
    await run_jobs(runtime)
    middle = await reload_payment(runtime, payment.id)
    assert middle.status == "partially_refunded"
    assert middle.amount_refunded == 2_500

    await deliver(client, workspace, full, clock)
    await deliver(client, workspace, partial, clock)  # a late duplicate changes nothing
    await run_jobs(runtime)
    final = await reload_payment(runtime, payment.id)
    assert final.status == "refunded"
    assert final.amount_refunded == 10_000


async def test_refund_failed_event_keeps_reason(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=10_000)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_ref_2", status="succeeded")
    refund = {
        "id": "re_failed_1",
        "object": "refund",
        "amount": 4_000,
        "currency": "eur",
        "payment_intent": "pi_ref_2",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
        "metadata": {},
    }

    await deliver(client, workspace, fake_stripe.event("refund.failed", refund), clock)
    await run_jobs(runtime)

    async with runtime.sessionmaker() as session:
        stored = await session.scalar(sa.select(Refund).where(Refund.payment_id == payment.id))
    assert stored is not None
    assert stored.status == "failed"
    assert stored.failure_reason == "expired_or_canceled_card"
    shown = await client.get(f"/api/v1/payments/{payment.id}", headers=workspace.headers)
    assert shown.json()["refunds"][0]["failure_reason"] == "expired_or_canceled_card"
    assert (await reload_payment(runtime, payment.id)).status == "succeeded"


async def test_dispute_created_then_won(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=5_000)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_dsp_1", status="succeeded")
    dispute = {
        "id": "du_1",
        "object": "dispute",
        "amount": 5_000,
        "currency": "eur",
        "charge": "ch_dsp_1",
        "payment_intent": "pi_dsp_1",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    created = fake_stripe.event("charge.dispute.created", dispute, created=now_of(clock))
    closed = fake_stripe.event(
        "charge.dispute.closed", {**dispute, "status": "won"}, created=now_of(clock) + 60
    )
    late_update = fake_stripe.event(
        "charge.dispute.updated",
        {**dispute, "status": "under_review"},
        created=now_of(clock) + 30,
    )

    await deliver(client, workspace, created, clock)
    await run_jobs(runtime)
    assert (await reload_payment(runtime, payment.id)).status == "disputed"

    await deliver(client, workspace, closed, clock)
    await run_jobs(runtime)
    await deliver(client, workspace, late_update, clock)
    await run_jobs(runtime)
    assert (await reload_payment(runtime, payment.id)).status == "succeeded"
    assert await transitions(runtime, payment.id) == [
        ("succeeded", "disputed"),
        ("disputed", "succeeded"),
    ]


def dispute_object(intent_id: str, *, dispute_id: str, amount: int, status: str) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "eur",
        "charge": f"ch_{intent_id}",
        "payment_intent": intent_id,
        "reason": "fraudulent",
        "status": status,
    }


async def paid_by_stripe(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    *,
    intent_id: str,
    total: int,
) -> tuple[Invoice, Payment]:
    """Return an invoice that a payment_intent.succeeded event paid in full."""
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=total)
    payment = await stripe_payment(runtime, invoice, intent_id=intent_id)
    intent = intent_object(fake_stripe, payment, status="succeeded")
    await deliver(
        client,
        workspace,
        fake_stripe.event("payment_intent.succeeded", intent, created=now_of(clock) - 600),
        clock,
    )
    await run_jobs(runtime)
    return invoice, payment


async def reload_invoice(runtime: Runtime, invoice_id: uuid.UUID) -> Invoice:
    async with runtime.sessionmaker() as session:
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        return invoice


async def timeline(runtime: Runtime, invoice_id: uuid.UUID) -> list[tuple[str, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(InvoiceActivity.type, InvoiceActivity.source)
            .where(InvoiceActivity.invoice_id == invoice_id)
            .order_by(InvoiceActivity.created_at, InvoiceActivity.id)
        )
        return [(row[0], row[1]) for row in rows]


async def test_dispute_lost_reopens_invoice(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice, payment = await paid_by_stripe(
        client, runtime, clock, fake_stripe, workspace, intent_id="pi_lost_1", total=5_000
    )
    assert (await reload_invoice(runtime, invoice.id)).status == "paid"
    dispute = dispute_object(
        "pi_lost_1", dispute_id="du_lost_1", amount=5_000, status="needs_response"
    )
    created = fake_stripe.event("charge.dispute.created", dispute, created=now_of(clock))
    lost = fake_stripe.event(
        "charge.dispute.closed", {**dispute, "status": "lost"}, created=now_of(clock) + 60
    )
    late_update = fake_stripe.event(
        "charge.dispute.updated", {**dispute, "status": "under_review"}, created=now_of(clock) + 30
    )

    await deliver(client, workspace, created, clock)
    await run_jobs(runtime)
    during = await reload_invoice(runtime, invoice.id)
    assert during.status == "paid"
    assert during.amount_paid == 5_000

    await deliver(client, workspace, lost, clock)
    await run_jobs(runtime)
    await deliver(client, workspace, late_update, clock)
    await run_jobs(runtime)

    final = await reload_payment(runtime, payment.id)
    assert final.status == "dispute_lost"
    assert final.amount_charged_back == 5_000
    reopened = await reload_invoice(runtime, invoice.id)
    assert reopened.status == "open"
    assert reopened.amount_paid == 0
    assert reopened.paid_at is None
    assert await transitions(runtime, payment.id) == [
        ("pending", "succeeded"),
        ("succeeded", "disputed"),
        ("disputed", "dispute_lost"),
    ]
    entries = await timeline(runtime, invoice.id)
    assert ("dispute_lost", "webhook") in entries
    assert entries[-1] == ("status_changed", "webhook")


async def test_dispute_lost_before_created(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice, payment = await paid_by_stripe(
        client, runtime, clock, fake_stripe, workspace, intent_id="pi_lost_2", total=5_000
    )
    dispute = dispute_object("pi_lost_2", dispute_id="du_lost_2", amount=2_000, status="lost")
    closed = fake_stripe.event("charge.dispute.closed", dispute, created=now_of(clock) + 60)
    created = fake_stripe.event(
        "charge.dispute.created", {**dispute, "status": "needs_response"}, created=now_of(clock)
    )

    await deliver(client, workspace, closed, clock)
    await run_jobs(runtime)
    await deliver(client, workspace, created, clock)
    await run_jobs(runtime)

    final = await reload_payment(runtime, payment.id)
    assert final.status == "dispute_lost"
    assert final.amount_charged_back == 2_000
    partly = await reload_invoice(runtime, invoice.id)
    assert partly.status == "partially_paid"
    assert partly.amount_paid == 3_000
    assert await transitions(runtime, payment.id) == [
        ("pending", "succeeded"),
        ("succeeded", "dispute_lost"),
    ]


async def test_dispute_lost_after_partial_refund(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice, payment = await paid_by_stripe(
        client, runtime, clock, fake_stripe, workspace, intent_id="pi_lost_3", total=5_000
    )
    async with unit_of_work(runtime) as uow:
        refunded = await uow.session.get(Payment, payment.id)
        assert refunded is not None
        await events.raise_refunded(uow, refunded, 1_000, source="webhook", data={})
    # Stripe's dispute may name the whole charge; only what was not refunded is taken back.
    dispute = dispute_object("pi_lost_3", dispute_id="du_lost_3", amount=5_000, status="lost")
    await deliver(client, workspace, fake_stripe.event("charge.dispute.closed", dispute), clock)
    await run_jobs(runtime)

    final = await reload_payment(runtime, payment.id)
    assert final.status == "dispute_lost"
    assert final.amount_charged_back == 4_000
    assert (await reload_invoice(runtime, invoice.id)).amount_paid == 0


async def test_dispute_before_payment_succeeded(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=5_000)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_lost_4")
    dispute = dispute_object("pi_lost_4", dispute_id="du_lost_4", amount=5_000, status="lost")
    await deliver(client, workspace, fake_stripe.event("charge.dispute.closed", dispute), clock)
    await run_jobs(runtime)
    intent = intent_object(fake_stripe, payment, status="succeeded")
    await deliver(
        client,
        workspace,
        fake_stripe.event("payment_intent.succeeded", intent, created=now_of(clock) - 600),
        clock,
    )
    await run_jobs(runtime)

    assert (await reload_payment(runtime, payment.id)).status == "dispute_lost"
    assert (await reload_invoice(runtime, invoice.id)).amount_paid == 0


@pytest.mark.parametrize("closed_as", ["won", "warning_closed"])
async def test_dispute_kept_restores_refund_status(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
    closed_as: str,
) -> None:
    invoice, payment = await paid_by_stripe(
        client, runtime, clock, fake_stripe, workspace, intent_id="pi_kept_1", total=5_000
    )
    async with unit_of_work(runtime) as uow:
        refunded = await uow.session.get(Payment, payment.id)
        assert refunded is not None
        await events.raise_refunded(uow, refunded, 1_000, source="webhook", data={})
    dispute = dispute_object(
        "pi_kept_1", dispute_id="du_kept_1", amount=4_000, status="warning_needs_response"
    )
    await deliver(
        client,
        workspace,
        fake_stripe.event("charge.dispute.created", dispute, created=now_of(clock)),
        clock,
    )
    await deliver(
        client,
        workspace,
        fake_stripe.event(
            "charge.dispute.closed", {**dispute, "status": closed_as}, created=now_of(clock) + 60
        ),
        clock,
    )
    await run_jobs(runtime)

    final = await reload_payment(runtime, payment.id)
    assert final.status == "partially_refunded"
    assert final.amount_charged_back == 0
    assert (await reload_invoice(runtime, invoice.id)).amount_paid == 4_000


async def test_stripe_payment_reactivates_subscription(
    runtime: Runtime, clock: FrozenClock, fake_stripe: FakeStripe, workspace: StripeWorkspace
) -> None:
    now = clock.now()
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=2_000)
    async with unit_of_work(runtime) as uow:
        plan = Plan(
            workspace_id=workspace.workspace_id,
            name="Monthly",
            amount=2_000,
            currency="EUR",
            interval="month",
            created_at=now,
            updated_at=now,
        )
        uow.session.add(plan)
        await uow.session.flush()
        subscription = Subscription(
            workspace_id=workspace.workspace_id,
            plan_id=plan.id,
            gateway="manual",
            status="past_due",
            past_due_since=now,
            dunning_emails_sent=1,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(subscription)
        await uow.session.flush()
        overdue = await uow.session.get(Invoice, invoice.id)
        assert overdue is not None
        overdue.subscription_id = subscription.id
        overdue.status = "overdue"
        overdue.due_date = now.date() - timedelta(days=3)
    payment = await stripe_payment(runtime, invoice, intent_id="pi_renewal_1")
    intent = intent_object(fake_stripe, payment, status="succeeded")

    # Applied directly, so the periodic subscription job cannot be what reactivates it.
    async with unit_of_work(runtime) as uow:
        await events.apply_event(
            uow,
            workspace.workspace_id,
            fake_stripe.event("payment_intent.succeeded", intent, created=now_of(clock)),
        )

    async with runtime.sessionmaker() as session:
        current = await session.get(Subscription, subscription.id)
        assert current is not None
    assert current.status == "active"
    assert current.past_due_since is None
    assert current.dunning_emails_sent == 0
    assert (await reload_invoice(runtime, invoice.id)).status == "paid"


# --- Older API versions -----------------------------------------------------------------------


async def test_2020_payment_intent_reads_charges_list(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    old_intent = json.loads(
        (FIXTURES / "payment_intent_pi_fakefakefakefakefake0001.json").read_text()
    )
    assert "latest_charge" not in old_intent
    invoice = await issued_invoice(runtime, workspace.workspace_id, total=old_intent["amount"])
    payment = await stripe_payment(runtime, invoice, intent_id=old_intent["id"])
    event = fake_stripe.event(
        "payment_intent.succeeded", old_intent, created=now_of(clock), api_version="2020-08-27"
    )

    response = await deliver(client, workspace, event, clock)
    await run_jobs(runtime)

    assert response.status_code == 200
    updated = await reload_payment(runtime, payment.id)
    assert updated.status == "succeeded"
    assert updated.stripe_charge_id == "ch_fakefakefakefakefake0001"


async def test_2020_corpus_event_stored_and_processed(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    workspace: StripeWorkspace,
) -> None:
    raw = json.loads((FIXTURES / "event_account_updated_standard.json").read_text())
    assert raw["api_version"] == "2020-08-27"
    body = (FIXTURES / "event_account_updated_standard.json").read_bytes()
    headers = {
        "Stripe-Signature": signature_header(body, [workspace.webhook_secret], now_of(clock))
    }

    response = await client.post(workspace.webhook_path, content=body, headers=headers)
    await run_jobs(runtime)

    assert response.status_code == 200, response.text
    stored = await stored_events(runtime, workspace.workspace_id)
    assert stored[0].event_id == raw["id"]
    assert stored[0].api_version == "2020-08-27"
    assert stored[0].processed_at is not None


async def test_no_webhook_secret_is_409(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake_stripe: FakeStripe
) -> None:
    staff = await factories.owner(client)
    response = await client.put(
        "/api/v1/payments/stripe",
        headers=staff.headers,
        json={"secret_key": fake_stripe.new_secret_key()},
    )
    path = "/" + response.json()["webhook_url"].split("/", 3)[3]
    event = fake_stripe.event("plan.created", {"id": "plan_4", "object": "plan"})
    body, headers = signed(event, ["whsec_any"], timestamp=now_of(clock))
    rejected = await client.post(path, content=body, headers=headers)
    assert rejected.status_code == 409
    assert rejected.json()["code"] == "webhook_secret_missing"


async def test_subscription_events_ordered_by_created(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    fake_stripe: FakeStripe,
    workspace: StripeWorkspace,
) -> None:
    pytest.importorskip("frontdesk.payments.subscription_stripe")
    old_shape = json.loads(
        (FIXTURES / "subscription_sub_fakefakefakefakefake0001.json").read_text()
    )
    now = clock.now()
    async with unit_of_work(runtime) as uow:
        plan = Plan(
            workspace_id=workspace.workspace_id,
            name="Monthly",
            amount=2_000,
            currency="EUR",
            interval="month",
            created_at=now,
            updated_at=now,
        )
        uow.session.add(plan)
        await uow.session.flush()
        subscription = Subscription(
            workspace_id=workspace.workspace_id,
            plan_id=plan.id,
            gateway="stripe",
            status="incomplete",
            stripe_subscription_id=old_shape["id"],
            created_at=now,
            updated_at=now,
        )
        uow.session.add(subscription)
    newer = fake_stripe.event(
        "customer.subscription.updated",
        {**old_shape, "status": "past_due"},
        created=now_of(clock),
        api_version="2020-08-27",
    )
    older = fake_stripe.event(
        "customer.subscription.updated",
        {**old_shape, "status": "active"},
        created=now_of(clock) - 60,
        api_version="2020-08-27",
    )

    await deliver(client, workspace, newer, clock)
    await run_jobs(runtime)
    await deliver(client, workspace, older, clock)
    await run_jobs(runtime)

    async with runtime.sessionmaker() as session:
        mirrored = await session.get(Subscription, subscription.id)
    assert mirrored is not None
    assert mirrored.status == "past_due"
    assert mirrored.stripe_updated == newer["created"]
    assert mirrored.current_period_end is not None
    assert (
        int(mirrored.current_period_end.replace(tzinfo=UTC).timestamp())
        == (old_shape["current_period_end"])
    )
