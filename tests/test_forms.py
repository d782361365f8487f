"""Forms API: creation, strict definition checks, versions, permissions and workspaces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from factories import CONTACT_FIELDS, count_rows, create_form, field, member, owner
from frontdesk.forms.models import Form, FormVersion
from frontdesk.runtime import Runtime


async def test_create_form_returns_public_url(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(
        client,
        staff,
        language="fr",
        redirect_url="https://studio.example/merci",
        success_message="Merci !",
        allowed_origins=["https://Studio.example"],
    )
    assert form["name"] == "Contact us"
    assert form["published"] is True
    assert form["version"] == 1
    assert form["language"] == "fr"
    assert form["redirect_url"] == "https://studio.example/merci"
    assert form["success_message"] == "Merci !"
    assert form["allowed_origins"] == ["https://studio.example"]
    assert form["public_url"] == f"http://frontdesk.test/f/{form['public_id']}"
    assert [f["key"] for f in form["fields"]] == ["name", "email", "phone", "message"]
    assert await count_rows(runtime, FormVersion) == 1

    read = await client.get(f"/api/v1/forms/{form['id']}", headers=staff.headers)
    assert read.status_code == 200
    assert read.json() == form
    listed = await client.get("/api/v1/forms", headers=staff.headers)
    assert listed.json()["items"] == [form]


async def test_public_url_ignores_host_header(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/forms",
        json={"name": "Booking", "fields": CONTACT_FIELDS},
        headers={**staff.headers, "Host": "evil.example"},
    )
    assert response.status_code == 201
    assert response.json()["public_url"].startswith("http://frontdesk.test/f/")


async def test_unpublished_form_has_no_version(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, published=False)
    assert form["version"] == 0
    assert await count_rows(runtime, FormVersion) == 0


def _fields_with(index_field: dict[str, Any]) -> list[dict[str, Any]]:
    return [field("name"), field("email", "email"), index_field]


INVALID_DEFINITIONS: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing name", {"fields": CONTACT_FIELDS}, "name", "missing"),
    ("blank name", {"name": "  ", "fields": CONTACT_FIELDS}, "name", "string_too_short"),
    ("no fields", {"name": "F", "fields": []}, "fields", "too_short"),
    (
        "too many fields",
        {"name": "F", "fields": [field(f"f{i}") for i in range(101)]},
        "fields",
        "too_long",
    ),
    (
        "bad key",
        {"name": "F", "fields": _fields_with(field("Bad-Key"))},
        "fields.2.key",
        "invalid_key",
    ),
    (
        "key starts with digit",
        {"name": "F", "fields": _fields_with(field("1st"))},
        "fields.2.key",
        "invalid_key",
    ),
    (
        "duplicate key",
        {"name": "F", "fields": _fields_with(field("email"))},
        "fields.2.key",
        "duplicate_key",
    ),
    (
        "unknown type",
        {"name": "F", "fields": _fields_with(field("x", "color"))},
        "fields.2.type",
        "literal_error",
    ),
    (
        "missing label",
        {"name": "F", "fields": _fields_with({"key": "x", "type": "text"})},
        "fields.2.label",
        "missing",
    ),
    (
        "choice without options",
        {"name": "F", "fields": _fields_with(field("size", "choice"))},
        "fields.2.options",
        "missing",
    ),
    (
        "choice with empty options",
        {"name": "F", "fields": _fields_with(field("size", "multi_choice", options=[]))},
        "fields.2.options",
        "missing",
    ),
    (
        "duplicate option value",
        {
            "name": "F",
            "fields": _fields_with(
                field(
                    "size",
                    "choice",
                    options=[{"value": "s", "label": "S"}, {"value": "s", "label": "Small"}],
                )
            ),
        },
        "fields.2.options.1.value",
        "duplicate_value",
    ),
    (
        "options on text",
        {"name": "F", "fields": _fields_with(field("x", options=[{"value": "a", "label": "A"}]))},
        "fields.2.options",
        "not_applicable",
    ),
    (
        "min on text",
        {"name": "F", "fields": _fields_with(field("x", validation={"min": 1}))},
        "fields.2.validation.min",
        "not_applicable",
    ),
    (
        "min as text",
        {"name": "F", "fields": _fields_with(field("n", "number", validation={"min": "5"}))},
        "fields.2.validation.min",
        "number_type",
    ),
    (
        "max as flag",
        {"name": "F", "fields": _fields_with(field("n", "number", validation={"max": True}))},
        "fields.2.validation.max",
        "number_type",
    ),
    (
        "pattern on number",
        {"name": "F", "fields": _fields_with(field("n", "number", validation={"pattern": "1"}))},
        "fields.2.validation.pattern",
        "not_applicable",
    ),
    (
        "max_length on date",
        {"name": "F", "fields": _fields_with(field("d", "date", validation={"max_length": 3}))},
        "fields.2.validation.max_length",
        "not_applicable",
    ),
    (
        "min_length above max_length",
        {
            "name": "F",
            "fields": _fields_with(field("x", validation={"min_length": 5, "max_length": 2})),
        },
        "fields.2.validation.max_length",
        "invalid_range",
    ),
    (
        "min above max",
        {
            "name": "F",
            "fields": _fields_with(field("n", "number", validation={"min": 5, "max": 1})),
        },
        "fields.2.validation.max",
        "invalid_range",
    ),
    (
        "invalid pattern",
        {"name": "F", "fields": _fields_with(field("x", validation={"pattern": "(a"}))},
        "fields.2.validation.pattern",
        "invalid_pattern",
    ),
    (
        "lookbehind pattern",
        {"name": "F", "fields": _fields_with(field("x", validation={"pattern": "(?<=a)b"}))},
        "fields.2.validation.pattern",
        "invalid_pattern",
    ),
    (
        "unknown validation key",
        {"name": "F", "fields": _fields_with(field("x", validation={"regex": "a"}))},
        "fields.2.validation.regex",
        "extra_forbidden",
    ),
    (
        "unknown language",
        {"name": "F", "fields": CONTACT_FIELDS, "language": "xx"},
        "language",
        "unsupported_language",
    ),
    (
        "relative redirect",
        {"name": "F", "fields": CONTACT_FIELDS, "redirect_url": "/thanks"},
        "redirect_url",
        "invalid_url",
    ),
    (
        "javascript redirect",
        {"name": "F", "fields": CONTACT_FIELDS, "redirect_url": "javascript:alert(1)"},
        "redirect_url",
        "invalid_url",
    ),
    (
        "origin with path",
        {"name": "F", "fields": CONTACT_FIELDS, "allowed_origins": ["https://a.example/page"]},
        "allowed_origins.0",
        "invalid_origin",
    ),
    # NUL is rejected for every JSON body before the form's own checks run.
    ("nul in name", {"name": "Book\x00ing", "fields": CONTACT_FIELDS}, "name", "invalid_character"),
    (
        "nul in label",
        {"name": "F", "fields": _fields_with(field("x", label="Na\x00me"))},
        "fields.2.label",
        "invalid_character",
    ),
    (
        "control in option",
        {
            "name": "F",
            "fields": _fields_with(
                field("x", "choice", options=[{"value": "a\x07", "label": "A"}])
            ),
        },
        "fields.2.options.0.value",
        "value_error",
    ),
    (
        "nul in origin",
        {"name": "F", "fields": CONTACT_FIELDS, "allowed_origins": ["https://a\x00.example"]},
        "allowed_origins.0",
        "invalid_character",
    ),
    (
        "port zero origin",
        {"name": "F", "fields": CONTACT_FIELDS, "allowed_origins": ["https://a.example:0"]},
        "allowed_origins.0",
        "invalid_origin",
    ),
    (
        "wildcard origin",
        {"name": "F", "fields": CONTACT_FIELDS, "allowed_origins": ["*"]},
        "allowed_origins.0",
        "invalid_origin",
    ),
]


@pytest.mark.parametrize(
    ("body", "path", "code"),
    [case[1:] for case in INVALID_DEFINITIONS],
    ids=[case[0] for case in INVALID_DEFINITIONS],
)
async def test_invalid_definition_rejected(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], path: str, code: str
) -> None:
    staff = await owner(client)
    response = await client.post("/api/v1/forms", json=body, headers=staff.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {"field": path, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in errors
    ]
    assert await count_rows(runtime, Form) == 0
    assert await count_rows(runtime, FormVersion) == 0


async def test_definition_errors_all_listed(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    body = {
        "name": "F",
        "fields": [field("ok"), field("BAD"), field("n", "number", validation={"pattern": "("})],
        "language": "zz",
    }
    response = await client.post("/api/v1/forms", json=body, headers=staff.headers)
    assert response.status_code == 422
    fields = sorted(error["field"] for error in response.json()["errors"])
    assert fields == ["fields.1.key", "fields.2.validation.pattern", "language"]


async def test_published_change_adds_version(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    url = f"/api/v1/forms/{form['id']}"

    renamed = await client.patch(url, json={"name": "Get in touch"}, headers=staff.headers)
    assert renamed.status_code == 200
    assert renamed.json()["version"] == 2

    settings_only = await client.patch(
        url, json={"success_message": "Thanks"}, headers=staff.headers
    )
    assert settings_only.json()["version"] == 2

    unpublished = await client.patch(
        url,
        json={"published": False, "fields": [field("email", "email", required=True)]},
        headers=staff.headers,
    )
    assert unpublished.json()["published"] is False
    assert unpublished.json()["version"] == 2

    republished = await client.patch(url, json={"published": True}, headers=staff.headers)
    assert republished.json()["version"] == 3

    same_again = await client.patch(url, json={"published": True}, headers=staff.headers)
    assert same_again.json()["version"] == 3

    versions = await client.get(f"{url}/versions", headers=staff.headers)
    assert versions.status_code == 200
    items = versions.json()["items"]
    assert [v["version"] for v in items] == [3, 2, 1]
    assert [v["name"] for v in items] == ["Get in touch", "Get in touch", "Contact us"]
    assert [f["key"] for f in items[0]["fields"]] == ["email"]
    assert [f["key"] for f in items[2]["fields"]] == ["name", "email", "phone", "message"]


async def test_update_rejects_null_and_invalid(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    url = f"/api/v1/forms/{form['id']}"
    null_name = await client.patch(url, json={"name": None}, headers=staff.headers)
    assert null_name.status_code == 422
    assert null_name.json()["errors"][0]["field"] == "name"
    bad_pattern = await client.patch(
        url, json={"fields": [field("x", validation={"pattern": "[z-a]"})]}, headers=staff.headers
    )
    assert bad_pattern.status_code == 422
    assert bad_pattern.json()["errors"][0]["field"] == "fields.0.validation.pattern"
    unchanged = await client.get(url, headers=staff.headers)
    assert unchanged.json() == form


async def test_clear_redirect_url(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, redirect_url="https://studio.example/thanks")
    response = await client.patch(
        f"/api/v1/forms/{form['id']}", json={"redirect_url": None}, headers=staff.headers
    )
    assert response.status_code == 200
    assert response.json()["redirect_url"] is None


async def test_delete_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    response = await client.delete(f"/api/v1/forms/{form['id']}", headers=staff.headers)
    assert response.status_code == 204
    assert await count_rows(runtime, Form) == 0
    assert await count_rows(runtime, FormVersion) == 0
    again = await client.get(f"/api/v1/forms/{form['id']}", headers=staff.headers)
    assert again.status_code == 404
    page = await client.get(f"/f/{form['public_id']}")
    assert page.status_code == 404


async def test_agent_reads_but_cannot_change(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    agent = await member(client, runtime, staff.workspace_id, role="agent")
    created = await client.post(
        "/api/v1/forms", json={"name": "F", "fields": CONTACT_FIELDS}, headers=agent.headers
    )
    assert created.status_code == 403
    assert created.json()["code"] == "forbidden"
    changed = await client.patch(
        f"/api/v1/forms/{form['id']}", json={"name": "X"}, headers=agent.headers
    )
    assert changed.status_code == 403
    deleted = await client.delete(f"/api/v1/forms/{form['id']}", headers=agent.headers)
    assert deleted.status_code == 403
    assert (await client.get("/api/v1/forms", headers=agent.headers)).status_code == 200
    read = await client.get(f"/api/v1/forms/{form['id']}", headers=agent.headers)
    assert read.status_code == 200
    assert await count_rows(runtime, Form) == 1


async def test_admin_can_create(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    admin = await member(client, runtime, staff.workspace_id, role="admin")
    await create_form(client, admin)


async def test_other_workspace_form_not_found(client: httpx.AsyncClient) -> None:
    first = await owner(client)
    second = await owner(client)
    form = await create_form(client, first)
    url = f"/api/v1/forms/{form['id']}"
    missing = await client.get(
        "/api/v1/forms/0191d2a8-0000-7000-8000-000000000000", headers=second.headers
    )
    for response in (
        await client.get(url, headers=second.headers),
        await client.patch(url, json={"name": "X"}, headers=second.headers),
        await client.delete(url, headers=second.headers),
        await client.get(f"{url}/versions", headers=second.headers),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert response.json()["detail"].replace(form["id"], "ID") == missing.json()[
            "detail"
        ].replace("0191d2a8-0000-7000-8000-000000000000", "ID")
    assert (await client.get("/api/v1/forms", headers=second.headers)).json()["items"] == []


async def test_malformed_form_id_is_422(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.get("/api/v1/forms/not-a-uuid", headers=staff.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "form_id"


async def test_language_region_kept(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, language="pt_br")
    assert form["language"] == "pt-BR"
    page = await client.get(httpx.URL(form["public_url"]).path)
    assert '<html lang="pt-BR">' in page.text
    assert ">Enviar</button>" in page.text
