"""Public form spam defence: honeypot, minimum fill time and the signed render token."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from factories import Staff, count_rows, create_form, form_path, owner, submit
from frontdesk.contacts.models import Contact
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry
from frontdesk.runtime import Runtime


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"form_min_fill_seconds": 5}


def _token(html: str) -> str:
    match = re.search(r'name="_render_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def _form_and_token(client: httpx.AsyncClient) -> tuple[Staff, dict[str, Any], str]:
    staff = await owner(client)
    form = await create_form(client, staff)
    page = await client.get(form_path(form))
    return staff, form, _token(page.text)


async def _nothing_stored(runtime: Runtime) -> None:
    assert await count_rows(runtime, Enquiry) == 0
    assert await count_rows(runtime, Contact) == 0
    assert await count_rows(runtime, Event, Event.name == "enquiry.created") == 0
    assert await count_rows(runtime, EmailMessage, EmailMessage.kind != "verification") == 0


async def test_patient_person_accepted(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _staff, form, token = await _form_and_token(client)
    clock.advance(seconds=5)
    response = await client.post(
        form_path(form), data={"name": "Ada", "email": "ada@example.com", "_render_token": token}
    )
    assert response.status_code == 303
    assert await count_rows(runtime, Enquiry) == 1


async def test_too_fast_fill_is_spam(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _staff, form, token = await _form_and_token(client)
    clock.advance(seconds=4.9)
    with capture_logs() as logs:
        response = await client.post(
            form_path(form),
            data={"name": "Bot", "email": "bot@example.com", "_render_token": token},
        )
    assert response.status_code == 303
    rejected = [entry for entry in logs if entry["event"] == "form.spam_rejected"]
    assert rejected == [
        {
            "event": "form.spam_rejected",
            "form_id": form["id"],
            "reason": "too_fast",
            "log_level": "info",
        }
    ]
    assert response.headers["location"] == f"{form['public_url']}/thanks"
    await _nothing_stored(runtime)


async def test_honeypot_html_is_spam(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _staff, form, token = await _form_and_token(client)
    clock.advance(seconds=60)
    response = await client.post(
        form_path(form),
        data={"name": "Bot", "website": "https://spam.example", "_render_token": token},
    )
    assert response.status_code == 303
    await _nothing_stored(runtime)


async def test_honeypot_json_is_spam(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    with capture_logs() as logs:
        response = await submit(client, form, {"name": "Bot", "website": "https://spam.example"})
    assert response.status_code == 201
    assert [entry.get("reason") for entry in logs if entry["event"] == "form.spam_rejected"] == [
        "honeypot"
    ]
    assert response.json() == {"status": "received"}
    await _nothing_stored(runtime)


async def test_json_needs_no_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    response = await submit(client, form, {"name": "Ada", "website": ""})
    assert response.status_code == 201
    assert await count_rows(runtime, Enquiry) == 1


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "123.abc", "not-digits.c2ln", None],
    ids=["empty", "garbage", "bad-signature", "bad-time", "missing"],
)
async def test_bad_token_is_spam(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, token: str | None
) -> None:
    _staff, form, _good = await _form_and_token(client)
    clock.advance(seconds=60)
    data = {"name": "Bot"}
    if token is not None:
        data["_render_token"] = token
    response = await client.post(form_path(form), data=data)
    assert response.status_code == 303
    await _nothing_stored(runtime)


async def test_tampered_time_is_spam(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _staff, form, token = await _form_and_token(client)
    issued, signature = token.split(".")
    backdated = f"{int(issued) - 60_000}.{signature}"
    response = await client.post(form_path(form), data={"name": "Bot", "_render_token": backdated})
    assert response.status_code == 303
    await _nothing_stored(runtime)


async def test_token_of_other_form_is_spam(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    staff, form, token = await _form_and_token(client)
    other = await create_form(client, staff, name="Other")
    clock.advance(seconds=60)
    response = await client.post(form_path(other), data={"name": "Bot", "_render_token": token})
    assert response.status_code == 303
    assert await count_rows(runtime, Enquiry) == 0
    accepted = await client.post(form_path(form), data={"name": "Ada", "_render_token": token})
    assert accepted.status_code == 303
    assert await count_rows(runtime, Enquiry) == 1


async def test_spam_redirects_to_redirect_url(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, redirect_url="https://studio.example/thanks")
    response = await client.post(form_path(form), data={"name": "Bot"})
    assert response.status_code == 303
    assert response.headers["location"] == "https://studio.example/thanks"
    await _nothing_stored(runtime)
