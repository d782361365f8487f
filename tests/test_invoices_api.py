"""Invoices through the API: drafts, validation, issuing, voiding, credit notes, overdue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from conftest import run_jobs
from factories import Staff, count_rows, events_named, member, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.jobs import schedule_periodic
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.jobs import mark_overdue
from frontdesk.payments.models import Invoice, InvoiceLine
from frontdesk.runtime import Runtime

API = "/api/v1"
PROBLEM = "application/problem+json"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The overdue test moves the clock by days; access tokens must outlive that.
    return {"access_token_ttl_seconds": 30 * 24 * 3600}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))


async def new_enquiry(client: httpx.AsyncClient, staff: Staff, **contact: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/enquiries",
        headers=staff.headers,
        json={
            "message": "Quote for wedding photos",
            "contact": {
                "name": "Camille Roy",
                "email": f"c-{uuid.uuid4().hex[:6]}@example.org",
                **contact,
            },
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def lines(*items: tuple[str, int, str]) -> list[dict[str, Any]]:
    return [
        {
            "description": f"Item {index}",
            "quantity": quantity,
            "unit_price": price,
            "tax_rate": rate,
        }
        for index, (quantity, price, rate) in enumerate(items)
    ]


async def create_draft(
    client: httpx.AsyncClient, staff: Staff, contact_id: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "contact_id": contact_id,
        "currency": "EUR",
        "lines": lines(("2", 1500, "20"), ("1", 999, "5.5")),
        **fields,
    }
    response = await client.post(f"{API}/invoices", headers=staff.headers, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def issue(
    client: httpx.AsyncClient, staff: Staff, invoice_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/invoices/{invoice_id}/issue", headers=staff.headers, json=body or None
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None, code: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    if code is not None:
        assert body["code"] == code, body


async def test_draft_totals_and_view(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    enquiry = await new_enquiry(client, staff)
    invoice = await create_draft(
        client, staff, enquiry["contact"]["id"], discount={"type": "percent", "value": "10"}
    )

    assert invoice["status"] == "draft"
    assert invoice["number"] is None
    assert invoice["currency"] == "EUR"
    assert invoice["currency_exponent"] == 2
    assert [line["position"] for line in invoice["lines"]] == [0, 1]
    assert [line["gross_amount"] for line in invoice["lines"]] == [3000, 999]
    assert invoice["subtotal"] == 3999
    assert invoice["discount_total"] == 400
    # 400 split 3000:999 -> 300.08 and 99.92 -> 300 and 100.
    assert invoice["tax_breakdown"] == [
        {"rate": "5.5", "base": 899, "tax": 49},
        {"rate": "20", "base": 2700, "tax": 540},
    ]
    assert invoice["tax_total"] == 589
    assert invoice["total"] == 3999 - 400 + 589
    assert invoice["amount_due"] == 0  # drafts owe nothing yet
    assert invoice["discount"] == {"type": "percent", "value": "10"}

    fetched = await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)
    assert fetched.status_code == 200
    assert fetched.json() == invoice


async def test_jpy_and_bhd_minor_units(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    jpy = await create_draft(
        client, staff, contact_id, currency="jpy", lines=lines(("1.5", 333, "10"))
    )
    bhd = await create_draft(
        client, staff, contact_id, currency="BHD", lines=lines(("2.5", 1, "0"))
    )

    assert (jpy["currency"], jpy["currency_exponent"], jpy["total"]) == ("JPY", 0, 550)
    assert (bhd["currency"], bhd["currency_exponent"], bhd["total"]) == ("BHD", 3, 3)


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        (
            {"lines": lines(("1", 1, "0"), ("1", 1, "0"), ("1", 1, "0"), ("0", 1, "0"))},
            "lines.3.quantity",
            "too_small",
        ),
        ({"lines": lines(("1.1234567", 1, "0"))}, "lines.0.quantity", "too_many_decimal_places"),
        ({"lines": lines(("1", 100, "101"))}, "lines.0.tax_rate", "too_large"),
        ({"lines": lines(("1", -5, "0"))}, "lines.0.unit_price", None),
        ({"lines": lines(("1", 100, "abc"))}, "lines.0.tax_rate", "invalid_decimal"),
        ({"lines": [{"description": " ", "unit_price": 1}]}, "lines.0.description", "blank"),
        ({"currency": "EURO"}, "currency", "invalid_currency"),
        ({"discount": {"type": "percent", "value": "150"}}, "discount.value", "too_large"),
        ({"discount": {"type": "amount", "value": "5"}}, "discount.value", "invalid_amount"),
        ({"discount": {"type": "coupon", "value": 5}}, "discount.type", None),
        ({"contact_id": str(uuid.uuid4())}, "contact_id", "not_found"),
        ({"enquiry_id": str(uuid.uuid4())}, "enquiry_id", "not_found"),
        (
            {"lines": [{"description": "x", "unit_price": 10**15, "quantity": "10000000"}]},
            "lines",
            "too_large",
        ),
    ],
)
async def test_create_rejects_invalid_and_stores_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    change: dict[str, Any],
    field: str,
    code: str | None,
) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    body = {"contact_id": contact_id, "lines": lines(("1", 100, "0")), **change}

    response = await client.post(f"{API}/invoices", headers=staff.headers, json=body)

    assert_problem(response, 422, field)
    if code is not None:
        errors = {error["field"]: error["code"] for error in response.json()["errors"]}
        assert errors[field] == code
    assert await count_rows(runtime, Invoice) == 0
    assert await count_rows(runtime, InvoiceLine) == 0


@pytest.mark.parametrize("quantity", ["0", "-1", "-0.5"])
async def test_quantity_must_be_positive(client: httpx.AsyncClient, quantity: str) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    body = {"contact_id": contact_id, "lines": lines((quantity, 100, "0"))}

    response = await client.post(f"{API}/invoices", headers=staff.headers, json=body)

    assert_problem(response, 422, "lines.0.quantity")
    messages = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert messages["lines.0.quantity"] == "Must be greater than 0."


async def test_other_workspace_is_hidden(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    other = await owner(client)
    theirs = await new_enquiry(client, other)
    mine = await new_enquiry(client, staff)
    invoice = await create_draft(client, staff, mine["contact"]["id"])

    foreign_contact = await client.post(
        f"{API}/invoices",
        headers=staff.headers,
        json={"contact_id": theirs["contact"]["id"], "lines": []},
    )
    foreign_enquiry = await client.patch(
        f"{API}/invoices/{invoice['id']}",
        headers=staff.headers,
        json={"enquiry_id": theirs["id"]},
    )
    foreign_read = await client.get(f"{API}/invoices/{invoice['id']}", headers=other.headers)

    assert_problem(foreign_contact, 422, "contact_id")
    assert_problem(foreign_enquiry, 422, "enquiry_id")
    assert_problem(foreign_read, 404)


async def test_patch_replaces_lines_in_order(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    invoice = await create_draft(
        client, staff, contact_id, discount={"type": "amount", "value": 100}
    )
    new_lines = [
        {"description": "Third", "quantity": "3", "unit_price": 300},
        {
            "description": "First",
            "quantity": "1",
            "unit_price": 100,
            "discount": {"type": "amount", "value": 500},
        },
    ]

    response = await client.patch(
        f"{API}/invoices/{invoice['id']}",
        headers=staff.headers,
        json={"lines": new_lines, "discount": None, "notes": "Thanks!"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(line["position"], line["description"]) for line in body["lines"]] == [
        (0, "Third"),
        (1, "First"),
    ]
    # The line discount is capped at the line's gross amount.
    assert [line["net_amount"] for line in body["lines"]] == [900, 0]
    assert body["discount"] is None
    assert body["total"] == 900
    assert body["notes"] == "Thanks!"

    invalid = await client.patch(
        f"{API}/invoices/{invoice['id']}",
        headers=staff.headers,
        json={"lines": lines(("1", 100, "0"), ("x", 1, "0")), "notes": "changed"},
    )
    assert_problem(invalid, 422, "lines.1.quantity")
    unchanged = (await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert unchanged == body

    null_contact = await client.patch(
        f"{API}/invoices/{invoice['id']}", headers=staff.headers, json={"contact_id": None}
    )
    assert_problem(null_contact, 422, "contact_id")


async def test_issue_fills_number_dates_and_snapshots(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    settings = await client.put(
        f"{API}/payments/settings",
        headers=staff.headers,
        json={
            "invoice_number_pattern": "F{YY}{MM}-{seq:03}",
            "payment_terms_days": 30,
            "business_details": {"name": "Studio Roy", "tax_id": "FR123", "address": "1 rue X"},
            "bank_details": "IBAN FR76 0000",
            "branding": {"color": "#1A73E8"},
        },
    )
    assert settings.status_code == 200, settings.text
    enquiry = await new_enquiry(client, staff, phone="+33 6 12 34 56 78")
    draft = await create_draft(
        client,
        staff,
        enquiry["contact"]["id"],
        customer_overrides={"address": "5 avenue Y, Lyon", "tax_id": "FR999", "name": "Roy SARL"},
    )

    issued = await issue(client, staff, draft["id"])
    second = await issue(
        client, staff, (await create_draft(client, staff, enquiry["contact"]["id"]))["id"]
    )

    assert issued["status"] == "open"
    assert issued["number"] == "F2603-001"
    assert second["number"] == "F2603-002"
    assert issued["issue_date"] == "2026-03-10"
    assert issued["due_date"] == "2026-04-09"
    assert issued["amount_due"] == issued["total"]
    assert issued["seller"]["name"] == "Studio Roy"
    assert issued["seller"]["tax_id"] == "FR123"
    assert issued["seller"]["bank_details"] == "IBAN FR76 0000"
    assert issued["seller"]["branding"] == {"color": "#1a73e8"}
    assert issued["customer"]["name"] == "Roy SARL"
    assert issued["customer"]["email"] == enquiry["contact"]["email"]
    assert issued["customer"]["phone"] == "+33612345678"
    assert issued["customer"]["address"] == "5 avenue Y, Lyon"
    assert issued["customer"]["tax_id"] == "FR999"
    assert len(await events_named(runtime, "invoice.issued")) == 2
    assert await count_rows(runtime, Job, Job.name == "payments.invoice_pdf") == 2

    edit = await client.patch(
        f"{API}/invoices/{draft['id']}", headers=staff.headers, json={"notes": "late change"}
    )
    delete = await client.delete(f"{API}/invoices/{draft['id']}", headers=staff.headers)
    again = await client.post(f"{API}/invoices/{draft['id']}/issue", headers=staff.headers)
    assert_problem(edit, 409, code="invoice_not_draft")
    assert_problem(delete, 409, code="invoice_not_draft")
    assert_problem(again, 409, code="invoice_not_draft")


@pytest.mark.parametrize(
    ("issue_date", "message"),
    [
        ("9999-12-31", "past the year 9999"),
        ("0001-01-01", "Use a date from 1900-01-01 on."),
    ],
)
async def test_issue_date_out_of_range(
    client: httpx.AsyncClient, issue_date: str, message: str
) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    draft = await create_draft(client, staff, contact_id)

    response = await client.post(
        f"{API}/invoices/{draft['id']}/issue",
        headers=staff.headers,
        json={"issue_date": issue_date},
    )
    stored = await client.get(f"{API}/invoices/{draft['id']}", headers=staff.headers)

    assert_problem(response, 422, "issue_date")
    [error] = response.json()["errors"]
    assert error["code"] == "out_of_range"
    assert message in error["message"]
    assert stored.json()["status"] == "draft"


async def test_issue_with_dates_and_checks(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    draft = await create_draft(client, staff, contact_id)
    empty = await create_draft(client, staff, contact_id, lines=[])

    early = await client.post(
        f"{API}/invoices/{draft['id']}/issue",
        headers=staff.headers,
        json={"issue_date": "2026-03-01", "due_date": "2026-02-01"},
    )
    no_lines = await client.post(f"{API}/invoices/{empty['id']}/issue", headers=staff.headers)
    issued = await issue(client, staff, draft["id"], issue_date="2026-03-01", due_date="2026-03-15")

    assert_problem(early, 422, "due_date")
    assert_problem(no_lines, 422, "lines")
    assert issued["number"] == "INV-2026-0001"
    assert (issued["issue_date"], issued["due_date"]) == ("2026-03-01", "2026-03-15")
    assert issued["status"] == "open"
    late = await issue(
        client,
        staff,
        (await create_draft(client, staff, contact_id))["id"],
        issue_date="2026-03-01",
        due_date="2026-03-05",
    )
    assert late["status"] == "overdue"


async def test_delete_draft(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    draft = await create_draft(client, staff, contact_id)

    response = await client.delete(f"{API}/invoices/{draft['id']}", headers=staff.headers)

    assert response.status_code == 204
    assert await count_rows(runtime, Invoice) == 0
    assert await count_rows(runtime, InvoiceLine) == 0
    gone = await client.get(f"{API}/invoices/{draft['id']}", headers=staff.headers)
    assert_problem(gone, 404)


async def test_void_and_uncollectible_rules(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    draft = await create_draft(client, staff, contact_id)
    open_invoice = await issue(client, staff, (await create_draft(client, staff, contact_id))["id"])
    partly = await issue(client, staff, (await create_draft(client, staff, contact_id))["id"])
    paid = await issue(client, staff, (await create_draft(client, staff, contact_id))["id"])
    for invoice, amount in ((partly, 100), (paid, paid["total"])):
        recorded = await client.post(
            f"{API}/invoices/{invoice['id']}/payments",
            headers=staff.headers,
            json={"amount": amount, "method": "bank_transfer"},
        )
        assert recorded.status_code == 201, recorded.text

    by_agent = await client.post(f"{API}/invoices/{open_invoice['id']}/void", headers=agent.headers)
    void_draft = await client.post(f"{API}/invoices/{draft['id']}/void", headers=staff.headers)
    void_partly = await client.post(f"{API}/invoices/{partly['id']}/void", headers=staff.headers)
    void_paid = await client.post(f"{API}/invoices/{paid['id']}/void", headers=staff.headers)
    voided = await client.post(f"{API}/invoices/{open_invoice['id']}/void", headers=staff.headers)
    void_twice = await client.post(
        f"{API}/invoices/{open_invoice['id']}/void", headers=staff.headers
    )
    write_off = await client.post(
        f"{API}/invoices/{partly['id']}/mark-uncollectible", headers=staff.headers
    )
    write_off_paid = await client.post(
        f"{API}/invoices/{paid['id']}/mark-uncollectible", headers=staff.headers
    )

    assert_problem(by_agent, 403)
    assert_problem(void_draft, 409, code="invoice_not_issued")
    assert_problem(void_partly, 409, code="invoice_partially_paid")
    assert_problem(void_paid, 409, code="invoice_paid")
    assert voided.status_code == 200
    assert voided.json()["status"] == "void"
    assert voided.json()["amount_due"] == 0
    assert voided.json()["voided_at"] is not None
    assert_problem(void_twice, 409, code="invoice_void")
    assert write_off.status_code == 200
    assert write_off.json()["status"] == "uncollectible"
    assert_problem(write_off_paid, 409, code="invoice_not_collectible")
    assert len(await events_named(runtime, "invoice.voided")) == 1


async def test_credit_notes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    draft = await create_draft(client, staff, contact_id, lines=lines(("1", 10000, "0")))
    on_draft = await client.post(
        f"{API}/invoices/{draft['id']}/credit-notes", headers=staff.headers, json={"amount": 100}
    )
    invoice = await issue(client, staff, draft["id"])

    first = await client.post(
        f"{API}/invoices/{invoice['id']}/credit-notes",
        headers=staff.headers,
        json={"amount": 2500, "reason": "Discount"},
    )
    too_much = await client.post(
        f"{API}/invoices/{invoice['id']}/credit-notes", headers=staff.headers, json={"amount": 7501}
    )
    zero = await client.post(
        f"{API}/invoices/{invoice['id']}/credit-notes", headers=staff.headers, json={"amount": 0}
    )
    rest = await client.post(
        f"{API}/invoices/{invoice['id']}/credit-notes", headers=staff.headers, json={"amount": 7500}
    )

    assert_problem(on_draft, 409, code="invoice_not_issued")
    assert first.status_code == 201, first.text
    assert first.json()["number"] == "CN-2026-0001"
    assert first.json()["currency_exponent"] == 2
    assert_problem(too_much, 422, "amount")
    assert_problem(zero, 422, "amount")
    assert rest.json()["number"] == "CN-2026-0002"
    after = (await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert after["amount_credited"] == 10000
    assert after["amount_due"] == 0
    assert after["status"] == "paid"
    listed = await client.get(f"{API}/invoices/{invoice['id']}/credit-notes", headers=staff.headers)
    assert [note["amount"] for note in listed.json()["items"]] == [2500, 7500]
    assert len(await events_named(runtime, "invoice.credited")) == 2
    assert len(await events_named(runtime, "invoice.paid")) == 1


async def test_overdue_job_then_payment(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    invoice = await issue(
        client, staff, (await create_draft(client, staff, contact_id))["id"], due_date="2026-03-12"
    )
    not_due = await issue(
        client, staff, (await create_draft(client, staff, contact_id))["id"], due_date="2026-03-20"
    )

    clock.set(datetime(2026, 3, 12, 23, 59, tzinfo=UTC))
    async with unit_of_work(runtime) as uow:
        assert await mark_overdue(uow) == 0  # due today is not overdue yet
    clock.set(datetime(2026, 3, 13, 0, 1, tzinfo=UTC))
    async with unit_of_work(runtime) as uow:
        await schedule_periodic(uow)
    await run_jobs(runtime)  # the periodic job runs through the worker
    async with unit_of_work(runtime) as uow:
        assert await mark_overdue(uow) == 0  # idempotent

    overdue = (await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)).json()
    later = (await client.get(f"{API}/invoices/{not_due['id']}", headers=staff.headers)).json()
    assert overdue["status"] == "overdue"
    assert later["status"] == "open"
    timeline = (
        await client.get(f"{API}/invoices/{invoice['id']}/timeline", headers=staff.headers)
    ).json()["items"]
    assert [(item["type"], item["source"]) for item in timeline][-1] == ("status_changed", "job")
    assert len(await events_named(runtime, "invoice.overdue")) == 1

    partial = await client.post(
        f"{API}/invoices/{invoice['id']}/payments",
        headers=staff.headers,
        json={"amount": 1000, "method": "cash"},
    )
    assert partial.status_code == 201, partial.text
    status = (await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert status["status"] == "partially_paid"
    rest = await client.post(
        f"{API}/invoices/{invoice['id']}/payments",
        headers=staff.headers,
        json={"amount": status["amount_due"], "method": "cash"},
    )
    assert rest.status_code == 201
    final = (await client.get(f"{API}/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert final["status"] == "paid"
    assert final["paid_at"] is not None


async def test_invoice_from_enquiry_and_list(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    enquiry = await new_enquiry(client, staff)
    other = await new_enquiry(client, staff)

    response = await client.post(
        f"{API}/enquiries/{enquiry['id']}/invoice",
        headers=staff.headers,
        json={"lines": lines(("1", 5000, "0"))},
    )
    assert response.status_code == 201, response.text
    from_enquiry = response.json()
    assert from_enquiry["enquiry_id"] == enquiry["id"]
    assert from_enquiry["contact_id"] == enquiry["contact"]["id"]
    second = await create_draft(client, staff, other["contact"]["id"])
    await issue(client, staff, second["id"])

    by_enquiry = (
        await client.get(
            f"{API}/invoices", headers=staff.headers, params={"enquiry_id": enquiry["id"]}
        )
    ).json()
    open_only = (
        await client.get(f"{API}/invoices", headers=staff.headers, params={"status": "open,paid"})
    ).json()
    first_page = (
        await client.get(f"{API}/invoices", headers=staff.headers, params={"limit": 1})
    ).json()
    second_page = (
        await client.get(
            f"{API}/invoices",
            headers=staff.headers,
            params={"limit": 1, "cursor": first_page["next_cursor"]},
        )
    ).json()
    bad_status = await client.get(
        f"{API}/invoices", headers=staff.headers, params={"status": "pending"}
    )

    assert [item["id"] for item in by_enquiry["items"]] == [from_enquiry["id"]]
    assert [item["id"] for item in open_only["items"]] == [second["id"]]
    assert [item["id"] for item in first_page["items"] + second_page["items"]] == [
        second["id"],
        from_enquiry["id"],
    ]
    assert second_page["next_cursor"] is None
    assert_problem(bad_status, 422, "status")


async def test_payment_settings(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")

    defaults = await client.get(f"{API}/payments/settings", headers=agent.headers)
    by_agent = await client.put(
        f"{API}/payments/settings", headers=agent.headers, json={"payment_terms_days": 7}
    )
    no_seq = await client.put(
        f"{API}/payments/settings",
        headers=staff.headers,
        json={"invoice_number_pattern": "INV-{YYYY}"},
    )
    unknown = await client.put(
        f"{API}/payments/settings",
        headers=staff.headers,
        json={"credit_note_number_pattern": "CN-{DD}-{seq}"},
    )
    color = await client.put(
        f"{API}/payments/settings", headers=staff.headers, json={"branding": {"color": "blue"}}
    )
    logo = await client.put(
        f"{API}/payments/settings",
        headers=staff.headers,
        json={"branding": {"logo_object_id": str(uuid.uuid4())}},
    )
    days = await client.put(
        f"{API}/payments/settings", headers=staff.headers, json={"reminder_days": [1, 1]}
    )
    saved = await client.put(
        f"{API}/payments/settings",
        headers=staff.headers,
        json={"default_currency": "chf", "reminder_days": [7, -3]},
    )
    kept = await client.put(
        f"{API}/payments/settings", headers=staff.headers, json={"payment_terms_days": 10}
    )

    assert defaults.status_code == 200
    assert defaults.json()["invoice_number_pattern"] == "INV-{YYYY}-{seq:04}"
    assert defaults.json()["default_currency_exponent"] == 2
    assert_problem(by_agent, 403)
    assert_problem(no_seq, 422, "invoice_number_pattern")
    assert_problem(unknown, 422, "credit_note_number_pattern")
    assert_problem(color, 422, "branding.color")
    assert_problem(logo, 422, "branding.logo_object_id")
    assert_problem(days, 422, "reminder_days")
    assert saved.status_code == 200, saved.text
    assert saved.json()["default_currency"] == "CHF"
    assert saved.json()["reminder_days"] == [-3, 7]
    assert kept.json()["default_currency"] == "CHF"
    assert kept.json()["payment_terms_days"] == 10
    contact_id = (await new_enquiry(client, staff))["contact"]["id"]
    response = await client.post(
        f"{API}/invoices", headers=staff.headers, json={"contact_id": contact_id}
    )
    assert response.json()["currency"] == "CHF"


async def test_concurrent_first_settings_save(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    responses = await asyncio.gather(
        *(
            client.put(
                f"{API}/payments/settings",
                headers=staff.headers,
                json={"payment_terms_days": days},
            )
            for days in range(1, 6)
        )
    )

    assert [response.status_code for response in responses] == [200] * 5
    saved = (await client.get(f"{API}/payments/settings", headers=staff.headers)).json()
    assert saved["payment_terms_days"] in range(1, 6)
    assert saved["invoice_number_pattern"] == "INV-{YYYY}-{seq:04}"
