"""Plans and manual subscriptions through the API, with the scheduler's runs in between."""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_jobs
from factories import Staff, member, owner
from frontdesk.core.clock import FrozenClock, iso_utc
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.payments.models import Invoice, InvoiceLine, PaymentSettings, Plan, Subscription
from frontdesk.payments.money import round_half_up
from frontdesk.payments.periods import boundary
from frontdesk.payments.subscription_jobs import run_subscriptions
from frontdesk.payments.subscriptions import next_period, unused_share
from frontdesk.runtime import Runtime

START = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
PLAN = {"name": "Studio care", "amount": 2500, "currency": "eur", "interval": "month"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The tests move the clock by months; the staff's login must outlast that.
    year = 365 * 24 * 3600
    return {"access_token_ttl_seconds": year, "refresh_token_ttl_seconds": year}


async def make_contact(client: httpx.AsyncClient, staff: Staff, email: str | None = None) -> str:
    response = await client.post(
        "/api/v1/enquiries",
        headers=staff.headers,
        json={
            "message": "Monthly care please.",
            "contact": {
                "name": "Camille",
                "email": email or f"c-{uuid.uuid4().hex[:8]}@example.org",
            },
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["contact"]["id"])


async def make_plan(client: httpx.AsyncClient, staff: Staff, **values: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/plans", headers=staff.headers, json={**PLAN, **values})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def subscribe(
    client: httpx.AsyncClient, staff: Staff, plan_id: str, contact_id: str, **values: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/subscriptions",
        headers=staff.headers,
        json={"contact_id": contact_id, "plan_id": plan_id, "gateway": "manual", **values},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def invoices_of(runtime: Runtime, subscription_id: str) -> list[Invoice]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(Invoice)
            .where(Invoice.subscription_id == uuid.UUID(subscription_id))
            .order_by(Invoice.created_at, Invoice.id)
        )
        return list(rows)


async def run(runtime: Runtime) -> dict[str, int]:
    async with unit_of_work(runtime) as uow:
        return await run_subscriptions(uow)


async def fetch(client: httpx.AsyncClient, staff: Staff, subscription_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/subscriptions/{subscription_id}", headers=staff.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def event_names(runtime: Runtime, workspace_id: uuid.UUID) -> list[str]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(Event.name)
            .where(Event.workspace_id == workspace_id, Event.name.like("subscription.%"))
            .order_by(Event.id)
        )
        return list(rows)


# --- Plans ----------------------------------------------------------------------------------


async def test_plan_validation(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cases = [
        ({"interval": "year", "interval_count": 4}, "interval_count"),
        ({"interval": "day"}, "interval"),
        ({"amount": 0}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"tax_rate": "abc"}, "tax_rate"),
        ({"tax_rate": "100.5"}, "tax_rate"),
        ({"tax_rate": "7.12345"}, "tax_rate"),
        ({"trial_days": 731}, "trial_days"),
        ({"name": "   "}, "name"),
        # Whole numbers must be JSON integers.
        ({"amount": True}, "amount"),
        ({"amount": "3000"}, "amount"),
        ({"amount": 3000.0}, "amount"),
        ({"interval_count": True}, "interval_count"),
        ({"trial_days": "7"}, "trial_days"),
        ({"name": "\u200b"}, "name"),
    ]
    for values, field in cases:
        response = await client.post(
            "/api/v1/plans", headers=staff.headers, json={**PLAN, **values}
        )
        assert response.status_code == 422, (values, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in response.json()["errors"]], response.text
    listed = await client.get("/api/v1/plans", headers=staff.headers)
    assert listed.json()["items"] == []


async def test_plan_created_normalized(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff, tax_rate="20.50", interval="year", interval_count=3)
    assert plan["currency"] == "EUR"
    assert plan["tax_rate"] == "20.5"
    assert plan["interval_count"] == 3
    assert plan["archived"] is False


async def test_agent_reads_admin_changes_plans(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    plan = await make_plan(client, staff)
    denied = await client.post("/api/v1/plans", headers=agent.headers, json=PLAN)
    assert denied.status_code == 403
    read = await client.get(f"/api/v1/plans/{plan['id']}", headers=agent.headers)
    assert read.status_code == 200
    assert read.json()["name"] == PLAN["name"]


async def test_used_plan_archived_not_deleted(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    used = await make_plan(client, staff)
    unused = await make_plan(client, staff, name="Unused")
    contact_id = await make_contact(client, staff)
    await subscribe(client, staff, used["id"], contact_id)

    changed = await client.patch(
        f"/api/v1/plans/{used['id']}", headers=staff.headers, json={"amount": 3000}
    )
    assert changed.status_code == 409
    assert changed.json()["code"] == "plan_in_use"
    renamed = await client.patch(
        f"/api/v1/plans/{used['id']}", headers=staff.headers, json={"name": "Care+"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Care+"

    archived = await client.delete(f"/api/v1/plans/{used['id']}", headers=staff.headers)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    deleted = await client.delete(f"/api/v1/plans/{unused['id']}", headers=staff.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/plans/{unused['id']}", headers=staff.headers)
    assert gone.status_code == 404

    active = await client.get("/api/v1/plans", headers=staff.headers)
    assert active.json()["items"] == []
    everything = await client.get(
        "/api/v1/plans", headers=staff.headers, params={"include_archived": "true"}
    )
    assert [item["id"] for item in everything.json()["items"]] == [used["id"]]

    other_contact = await make_contact(client, staff)
    refused = await client.post(
        "/api/v1/subscriptions",
        headers=staff.headers,
        json={"contact_id": other_contact, "plan_id": used["id"]},
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "plan_id"


# --- Manual renewals ------------------------------------------------------------------------


async def test_first_invoice_and_month_end_renewals(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff, tax_rate="20")
    address = f"renewals-{uuid.uuid4().hex[:8]}@example.org"
    contact_id = await make_contact(client, staff, address)
    subscription = await subscribe(client, staff, plan["id"], contact_id)

    assert subscription["status"] == "active"
    assert subscription["current_period_start"] == iso_utc(START)
    assert subscription["current_period_end"] == iso_utc(datetime(2026, 2, 28, 10, tzinfo=UTC))
    first = await invoices_of(runtime, subscription["id"])
    assert len(first) == 1
    assert first[0].status == "open"
    assert first[0].number
    assert first[0].total == 3000
    assert first[0].contact_id == uuid.UUID(contact_id)
    async with runtime.sessionmaker() as session:
        lines = list(
            await session.scalars(
                sa.select(InvoiceLine).where(InvoiceLine.invoice_id == first[0].id)
            )
        )
    assert [(line.unit_price, line.tax_rate) for line in lines] == [(2500, "20")]
    assert "Studio care" in lines[0].description

    # The invoice email with its PDF goes out by a job after the commit.
    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        sent = list(
            await session.scalars(
                sa.select(EmailMessage).where(
                    EmailMessage.kind == "invoice_sent", EmailMessage.to_address == address
                )
            )
        )
    assert len(sent) == 1
    assert first[0].number in sent[0].subject

    # Not due yet: nothing happens.
    clock.set(datetime(2026, 2, 28, 9, 59, tzinfo=UTC))
    await run(runtime)
    assert len(await invoices_of(runtime, subscription["id"])) == 1

    clock.set(datetime(2026, 2, 28, 10, 0, tzinfo=UTC))
    await run(runtime)
    await run(runtime)
    renewed = await fetch(client, staff, subscription["id"])
    assert renewed["current_period_start"] == iso_utc(datetime(2026, 2, 28, 10, tzinfo=UTC))
    # Anchored to the 31st: March ends on the 31st again, not the 28th.
    assert renewed["current_period_end"] == iso_utc(datetime(2026, 3, 31, 10, tzinfo=UTC))
    assert len(await invoices_of(runtime, subscription["id"])) == 2

    names = await event_names(runtime, staff.workspace_id)
    assert names.count("subscription.created") == 1
    assert names.count("subscription.renewed") == 2


async def test_missed_periods_each_invoiced(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff, interval="week", interval_count=2)
    subscription = await subscribe(client, staff, plan["id"], await make_contact(client, staff))

    clock.set(START + timedelta(weeks=6, hours=1))
    await run(runtime)

    invoices = await invoices_of(runtime, subscription["id"])
    assert len(invoices) == 4
    assert len({invoice.number for invoice in invoices}) == 4
    current = await fetch(client, staff, subscription["id"])
    assert current["current_period_start"] == iso_utc(START + timedelta(weeks=6))


async def test_trial_then_active(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff, trial_days=14)
    subscription = await subscribe(client, staff, plan["id"], await make_contact(client, staff))
    assert subscription["status"] == "trialing"
    assert subscription["trial_end"] == iso_utc(START + timedelta(days=14))
    assert await invoices_of(runtime, subscription["id"]) == []

    clock.set(START + timedelta(days=13))
    await run(runtime)
    assert (await fetch(client, staff, subscription["id"]))["status"] == "trialing"

    clock.set(START + timedelta(days=14))
    await run(runtime)
    active = await fetch(client, staff, subscription["id"])
    assert active["status"] == "active"
    assert active["current_period_end"] == iso_utc(datetime(2026, 3, 14, 10, tzinfo=UTC))
    assert len(await invoices_of(runtime, subscription["id"])) == 1
    assert "subscription.trial_ended" in await event_names(runtime, staff.workspace_id)


async def test_future_start_date(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff)
    contact_id = await make_contact(client, staff)
    later = await subscribe(client, staff, plan["id"], contact_id, start_date="2026-02-10")
    assert later["status"] == "trialing"
    assert later["trial_end"] == iso_utc(datetime(2026, 2, 10, tzinfo=UTC))
    for start_date in ("2026-01-30", "2028-01-01"):
        response = await client.post(
            "/api/v1/subscriptions",
            headers=staff.headers,
            json={"contact_id": contact_id, "plan_id": plan["id"], "start_date": start_date},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "start_date"


async def test_cancel_at_period_end_and_now(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff)
    contact_id = await make_contact(client, staff)
    later = await subscribe(client, staff, plan["id"], contact_id)
    now = await subscribe(client, staff, plan["id"], contact_id)

    response = await client.post(
        f"/api/v1/subscriptions/{later['id']}/cancel",
        headers=staff.headers,
        json={"at_period_end": True},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["cancel_at_period_end"] is True
    response = await client.post(
        f"/api/v1/subscriptions/{now['id']}/cancel", headers=staff.headers, json={}
    )
    assert response.json()["status"] == "canceled"

    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    await run(runtime)
    ended = await fetch(client, staff, later["id"])
    assert ended["status"] == "canceled"
    assert ended["canceled_at"] == iso_utc(datetime(2026, 2, 28, 10, tzinfo=UTC))
    assert len(await invoices_of(runtime, later["id"])) == 1
    assert len(await invoices_of(runtime, now["id"])) == 1

    again = await client.post(f"/api/v1/subscriptions/{now['id']}/pause", headers=staff.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "subscription_ended"


async def test_pause_skips_invoices_until_resumed(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff)
    subscription = await subscribe(client, staff, plan["id"], await make_contact(client, staff))
    path = f"/api/v1/subscriptions/{subscription['id']}"

    paused = await client.post(f"{path}/pause", headers=staff.headers)
    assert paused.json()["status"] == "paused"
    twice = await client.post(f"{path}/pause", headers=staff.headers)
    assert twice.status_code == 409

    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    await run(runtime)
    assert len(await invoices_of(runtime, subscription["id"])) == 1
    assert (await fetch(client, staff, subscription["id"]))["current_period_end"] == (
        iso_utc(datetime(2026, 3, 31, 10, tzinfo=UTC))
    )

    resumed = await client.post(f"{path}/resume", headers=staff.headers)
    assert resumed.json()["status"] == "active"
    not_paused = await client.post(f"{path}/resume", headers=staff.headers)
    assert not_paused.status_code == 409

    clock.set(datetime(2026, 3, 31, 10, tzinfo=UTC))
    await run(runtime)
    assert len(await invoices_of(runtime, subscription["id"])) == 2


async def save_dunning_settings(runtime: Runtime, staff: Staff) -> None:
    """Store settings with 7 payment days and dunning emails 1 and 3 days after past due."""
    async with runtime.sessionmaker() as session:
        session.add(
            PaymentSettings(
                workspace_id=staff.workspace_id,
                invoice_number_pattern="INV-{seq}",
                credit_note_number_pattern="CN-{seq}",
                default_currency="EUR",
                payment_terms_days=7,
                reminder_days=[],
                business_details={},
                bank_details="",
                branding={},
                dunning_days=[1, 3],
                created_at=START,
                updated_at=START,
            )
        )
        await session.commit()


async def emails_of(runtime: Runtime, kind: str, address: str) -> list[EmailMessage]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(EmailMessage).where(
                EmailMessage.kind == kind, EmailMessage.to_address == address
            )
        )
        return list(rows)


async def test_past_due_dunning_and_recovery(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_dunning_settings(runtime, staff)
    plan = await make_plan(client, staff)
    address = f"payer-{uuid.uuid4().hex[:8]}@example.org"
    subscription = await subscribe(
        client, staff, plan["id"], await make_contact(client, staff, address)
    )
    [invoice] = await invoices_of(runtime, subscription["id"])
    assert invoice.due_date == date(2026, 2, 7)

    clock.set(datetime(2026, 2, 7, 12, tzinfo=UTC))
    await run(runtime)
    assert (await fetch(client, staff, subscription["id"]))["status"] == "active"

    overdue_at = datetime(2026, 2, 8, 12, tzinfo=UTC)
    clock.set(overdue_at)
    await run(runtime)
    current = await fetch(client, staff, subscription["id"])
    assert current["status"] == "past_due"
    assert current["past_due_since"] == iso_utc(overdue_at)
    assert current["dunning_emails_sent"] == 0

    async def dunning_emails() -> list[EmailMessage]:
        async with runtime.sessionmaker() as session:
            rows = await session.scalars(
                sa.select(EmailMessage).where(
                    EmailMessage.kind == "subscription_dunning", EmailMessage.to_address == address
                )
            )
            return list(rows)

    clock.set(overdue_at + timedelta(days=1))
    await run(runtime)
    await run(runtime)
    emails = await dunning_emails()
    assert len(emails) == 1
    assert invoice.number is not None and invoice.number in emails[0].text_body
    assert "25.00 EUR" in emails[0].text_body

    clock.set(overdue_at + timedelta(days=2))
    await run(runtime)
    assert len(await dunning_emails()) == 1
    clock.set(overdue_at + timedelta(days=3))
    await run(runtime)
    await run(runtime)
    assert len(await dunning_emails()) == 2
    assert (await fetch(client, staff, subscription["id"]))["dunning_emails_sent"] == 2
    clock.set(overdue_at + timedelta(days=9))
    await run(runtime)
    assert len(await dunning_emails()) == 2

    # Paid, as the invoice core records a payment.
    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(Invoice)
            .where(Invoice.id == invoice.id)
            .values(status="paid", amount_paid=2500)
        )
        await session.commit()
    await run(runtime)
    recovered = await fetch(client, staff, subscription["id"])
    assert recovered["status"] == "active"
    assert recovered["past_due_since"] is None
    assert recovered["dunning_emails_sent"] == 0
    names = await event_names(runtime, staff.workspace_id)
    assert names.count("subscription.dunning_email_sent") == 2
    assert "subscription.recovered" in names


async def test_payment_reactivates_past_due_at_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_dunning_settings(runtime, staff)
    plan = await make_plan(client, staff)
    address = f"late-{uuid.uuid4().hex[:8]}@example.org"
    subscription = await subscribe(
        client, staff, plan["id"], await make_contact(client, staff, address)
    )
    [first] = await invoices_of(runtime, subscription["id"])
    # The first period ends on February 28, so the renewal invoice is issued then and due
    # on March 7; both invoices are overdue on March 8.
    overdue_at = datetime(2026, 3, 8, 12, tzinfo=UTC)
    clock.set(overdue_at)
    await run(runtime)
    first_invoice, renewal = await invoices_of(runtime, subscription["id"])
    assert first_invoice.id == first.id
    assert (await fetch(client, staff, subscription["id"]))["status"] == "past_due"
    clock.set(overdue_at + timedelta(days=1))
    await run(runtime)
    assert len(await emails_of(runtime, "subscription_dunning", address)) == 1

    async def pay(invoice: Invoice) -> None:
        response = await client.post(
            f"/api/v1/invoices/{invoice.id}/payments",
            headers=staff.headers,
            json={"amount": invoice.total, "method": "bank_transfer"},
        )
        assert response.status_code == 201, response.text

    # The renewal is paid but the first invoice is still overdue.
    await pay(renewal)
    assert (await fetch(client, staff, subscription["id"]))["status"] == "past_due"

    await pay(first_invoice)
    current = await fetch(client, staff, subscription["id"])
    assert current["status"] == "active"
    assert current["past_due_since"] is None
    assert current["dunning_emails_sent"] == 0

    clock.set(overdue_at + timedelta(days=3))
    await run(runtime)
    assert len(await emails_of(runtime, "subscription_dunning", address)) == 1
    names = await event_names(runtime, staff.workspace_id)
    assert names.count("subscription.recovered") == 1


async def test_void_reactivates_past_due_at_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_dunning_settings(runtime, staff)
    plan = await make_plan(client, staff)
    subscription = await subscribe(client, staff, plan["id"], await make_contact(client, staff))
    [invoice] = await invoices_of(runtime, subscription["id"])
    clock.set(datetime(2026, 2, 8, 12, tzinfo=UTC))
    await run(runtime)
    assert (await fetch(client, staff, subscription["id"]))["status"] == "past_due"

    response = await client.post(f"/api/v1/invoices/{invoice.id}/void", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert (await fetch(client, staff, subscription["id"]))["status"] == "active"


async def test_change_plan_prorated(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    basic = await make_plan(client, staff, amount=2800, interval="week", interval_count=4)
    premium = await make_plan(client, staff, amount=5600, interval="week", interval_count=4)
    dollars = await make_plan(client, staff, currency="USD", interval="week", interval_count=4)
    subscription = await subscribe(client, staff, basic["id"], await make_contact(client, staff))
    path = f"/api/v1/subscriptions/{subscription['id']}/change-plan"

    for plan, code in (
        (dollars, "currency_mismatch"),
        (basic, "unchanged"),
    ):
        response = await client.post(
            path, headers=staff.headers, json={"plan_id": plan["id"], "proration": True}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["code"] == code

    # A quarter of the 28-day period is used, so three quarters of the difference are owed.
    clock.set(START + timedelta(days=7))
    response = await client.post(
        path, headers=staff.headers, json={"plan_id": premium["id"], "proration": True}
    )
    assert response.status_code == 200, response.text
    assert response.json()["plan_id"] == premium["id"]
    invoices = await invoices_of(runtime, subscription["id"])
    assert [invoice.total for invoice in invoices] == [2800, 2100]

    back = await client.post(
        path, headers=staff.headers, json={"plan_id": basic["id"], "proration": True}
    )
    assert back.status_code == 200
    # A cheaper plan owes nothing now; no invoice for a negative difference.
    assert len(await invoices_of(runtime, subscription["id"])) == 2

    clock.set(START + timedelta(days=28))
    await run(runtime)
    assert [invoice.total for invoice in await invoices_of(runtime, subscription["id"])] == [
        2800,
        2100,
        2800,
    ]


# --- Plan changes to another interval ---------------------------------------------------------


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 10, tzinfo=UTC)


@dataclass(frozen=True)
class IntervalChange:
    created: datetime
    old: dict[str, Any]
    new: dict[str, Any]
    changed: datetime
    # The end of the period the change starts, then of each period after it.
    ends: list[datetime]
    # The totals of the first invoice and of the new period's invoice.
    totals: list[int]


WEEKLY = {"amount": 700, "interval": "week"}
MONTHLY = {"amount": 3000, "interval": "month"}
INTERVAL_CHANGES = {
    # A change at the start of a week credits the whole week, 700.
    "week_to_month_end": IntervalChange(
        created=at(2026, 1, 31),
        old=WEEKLY,
        new={"amount": 3100, "interval": "month"},
        changed=at(2026, 1, 31),
        ends=[at(2026, 2, 28), at(2026, 3, 31), at(2026, 4, 30)],
        totals=[700, 2400],
    ),
    # One day of seven unused: a credit of 100. The anchor on the 31st gives February 29.
    "week_to_month_leap_year": IntervalChange(
        created=at(2028, 1, 25),
        old=WEEKLY,
        new={"amount": 3100, "interval": "month"},
        changed=at(2028, 1, 31),
        ends=[at(2028, 2, 29), at(2028, 3, 31), at(2028, 4, 30)],
        totals=[700, 3000],
    ),
    # Half of the month unused is 1500, capped at the new period's 1000.
    "month_to_two_weeks": IntervalChange(
        created=at(2026, 1, 31),
        old=MONTHLY,
        new={"amount": 1000, "interval": "week", "interval_count": 2},
        changed=at(2026, 2, 14),
        ends=[at(2026, 2, 28), at(2026, 3, 14), at(2026, 3, 28)],
        totals=[3000, 0],
    ),
    # The worked example of docs/payments.md: 21 of 31 days unused, 3000 * 21 / 31 = 2032.
    "month_to_year": IntervalChange(
        created=at(2026, 3, 1),
        old=MONTHLY,
        new={"amount": 30000, "interval": "year"},
        changed=at(2026, 3, 11),
        ends=[at(2027, 3, 11), at(2028, 3, 11)],
        totals=[3000, 27968],
    ),
    # An anchor on February 29 gives February 28 until the next leap year.
    "month_to_year_on_leap_day": IntervalChange(
        created=at(2028, 2, 1),
        old=MONTHLY,
        new={"amount": 30000, "interval": "year"},
        changed=at(2028, 2, 29),
        ends=[at(2029, 2, 28), at(2030, 2, 28), at(2031, 2, 28), at(2032, 2, 29)],
        totals=[3000, 29897],
    ),
}


async def stored_subscription(runtime: Runtime, subscription_id: str) -> Subscription:
    async with runtime.sessionmaker() as session:
        subscription = await session.get(Subscription, uuid.UUID(subscription_id))
        assert subscription is not None
        return subscription


@pytest.mark.parametrize("case", INTERVAL_CHANGES.values(), ids=INTERVAL_CHANGES.keys())
async def test_change_interval_restarts_period(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, case: IntervalChange
) -> None:
    clock.set(case.created)
    staff = await owner(client)
    old = await make_plan(client, staff, **case.old)
    new = await make_plan(client, staff, **case.new)
    subscription = await subscribe(client, staff, old["id"], await make_contact(client, staff))
    assert subscription["billing_anchor"] == iso_utc(case.created)

    clock.set(case.changed)
    response = await client.post(
        f"/api/v1/subscriptions/{subscription['id']}/change-plan",
        headers=staff.headers,
        json={"plan_id": new["id"], "proration": True},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["plan_id"] == new["id"]
    assert changed["billing_anchor"] == iso_utc(case.changed)
    assert changed["current_period_start"] == iso_utc(case.changed)
    assert changed["current_period_end"] == iso_utc(case.ends[0])
    invoices = await invoices_of(runtime, subscription["id"])
    assert [invoice.total for invoice in invoices] == case.totals

    # Each renewal starts where the last period ended and ends on the next boundary from
    # the new anchor, whatever day an earlier boundary was clamped to.
    for start, end in zip(case.ends, case.ends[1:], strict=False):
        clock.set(start)
        await run(runtime)
        renewed = await stored_subscription(runtime, subscription["id"])
        assert renewed.current_period_start == start
        assert renewed.current_period_end == end
    renewals = await invoices_of(runtime, subscription["id"])
    assert len(renewals) == len(case.totals) + len(case.ends) - 1
    assert {invoice.total for invoice in renewals[2:]} <= {case.new["amount"]}


async def test_change_interval_without_proration(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    monthly = await make_plan(client, staff, **MONTHLY)
    weekly = await make_plan(client, staff, **WEEKLY)
    subscription = await subscribe(client, staff, monthly["id"], await make_contact(client, staff))
    clock.set(START + timedelta(days=3))

    response = await client.post(
        f"/api/v1/subscriptions/{subscription['id']}/change-plan",
        headers=staff.headers,
        json={"plan_id": weekly["id"], "proration": False},
    )

    assert response.status_code == 200, response.text
    assert response.json()["current_period_end"] == iso_utc(START + timedelta(days=10))
    totals = [invoice.total for invoice in await invoices_of(runtime, subscription["id"])]
    assert totals == [3000, 700]


async def test_change_interval_keeps_trial(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    monthly = await make_plan(client, staff, trial_days=14, **MONTHLY)
    weekly = await make_plan(client, staff, **WEEKLY)
    subscription = await subscribe(client, staff, monthly["id"], await make_contact(client, staff))
    trial_end = START + timedelta(days=14)
    clock.set(START + timedelta(days=2))

    response = await client.post(
        f"/api/v1/subscriptions/{subscription['id']}/change-plan",
        headers=staff.headers,
        json={"plan_id": weekly["id"], "proration": True},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["status"] == "trialing"
    assert changed["current_period_end"] == iso_utc(trial_end)
    assert changed["billing_anchor"] == iso_utc(trial_end)
    assert await invoices_of(runtime, subscription["id"]) == []

    clock.set(trial_end)
    await run(runtime)
    active = await fetch(client, staff, subscription["id"])
    assert active["status"] == "active"
    assert active["current_period_end"] == iso_utc(trial_end + timedelta(weeks=1))
    assert [invoice.total for invoice in await invoices_of(runtime, subscription["id"])] == [700]


async def test_change_interval_while_paused(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    monthly = await make_plan(client, staff, **MONTHLY)
    weekly = await make_plan(client, staff, **WEEKLY)
    subscription = await subscribe(client, staff, monthly["id"], await make_contact(client, staff))
    path = f"/api/v1/subscriptions/{subscription['id']}"
    assert (await client.post(f"{path}/pause", headers=staff.headers)).status_code == 200
    changed_at = START + timedelta(days=3)
    clock.set(changed_at)

    response = await client.post(
        f"{path}/change-plan",
        headers=staff.headers,
        json={"plan_id": weekly["id"], "proration": True},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["status"] == "paused"
    assert changed["billing_anchor"] == iso_utc(changed_at)
    assert changed["current_period_end"] == iso_utc(changed_at + timedelta(weeks=1))
    assert len(await invoices_of(runtime, subscription["id"])) == 1


@settings(max_examples=300, deadline=None)
@given(
    anchor=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
    ),
    interval=st.sampled_from(["week", "month", "year"]),
    count=st.integers(min_value=1, max_value=3),
    periods=st.integers(min_value=1, max_value=30),
)
def test_periods_count_from_anchor(
    anchor: datetime, interval: str, count: int, periods: int
) -> None:
    plan = Plan(interval=interval, interval_count=count)
    subscription = Subscription(
        billing_anchor=anchor,
        created_at=anchor - timedelta(days=400),
        current_period_end=boundary(anchor, interval, count, 1),
    )
    for index in range(1, periods + 1):
        previous_end = subscription.current_period_end
        start, end = next_period(subscription, plan)
        assert start == previous_end
        assert end == boundary(anchor, interval, count, index + 1)
        assert start < end
        subscription.current_period_start = start
        subscription.current_period_end = end
    assert end.time() == anchor.time()
    if interval == "week":
        assert end - anchor == timedelta(weeks=count * (periods + 1))
    else:
        months = count * (periods + 1) * (12 if interval == "year" else 1)
        assert (end.year - anchor.year) * 12 + end.month - anchor.month == months
        assert end.day == min(anchor.day, calendar.monthrange(end.year, end.month)[1])


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=400 * 86400),
    used=st.integers(min_value=0, max_value=500 * 86400),
    amount=st.integers(min_value=1, max_value=10**9),
)
def test_unused_share_credit_bounds(length: int, used: int, amount: int) -> None:
    subscription = Subscription(
        current_period_start=START, current_period_end=START + timedelta(seconds=length)
    )
    share = unused_share(subscription, START + timedelta(seconds=used))
    credit = round_half_up(amount * share)
    assert 0 <= credit <= amount
    assert (credit == 0) or used < length
    assert unused_share(subscription, START) == 1


async def test_other_workspace_is_not_found(client: httpx.AsyncClient) -> None:
    ours = await owner(client)
    theirs = await owner(client)
    plan = await make_plan(client, theirs)
    their_contact = await make_contact(client, theirs)
    subscription = await subscribe(client, theirs, plan["id"], their_contact)

    response = await client.get(f"/api/v1/subscriptions/{subscription['id']}", headers=ours.headers)
    assert response.status_code == 404
    response = await client.post(
        f"/api/v1/subscriptions/{subscription['id']}/cancel", headers=ours.headers, json={}
    )
    assert response.status_code == 404
    response = await client.get(f"/api/v1/plans/{plan['id']}", headers=ours.headers)
    assert response.status_code == 404

    our_plan = await make_plan(client, ours)
    response = await client.post(
        "/api/v1/subscriptions",
        headers=ours.headers,
        json={"contact_id": their_contact, "plan_id": our_plan["id"]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "contact_id"
    listed = await client.get("/api/v1/subscriptions", headers=ours.headers)
    assert listed.json()["items"] == []


async def test_deleted_contact_cancels_at_renewal(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    plan = await make_plan(client, staff, interval="week")
    orphan = await subscribe(client, staff, plan["id"], await make_contact(client, staff))
    kept = await subscribe(client, staff, plan["id"], await make_contact(client, staff))
    # Deleting a contact sets the subscription's contact_id to NULL (ON DELETE SET NULL).
    async with runtime.sessionmaker() as session:
        await session.execute(
            sa.update(Subscription)
            .where(Subscription.id == uuid.UUID(orphan["id"]))
            .values(contact_id=None)
        )
        await session.commit()

    clock.set(START + timedelta(weeks=1))
    await run(runtime)

    canceled = await fetch(client, staff, orphan["id"])
    assert canceled["status"] == "canceled"
    assert len(await invoices_of(runtime, orphan["id"])) == 1
    renewed = await fetch(client, staff, kept["id"])
    assert renewed["status"] == "active"
    assert len(await invoices_of(runtime, kept["id"])) == 2
