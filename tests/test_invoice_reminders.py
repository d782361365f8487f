"""Payment reminders on the workspace's reminder days, at most once per invoice and day."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
import sqlalchemy as sa

from conftest import run_jobs
from factories import owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.payments import reminders
from frontdesk.payments.models import InvoiceActivity
from frontdesk.runtime import Runtime
from invoice_factories import draft_invoice, issued_invoice, save_settings


async def run_reminders(runtime: Runtime) -> int:
    async with unit_of_work(runtime) as uow:
        return await reminders.send_due_reminders(uow)


async def reminder_emails(runtime: Runtime, workspace_id: uuid.UUID) -> list[EmailMessage]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(EmailMessage)
            .where(
                EmailMessage.workspace_id == workspace_id,
                EmailMessage.kind == "invoice_reminder",
            )
            .order_by(EmailMessage.created_at, EmailMessage.id)
        )
        return list(rows)


async def reminder_offsets(runtime: Runtime, invoice_id: str) -> list[int]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(InvoiceActivity.data)
            .where(
                InvoiceActivity.invoice_id == uuid.UUID(invoice_id),
                InvoiceActivity.type == "reminder_sent",
            )
            .order_by(InvoiceActivity.created_at)
        )
        return [data["offset"] for data in rows]


def today(clock: FrozenClock) -> date:
    return clock.now().date()


async def test_reminders_follow_reminder_days(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[-3, 0, 7])
    due = today(clock) + timedelta(days=3)
    invoice = await issued_invoice(client, runtime, staff, due_date=due.isoformat())

    sent_by_day: list[int] = []
    for _day in range(12):
        sent_by_day.append(await run_reminders(runtime))
        clock.advance(days=1)

    # Day 0 is three days before the due date, day 3 the due date, day 10 a week after it.
    assert sent_by_day == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert await reminder_offsets(runtime, invoice["id"]) == [-3, 0, 7]
    emails = await reminder_emails(runtime, staff.workspace_id)
    assert [email.to_address for email in emails] == ["ada@example.org"] * 3
    link = f"http://frontdesk.test/pay/{invoice['public_token']}"
    assert all(link in email.text_body for email in emails)
    assert f"is due on {due.isoformat()}" in emails[0].text_body
    assert "is due today" in emails[1].text_body
    assert "is 7 days overdue" in emails[2].text_body
    assert "overdue" in emails[2].subject
    assert "417.50 EUR" in emails[0].text_body


async def test_reminder_sent_once_per_day(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[0])
    invoice = await issued_invoice(client, runtime, staff, due_date=today(clock).isoformat())

    first = await run_reminders(runtime)
    second = await run_reminders(runtime)

    assert first == 1
    assert second == 0
    assert await reminder_offsets(runtime, invoice["id"]) == [0]
    assert len(await reminder_emails(runtime, staff.workspace_id)) == 1


async def test_no_reminders_for_settled_invoices(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[0])
    due = today(clock).isoformat()
    paid = await issued_invoice(client, runtime, staff, due_date=due)
    voided = await issued_invoice(client, runtime, staff, due_date=due)
    uncollectible = await issued_invoice(client, runtime, staff, due_date=due)
    draft = await draft_invoice(client, runtime, staff, due_date=due)
    responses = [
        await client.post(
            f"/api/v1/invoices/{paid['id']}/payments",
            json={"amount": 41750, "method": "cash"},
            headers=staff.headers,
        ),
        await client.post(f"/api/v1/invoices/{voided['id']}/void", headers=staff.headers),
        await client.post(
            f"/api/v1/invoices/{uncollectible['id']}/mark-uncollectible", headers=staff.headers
        ),
    ]
    assert [response.status_code for response in responses] == [201, 200, 200]

    assert await run_reminders(runtime) == 0
    for invoice in (paid, voided, uncollectible, draft):
        assert await reminder_offsets(runtime, invoice["id"]) == []
    assert await reminder_emails(runtime, staff.workspace_id) == []


async def test_partially_paid_gets_reminder(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[0])
    invoice = await issued_invoice(client, runtime, staff, due_date=today(clock).isoformat())
    part = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"amount": 10000, "method": "cash"},
        headers=staff.headers,
    )
    assert part.status_code == 201, part.text

    assert await run_reminders(runtime) == 1
    emails = await reminder_emails(runtime, staff.workspace_id)
    assert "317.50 EUR" in emails[0].text_body


async def test_each_workspace_uses_its_days(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    custom = await owner(client)
    await save_settings(client, custom, reminder_days=[2])
    defaults = await owner(client)
    two_days_ago = (today(clock) - timedelta(days=2)).isoformat()
    issue_day = (today(clock) - timedelta(days=10)).isoformat()
    # Both were due two days ago; only the workspace with day 2 reminds today, because the
    # default days are -3, 0 and 7.
    mine = await draft_invoice(client, runtime, custom)
    theirs = await draft_invoice(client, runtime, defaults)
    for staff, draft in ((custom, mine), (defaults, theirs)):
        issued = await client.post(
            f"/api/v1/invoices/{draft['id']}/issue",
            json={"issue_date": issue_day, "due_date": two_days_ago},
            headers=staff.headers,
        )
        assert issued.status_code == 200, issued.text

    assert await run_reminders(runtime) == 1
    assert await reminder_offsets(runtime, mine["id"]) == [2]
    assert await reminder_offsets(runtime, theirs["id"]) == []


async def test_customer_without_email_skipped(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[0])
    invoice = await issued_invoice(
        client, runtime, staff, email=None, due_date=today(clock).isoformat()
    )

    assert await run_reminders(runtime) == 0
    assert await reminder_offsets(runtime, invoice["id"]) == []


async def test_reminder_job_runs(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    await save_settings(client, staff, reminder_days=[0])
    invoice = await issued_invoice(client, runtime, staff, due_date=today(clock).isoformat())
    async with unit_of_work(runtime) as uow:
        uow.enqueue(reminders.REMINDER_JOB, {})

    await run_jobs(runtime)

    assert await reminder_offsets(runtime, invoice["id"]) == [0]
