"""Number patterns, and gapless unique numbers under concurrent issuing on both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest

from factories import owner
from frontdesk.core.errors import ValidationFailed
from frontdesk.core.uow import unit_of_work
from frontdesk.payments import numbering
from frontdesk.runtime import Runtime

API = "/api/v1"
CONCURRENT = 20


@pytest.mark.parametrize(
    ("pattern", "on", "sequence", "number"),
    [
        ("INV-{YYYY}-{seq:04}", date(2026, 1, 5), 7, "INV-2026-0007"),
        ("{YY}{MM}/{seq}", date(2027, 11, 30), 12, "2711/12"),
        ("N{seq:01}", date(2026, 1, 1), 12345, "N12345"),
        ("{seq:012}", date(2026, 1, 1), 1, "000000000001"),
    ],
)
def test_render_pattern(pattern: str, on: date, sequence: int, number: str) -> None:
    assert numbering.check_pattern(pattern, "p") == pattern
    assert numbering._render(pattern, on, sequence) == number


def test_scope_restarts_each_year_and_month() -> None:
    assert numbering.scope_of("INV-{YYYY}-{seq}", date(2026, 5, 1)) == "INV-2026-"
    assert numbering.scope_of("INV-{YYYY}-{seq}", date(2027, 5, 1)) == "INV-2027-"
    assert numbering.scope_of("{YY}{MM}-{seq:03}", date(2026, 5, 1)) == "2605-"
    # Changing only the padding keeps counting in the same scope.
    assert numbering.scope_of("A{seq}", date(2026, 1, 1)) == numbering.scope_of(
        "A{seq:06}", date(2026, 1, 1)
    )


@pytest.mark.parametrize(
    ("pattern", "code"),
    [
        ("INV-{YYYY}", "no_sequence"),
        ("{seq}-{seq}", "no_sequence"),
        ("INV-{DD}-{seq}", "unknown_token"),
        ("INV-{seq:013}", "unknown_token"),
        ("INV-{seq:4}", "unknown_token"),
        ("INV-{seq}}", "unbalanced_brace"),
        ("", "required"),
        ("x" * 61 + "{seq}", "too_long"),
    ],
)
def test_check_pattern_rejects(pattern: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        numbering.check_pattern(pattern, "invoice_number_pattern")
    assert caught.value.errors[0].field == "invoice_number_pattern"
    assert caught.value.errors[0].code == code


async def test_concurrent_numbers_are_gapless(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    on = date(2026, 6, 1)

    async def take() -> str:
        async with unit_of_work(runtime) as uow:
            return await numbering.next_number(
                uow, staff.workspace_id, "invoice", "T-{YYYY}-{seq:03}", on
            )

    numbers = await asyncio.gather(*(take() for _ in range(CONCURRENT)))

    assert sorted(numbers) == [f"T-2026-{index:03d}" for index in range(1, CONCURRENT + 1)]


async def test_rolled_back_number_is_reused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    on = date(2026, 6, 1)

    class Abort(Exception):
        pass

    async with unit_of_work(runtime) as uow:
        first = await numbering.next_number(uow, staff.workspace_id, "credit_note", "C{seq}", on)
    with pytest.raises(Abort):
        async with unit_of_work(runtime) as uow:
            await numbering.next_number(uow, staff.workspace_id, "credit_note", "C{seq}", on)
            raise Abort
    async with unit_of_work(runtime) as uow:
        second = await numbering.next_number(uow, staff.workspace_id, "credit_note", "C{seq}", on)
        other_kind = await numbering.next_number(uow, staff.workspace_id, "invoice", "C{seq}", on)
        other_year = await numbering.next_number(
            uow, staff.workspace_id, "credit_note", "C{YYYY}-{seq}", date(2027, 1, 1)
        )

    assert (first, second, other_kind, other_year) == ("C1", "C2", "C1", "C2027-1")


async def test_concurrent_issue_through_api(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    other = await owner(client)
    enquiry = await client.post(
        f"{API}/enquiries",
        headers=staff.headers,
        json={"message": "Quote", "contact": {"name": "Ana", "email": "ana@example.org"}},
    )
    contact_id = enquiry.json()["contact"]["id"]
    drafts = []
    for _ in range(CONCURRENT):
        response = await client.post(
            f"{API}/invoices",
            headers=staff.headers,
            json={"contact_id": contact_id, "lines": [{"description": "Hour", "unit_price": 100}]},
        )
        assert response.status_code == 201, response.text
        drafts.append(response.json()["id"])

    responses = await asyncio.gather(
        *(client.post(f"{API}/invoices/{draft}/issue", headers=staff.headers) for draft in drafts)
    )

    assert [response.status_code for response in responses] == [200] * CONCURRENT
    year = responses[0].json()["issue_date"][:4]
    numbers = sorted(response.json()["number"] for response in responses)
    assert numbers == [f"INV-{year}-{index:04d}" for index in range(1, CONCURRENT + 1)]
    # Another workspace counts on its own.
    other_enquiry = await client.post(
        f"{API}/enquiries",
        headers=other.headers,
        json={
            "message": "Quote",
            "contact": {"name": "Bo", "email": f"bo-{uuid.uuid4().hex[:6]}@example.org"},
        },
    )
    draft = await client.post(
        f"{API}/invoices",
        headers=other.headers,
        json={
            "contact_id": other_enquiry.json()["contact"]["id"],
            "lines": [{"description": "Hour", "unit_price": 100}],
        },
    )
    issued = await client.post(f"{API}/invoices/{draft.json()['id']}/issue", headers=other.headers)
    assert issued.json()["number"] == f"INV-{year}-0001"
