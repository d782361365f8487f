"""Email analytics: per-message events, rates per period and template, CSV, machine opens."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx

from conftest import run_jobs
from factories import Staff, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailEvent
from frontdesk.email.service import queue_email
from frontdesk.runtime import Runtime


async def sent_message(runtime: Runtime, staff: Staff, template_key: str | None) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        message = await queue_email(
            uow,
            kind="template",
            to=f"client-{uuid.uuid4().hex[:6]}@example.org",
            subject="Hello",
            text="Hello",
            html="<p>Hello</p>",
            workspace_id=staff.workspace_id,
        )
        message.template_key = template_key
        email_id = message.id
    await run_jobs(runtime)
    return email_id


async def add_event(
    runtime: Runtime,
    staff: Staff,
    email_id: uuid.UUID,
    event_type: str,
    clock: FrozenClock,
    machine_reason: str | None = None,
) -> None:
    async with unit_of_work(runtime) as uow:
        uow.session.add(
            EmailEvent(
                id=uuid7(),
                workspace_id=staff.workspace_id,
                email_id=email_id,
                provider="postmark",
                provider_event_id=uuid.uuid4().hex,
                type=event_type,
                occurred_at=clock.now(),
                machine_reason=machine_reason,
                received_at=clock.now(),
                processed_at=clock.now(),
            )
        )


def period(clock: FrozenClock) -> dict[str, str]:
    return {
        "from": (clock.now() - timedelta(days=1)).isoformat(),
        "to": (clock.now() + timedelta(days=1)).isoformat(),
    }


async def test_rates_leave_out_machines(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    first = await sent_message(runtime, staff, "welcome")
    second = await sent_message(runtime, staff, "welcome")
    third = await sent_message(runtime, staff, "reminder")
    for email_id in (first, second, third):
        await add_event(runtime, staff, email_id, "delivered", clock)
    await add_event(runtime, staff, first, "opened", clock, machine_reason="known_agent")
    await add_event(runtime, staff, second, "opened", clock)
    await add_event(runtime, staff, second, "opened", clock)
    await add_event(runtime, staff, second, "clicked", clock)
    await add_event(runtime, staff, third, "bounced", clock)

    response = await client.get(
        "/api/v1/email/analytics",
        headers=staff.headers,
        params={**period(clock), "group_by": "template"},
    )

    assert response.status_code == 200, response.text
    rows = {row["group"]: row for row in response.json()["rows"]}
    welcome: dict[str, Any] = rows["welcome"]
    assert welcome["sent"] == 2
    assert welcome["opened"] == 1
    assert welcome["open_rate"] == 0.5
    assert welcome["click_through_rate"] == 1.0
    assert rows["reminder"]["bounce_rate"] == 1.0


async def test_csv_export(client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock) -> None:
    staff = await owner(client)
    await sent_message(runtime, staff, None)
    response = await client.get(
        "/api/v1/email/analytics", headers=staff.headers, params={**period(clock), "format": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:3] == ["group", "sent", "delivered"]
    assert table[1][0] == clock.now().date().isoformat()
    assert table[1][1] == "1"


async def test_range_checked(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    staff = await owner(client)
    backwards = await client.get(
        "/api/v1/email/analytics",
        headers=staff.headers,
        params={
            "from": clock.now().isoformat(),
            "to": (clock.now() - timedelta(days=1)).isoformat(),
        },
    )
    naive = await client.get(
        "/api/v1/email/analytics",
        headers=staff.headers,
        params={"from": "2027-01-01T00:00:00", "to": "2027-02-01T00:00:00Z"},
    )
    too_long = await client.get(
        "/api/v1/email/analytics",
        headers=staff.headers,
        params={"from": "2025-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "from"
    assert too_long.json()["errors"][0]["code"] == "range_too_long"


async def test_message_events_timeline(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff = await owner(client)
    other = await owner(client)
    email_id = await sent_message(runtime, staff, None)
    await add_event(runtime, staff, email_id, "delivered", clock)
    clock.advance(seconds=30)
    await add_event(runtime, staff, email_id, "opened", clock)

    mine = await client.get(f"/api/v1/email/messages/{email_id}/events", headers=staff.headers)
    theirs = await client.get(f"/api/v1/email/messages/{email_id}/events", headers=other.headers)

    assert [item["type"] for item in mine.json()["items"]] == ["delivered", "opened"]
    assert theirs.status_code == 404
