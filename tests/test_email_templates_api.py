"""Email templates API: create, version per locale, preview, send, and the checks on each."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import run_jobs
from factories import Staff, member, owner
from frontdesk.email.models import EmailMessage
from frontdesk.email.template_service import choose_locale
from frontdesk.runtime import Runtime

VARIABLES = [
    {"name": "first_name", "type": "string", "sample": "Ada"},
    {"name": "visit", "type": "date", "required": False, "sample": "2027-03-01"},
]
TEMPLATE = {
    "key": "visit_reminder",
    "name": "Visit reminder",
    "variables": VARIABLES,
    "locale": "en",
    "subject": "See you soon, {{ first_name }}",
    "body": "<h1>Hello {{ first_name }}</h1><p>Your visit is on {{ visit }}.</p>"
    '<p><a href="https://studio.example/visit">Details</a></p>',
}


async def create(client: httpx.AsyncClient, staff: Staff, **changes: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/email/templates", headers=staff.headers, json={**TEMPLATE, **changes}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


async def test_create_and_preview_with_samples(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    assert template["locales"]["en"]["version"] == 1

    response = await client.post(
        f"/api/v1/email/templates/{template['id']}/preview", headers=staff.headers, json={}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["subject"] == "See you soon, Ada"
    assert "Hello Ada" in preview["html"]
    assert "2027-03-01" in preview["text"]
    assert "Details (https://studio.example/visit)" in preview["text"]


async def test_unknown_and_missing_variables_reported(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    unknown = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={**TEMPLATE, "subject": "Hi {{ first_name }} {{ nickname }}"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "unknown_variable"
    assert "nickname" in unknown.json()["errors"][0]["message"]

    template = await create(client, staff)
    preview = await client.post(
        f"/api/v1/email/templates/{template['id']}/preview",
        headers=staff.headers,
        json={"data": {"visit": 5, "extra": "x"}},
    )
    assert preview.status_code == 422
    assert set(fields(preview)) == {"data.first_name", "data.visit", "data.extra"}


async def test_sandbox_escape_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    saved = await client.put(
        f"/api/v1/email/templates/{template['id']}/locales/en",
        headers=staff.headers,
        json={"subject": "x", "body": "<p>{{ first_name.__class__.__mro__ }}</p>"},
    )
    preview = await client.post(
        f"/api/v1/email/templates/{template['id']}/preview", headers=staff.headers, json={}
    )
    assert saved.status_code == 200, saved.text
    assert preview.status_code == 422
    assert preview.json()["errors"][0] == {
        "field": "body",
        "message": preview.json()["errors"][0]["message"],
        "code": "unsafe_operation",
    }
    assert "<class" not in preview.text


async def test_locales_versions_and_fallback(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    path = f"/api/v1/email/templates/{template['id']}"
    for subject in ["Bis bald, {{ first_name }}", "Bis bald {{ first_name }}!"]:
        saved = await client.put(
            f"{path}/locales/de",
            headers=staff.headers,
            json={
                "subject": subject,
                "body_format": "markdown",
                "body": "**Hallo** {{ first_name }}",
            },
        )
        assert saved.status_code == 200, saved.text
    assert saved.json()["locales"]["de"]["version"] == 2

    german = await client.post(f"{path}/preview", headers=staff.headers, json={"locale": "de-AT"})
    french = await client.post(f"{path}/preview", headers=staff.headers, json={"locale": "fr"})
    assert german.json()["locale"] == "de"
    assert german.json()["subject"] == "Bis bald Ada!"
    assert "<strong>Hallo</strong>" in german.json()["html"]
    assert french.json()["locale"] == "en"

    versions = await client.get(f"{path}/versions", headers=staff.headers, params={"locale": "de"})
    assert [item["version"] for item in versions.json()["items"]] == [2, 1]


async def test_markdown_values_stay_text(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(
        client, staff, body_format="markdown", body="Hello {{ first_name }}, welcome."
    )
    response = await client.post(
        f"/api/v1/email/templates/{template['id']}/preview",
        headers=staff.headers,
        json={"data": {"first_name": "**Ada** <b>x</b>"}},
    )
    assert response.status_code == 200, response.text
    html = response.json()["html"]
    assert "<strong>" not in html
    assert "<b>" not in html


async def test_schema_change_checked_against_versions(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    response = await client.patch(
        f"/api/v1/email/templates/{template['id']}",
        headers=staff.headers,
        json={"variables": [{"name": "visit", "type": "date"}]},
    )
    assert response.status_code == 422
    assert fields(response)[0].startswith("locales.en.")


async def test_duplicate_key_conflict(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    await create(client, staff)
    response = await client.post("/api/v1/email/templates", headers=staff.headers, json=TEMPLATE)
    assert response.status_code == 409
    assert response.json()["code"] == "template_exists"


async def test_send_queues_rendered_email(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    template = await create(client, staff)
    response = await client.post(
        f"/api/v1/email/templates/{template['id']}/send",
        headers=agent.headers,
        json={"to": "ada@example.org", "data": {"first_name": "Ada"}},
    )
    assert response.status_code == 202, response.text
    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        message = (
            await session.scalars(sa.select(EmailMessage).where(EmailMessage.kind == "template"))
        ).one()
    assert message.subject == "See you soon, Ada"
    assert message.template_key == "visit_reminder"
    assert message.status == "sent"
    assert "Auto-Submitted" not in message.headers


async def test_agent_cannot_edit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    response = await client.post("/api/v1/email/templates", headers=agent.headers, json=TEMPLATE)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [("pt-BR", "pt-BR"), ("pt-PT", "pt"), ("es", "en"), (None, "en")],
)
def test_choose_locale(requested: str | None, chosen: str) -> None:
    assert choose_locale(["en", "pt", "pt-BR"], requested, "en") == chosen


async def test_workspace_replaces_acknowledgement(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    replacement = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={
            "key": "enquiry_acknowledgement",
            "name": "Our thank-you",
            "variables": [
                {"name": "contact_name", "type": "string", "required": False, "sample": "Ada"},
                {"name": "business_name", "type": "string", "sample": "Studio"},
            ],
            "subject": "Thanks from {{ business_name }}",
            "body": "<p>Dear {{ contact_name or 'friend' }}, we will call you.</p>",
        },
    )
    assert replacement.status_code == 201, replacement.text
    form = await client.post(
        "/api/v1/forms",
        headers=staff.headers,
        json={
            "name": "Contact",
            "fields": [
                {"key": "name", "type": "text", "label": "Name"},
                {"key": "email", "type": "email", "label": "Email"},
            ],
        },
    )
    public = httpx.URL(form.json()["public_url"]).path
    submitted = await client.post(public, json={"name": "Grace", "email": "grace@example.org"})
    assert submitted.status_code == 201, submitted.text

    async with runtime.sessionmaker() as session:
        message = (
            await session.scalars(
                sa.select(EmailMessage).where(EmailMessage.kind == "enquiry_acknowledgement")
            )
        ).one()
    assert message.subject.startswith("Thanks from ")
    assert "Dear Grace, we will call you." in message.html_body


async def test_replacement_variables_limited(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/email/templates",
        headers=staff.headers,
        json={
            "key": "enquiry_acknowledgement",
            "name": "Bad",
            "variables": [{"name": "discount_code", "type": "string", "sample": "X"}],
            "subject": "{{ discount_code }}",
            "body": "<p>x</p>",
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "variables.0.name"
    assert response.json()["errors"][0]["code"] == "not_provided"


async def test_preview_without_body(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    response = await client.post(
        f"/api/v1/email/templates/{template['id']}/preview", headers=staff.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "See you soon, Ada"


async def test_outbox_sends_attachments_unread(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    template = await create(client, staff)
    bucket = await client.post(
        "/api/v1/storage/buckets", headers=staff.headers, json={"name": "files"}
    )
    stored = await client.post(
        f"/api/v1/storage/buckets/{bucket.json()['id']}/objects",
        headers=staff.headers | {"Content-Type": "text/plain"},
        params={"key": "notes.txt"},
        content=b"notes",
    )
    response = await client.post(
        f"/api/v1/email/templates/{template['id']}/send",
        headers=staff.headers,
        json={
            "to": "ada@example.org",
            "data": {"first_name": "Ada"},
            "attachments": [{"object_id": stored.json()["id"]}],
        },
    )
    assert response.status_code == 202, response.text
    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        message = await session.get(EmailMessage, uuid.UUID(response.json()["email_id"]))
    assert message is not None
    assert message.status == "sent"
    assert message.transport == "outbox"
