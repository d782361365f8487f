"""Manual payments, refunds, cancel and confirm through the API, and the status machine."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, get_args

import httpx
import pytest

from factories import Staff, count_rows, cursor_listener, events_named, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.uow import unit_of_work
from frontdesk.payments import payments
from frontdesk.payments.models import Invoice, Payment
from frontdesk.payments.schemas import PaymentStatus
from frontdesk.runtime import Runtime

API = "/api/v1"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 5, 20, 12, 0, tzinfo=UTC))


async def issued_invoice(
    client: httpx.AsyncClient, staff: Staff, unit_price: int = 10000
) -> dict[str, Any]:
    enquiry = await client.post(
        f"{API}/enquiries",
        headers=staff.headers,
        json={
            "message": "Quote",
            "contact": {"name": "Ana", "email": f"a-{uuid.uuid4().hex[:6]}@example.org"},
        },
    )
    draft = await client.post(
        f"{API}/invoices",
        headers=staff.headers,
        json={
            "contact_id": enquiry.json()["contact"]["id"],
            "currency": "EUR",
            "lines": [{"description": "Shoot", "unit_price": unit_price}],
        },
    )
    assert draft.status_code == 201, draft.text
    issued = await client.post(f"{API}/invoices/{draft.json()['id']}/issue", headers=staff.headers)
    assert issued.status_code == 200, issued.text
    body: dict[str, Any] = issued.json()
    return body


async def pay(
    client: httpx.AsyncClient, staff: Staff, invoice_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{API}/invoices/{invoice_id}/payments",
        headers=staff.headers,
        json={"method": "bank_transfer", **body},
    )


async def invoice_of(client: httpx.AsyncClient, staff: Staff, invoice_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"{API}/invoices/{invoice_id}", headers=staff.headers)
    ).json()
    return body


def problem(
    response: httpx.Response, status: int, field: str | None = None, code: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert [error["field"] for error in response.json()["errors"]] == [field]
    if code is not None:
        assert response.json()["code"] == code


async def test_partial_then_full_payment(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)

    first = await pay(
        client, staff, invoice["id"], amount=4000, reference="TRX-1", paid_on="2026-05-18"
    )
    partly = await invoice_of(client, staff, invoice["id"])
    second = await pay(client, staff, invoice["id"], amount=6000, method="cash")
    paid = await invoice_of(client, staff, invoice["id"])

    assert first.status_code == 201, first.text
    payment = first.json()
    assert payment["gateway"] == "manual"
    assert payment["status"] == "succeeded"
    assert payment["paid_on"] == "2026-05-18"
    assert payment["reference"] == "TRX-1"
    assert payment["currency"] == "EUR"
    assert payment["currency_exponent"] == 2
    assert [(t["from_status"], t["to_status"], t["source"]) for t in payment["transitions"]] == [
        (None, "succeeded", "staff")
    ]
    assert payment["transitions"][0]["actor_id"] == str(staff.user_id)
    assert (partly["status"], partly["amount_paid"], partly["amount_due"]) == (
        "partially_paid",
        4000,
        6000,
    )
    assert second.json()["paid_on"] == "2026-05-20"
    assert (paid["status"], paid["amount_paid"], paid["amount_due"]) == ("paid", 10000, 0)
    listed = (
        await client.get(f"{API}/invoices/{invoice['id']}/payments", headers=staff.headers)
    ).json()
    assert [item["amount"] for item in listed["items"]] == [4000, 6000]
    timeline = (
        await client.get(f"{API}/invoices/{invoice['id']}/timeline", headers=staff.headers)
    ).json()
    types = [item["type"] for item in timeline["items"]]
    assert types.count("payment_recorded") == 2
    assert len(await events_named(runtime, "payment.created")) == 2
    assert len(await events_named(runtime, "invoice.paid")) == 1
    paid_event = (await events_named(runtime, "invoice.paid"))[0]
    assert paid_event.data["amount_paid"] == 10000
    assert paid_event.audience == "staff"


async def test_payment_checks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    other = await owner(client)
    invoice = await issued_invoice(client, staff)
    draft = await client.post(
        f"{API}/invoices",
        headers=staff.headers,
        json={"contact_id": invoice["contact_id"], "lines": []},
    )

    too_much = await pay(client, staff, invoice["id"], amount=10001)
    zero = await pay(client, staff, invoice["id"], amount=0)
    fraction = await pay(client, staff, invoice["id"], amount=10.5)
    future = await pay(client, staff, invoice["id"], amount=100, paid_on="2026-05-21")
    method = await pay(client, staff, invoice["id"], amount=100, method="cheque")
    on_draft = await pay(client, staff, draft.json()["id"], amount=100)
    foreign = await pay(client, other, invoice["id"], amount=100)

    problem(too_much, 422, "amount")
    problem(zero, 422, "amount")
    problem(fraction, 422, "amount")
    problem(future, 422, "paid_on")
    problem(method, 422, "method")
    problem(on_draft, 409, code="invoice_not_issued")
    problem(foreign, 404)
    assert await count_rows(runtime, Payment) == 0
    assert (await invoice_of(client, staff, invoice["id"]))["amount_paid"] == 0

    over = await pay(client, staff, invoice["id"], amount=12000, allow_overpayment=True)
    assert over.status_code == 201
    after = await invoice_of(client, staff, invoice["id"])
    assert (after["status"], after["amount_due"], after["amount_overpaid"]) == ("paid", 0, 2000)


async def test_refunds_move_payment_and_invoice(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    other = await owner(client)
    invoice = await issued_invoice(client, staff)
    payment = (await pay(client, staff, invoice["id"], amount=10000)).json()
    refunds = f"{API}/payments/{payment['id']}/refunds"

    partial = await client.post(
        refunds, headers=staff.headers, json={"amount": 3000, "reason": "Late"}
    )
    after_partial = await invoice_of(client, staff, invoice["id"])
    too_much = await client.post(refunds, headers=staff.headers, json={"amount": 7001})
    foreign = await client.post(refunds, headers=other.headers, json={"amount": 1})
    second = await client.post(refunds, headers=staff.headers, json={"amount": 2000})
    rest = await client.post(refunds, headers=staff.headers, json={})
    after_full = await invoice_of(client, staff, invoice["id"])
    again = await client.post(refunds, headers=staff.headers, json={"amount": 1})

    assert partial.status_code == 201, partial.text
    assert partial.json()["status"] == "partially_refunded"
    assert partial.json()["amount_refunded"] == 3000
    assert partial.json()["refunds"][0]["status"] == "succeeded"
    assert partial.json()["refunds"][0]["reason"] == "Late"
    assert (after_partial["status"], after_partial["amount_paid"]) == ("partially_paid", 7000)
    problem(too_much, 422, "amount")
    problem(foreign, 404)
    assert second.json()["status"] == "partially_refunded"
    assert second.json()["amount_refunded"] == 5000
    assert rest.json()["status"] == "refunded"
    assert [r["amount"] for r in rest.json()["refunds"]] == [3000, 2000, 5000]
    assert [t["to_status"] for t in rest.json()["transitions"]] == [
        "succeeded",
        "partially_refunded",
        "refunded",
    ]
    assert (after_full["status"], after_full["amount_paid"]) == ("open", 0)
    problem(again, 409, code="payment_not_refundable")
    assert len(await events_named(runtime, "payment.refunded")) == 1
    fetched = await client.get(f"{API}/payments/{payment['id']}", headers=staff.headers)
    assert fetched.json() == rest.json()


async def test_pending_payment_cancel_and_confirm(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)

    cheque = (
        await pay(client, staff, invoice["id"], amount=6000, method="other", status="pending")
    ).json()
    blocked = await pay(client, staff, invoice["id"], amount=5000)
    pending_view = await invoice_of(client, staff, invoice["id"])
    canceled = await client.post(f"{API}/payments/{cheque['id']}/cancel", headers=staff.headers)
    cancel_again = await client.post(f"{API}/payments/{cheque['id']}/cancel", headers=staff.headers)
    second = (await pay(client, staff, invoice["id"], amount=10000, status="pending")).json()
    confirmed = await client.post(
        f"{API}/payments/{second['id']}/confirm",
        headers=staff.headers,
        json={"paid_on": "2026-05-19"},
    )
    cancel_settled = await client.post(
        f"{API}/payments/{second['id']}/cancel", headers=staff.headers
    )

    assert cheque["status"] == "pending"
    # A pending payment reserves its amount, so the two cannot both take the amount due.
    problem(blocked, 422, "amount")
    assert (pending_view["status"], pending_view["amount_paid"]) == ("open", 0)
    assert canceled.json()["status"] == "canceled"
    problem(cancel_again, 409, code="payment_not_pending")
    assert confirmed.json()["status"] == "succeeded"
    assert confirmed.json()["paid_on"] == "2026-05-19"
    assert [t["to_status"] for t in confirmed.json()["transitions"]] == ["pending", "succeeded"]
    assert (await invoice_of(client, staff, invoice["id"]))["status"] == "paid"
    problem(cancel_settled, 409, code="payment_not_pending")


async def test_void_invoice_takes_no_payment(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    voided = await client.post(f"{API}/invoices/{invoice['id']}/void", headers=staff.headers)
    assert voided.status_code == 200

    response = await pay(client, staff, invoice["id"], amount=100)

    problem(response, 409, code="invoice_void")


async def test_uncollectible_paid_later(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    await client.post(f"{API}/invoices/{invoice['id']}/mark-uncollectible", headers=staff.headers)

    partial = await pay(client, staff, invoice["id"], amount=4000)
    still = await invoice_of(client, staff, invoice["id"])
    rest = await pay(client, staff, invoice["id"], amount=6000)
    paid = await invoice_of(client, staff, invoice["id"])

    assert partial.status_code == 201
    assert still["status"] == "uncollectible"
    assert rest.status_code == 201
    assert paid["status"] == "paid"


@pytest.mark.parametrize(
    ("start", "target", "moves"),
    [
        ("pending", "processing", True),
        ("processing", "succeeded", True),
        ("failed", "succeeded", True),
        ("succeeded", "disputed", True),
        ("disputed", "succeeded", True),
        ("disputed", "dispute_lost", True),
        ("succeeded", "dispute_lost", True),
        ("partially_refunded", "dispute_lost", True),
        ("dispute_lost", "succeeded", False),
        ("dispute_lost", "disputed", False),
        ("refunded", "dispute_lost", False),
        ("pending", "dispute_lost", False),
        ("succeeded", "processing", False),
        ("succeeded", "pending", False),
        ("succeeded", "failed", False),
        ("succeeded", "succeeded", False),
        ("refunded", "succeeded", False),
        ("canceled", "succeeded", False),
        ("pending", "teleported", False),
    ],
)
async def test_transition_moves_only_forward(
    client: httpx.AsyncClient, runtime: Runtime, start: str, target: str, moves: bool
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    payment_id = (await pay(client, staff, invoice["id"], amount=100, status="pending")).json()[
        "id"
    ]

    async with unit_of_work(runtime) as uow:
        payment = await payments.get_payment(uow, staff.workspace_id, uuid.UUID(payment_id))
        payment.status = start
        moved = await payments.transition(
            uow, payment, target, source="webhook", data={"event": "evt_1"}
        )
        status = payment.status

    assert moved is moves
    assert status == (target if moves else start)
    view = (await client.get(f"{API}/payments/{payment_id}", headers=staff.headers)).json()
    recorded = [(t["from_status"], t["to_status"], t["source"]) for t in view["transitions"]]
    expected = [(None, "pending", "staff")] + ([(start, target, "webhook")] if moves else [])
    assert recorded == expected
    assert date.fromisoformat(view["created_at"][:10]) == date(2026, 5, 20)


async def test_lists_use_fixed_query_count(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff, unit_price=100000)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The event publisher reads the events table after commits; that is not the request.
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" not in statement:
            statements.append(statement)

    async def measure(path: str) -> int:
        statements.clear()
        with cursor_listener(runtime, count):
            response = await client.get(path, headers=staff.headers)
        assert response.status_code == 200, response.text
        return len(statements)

    async def add_payments(total: int) -> None:
        for _ in range(total):
            payment = (await pay(client, staff, invoice["id"], amount=100)).json()
            refunded = await client.post(
                f"{API}/payments/{payment['id']}/refunds",
                headers=staff.headers,
                json={"amount": 10},
            )
            assert refunded.status_code == 201

    await add_payments(1)
    payments_few = await measure(f"{API}/invoices/{invoice['id']}/payments")
    invoices_few = await measure(f"{API}/invoices")
    await add_payments(4)
    for _ in range(4):
        await issued_invoice(client, staff)
    payments_many = await measure(f"{API}/invoices/{invoice['id']}/payments")
    invoices_many = await measure(f"{API}/invoices")

    assert payments_many == payments_few
    assert invoices_many == invoices_few


def test_schema_lists_every_payment_status() -> None:
    assert set(get_args(PaymentStatus)) == set(payments.TRANSITIONS)


async def test_void_with_pending_payment_conflicts(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    pending = await pay(client, staff, invoice["id"], amount=4000, status="pending")
    assert pending.status_code == 201, pending.text
    url = f"{API}/invoices/{invoice['id']}/void"

    rejected = await client.post(url, headers=staff.headers)
    canceled = await client.post(
        f"{API}/payments/{pending.json()['id']}/cancel", headers=staff.headers
    )
    voided = await client.post(url, headers=staff.headers)

    problem(rejected, 409, code="payment_pending")
    assert canceled.status_code == 200, canceled.text
    assert voided.status_code == 200, voided.text


async def test_void_partially_credited_conflicts(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    credited = await client.post(
        f"{API}/invoices/{invoice['id']}/credit-notes", json={"amount": 1000}, headers=staff.headers
    )
    assert credited.status_code == 201, credited.text

    response = await client.post(f"{API}/invoices/{invoice['id']}/void", headers=staff.headers)

    problem(response, 409, code="invoice_partially_paid")
    assert (await invoice_of(client, staff, invoice["id"]))["status"] == "partially_paid"


async def test_confirm_on_void_invoice_conflicts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)
    pending = await pay(client, staff, invoice["id"], amount=4000, status="pending")
    # A void invoice with a pending payment, as voiding allowed before it checked payments.
    async with unit_of_work(runtime) as uow:
        stored = await uow.session.get(Invoice, uuid.UUID(invoice["id"]))
        assert stored is not None
        stored.status = "void"

    response = await client.post(
        f"{API}/payments/{pending.json()['id']}/confirm", json={}, headers=staff.headers
    )

    problem(response, 409, code="invoice_void")
    assert (await invoice_of(client, staff, invoice["id"]))["amount_paid"] == 0


@pytest.mark.parametrize(
    ("paid_on", "code", "message"),
    [
        ("2026-02-30", "date_parsing", "Send a valid date as ISO 8601 text, such as 2026-05-20."),
        ("1899-12-31", "out_of_range", "Use a date from 1900-01-01 on."),
        (0, "date_type", "Send a valid date as ISO 8601 text, such as 2026-05-20."),
    ],
)
async def test_invalid_paid_on_rejected(
    client: httpx.AsyncClient, paid_on: Any, code: str, message: str
) -> None:
    staff = await owner(client)
    invoice = await issued_invoice(client, staff)

    response = await pay(client, staff, invoice["id"], amount=100, paid_on=paid_on)

    problem(response, 422, field="paid_on", code="validation_failed")
    [error] = response.json()["errors"]
    assert (error["code"], error["message"]) == (code, message)
    assert (await invoice_of(client, staff, invoice["id"]))["amount_paid"] == 0
