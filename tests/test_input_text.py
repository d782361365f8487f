"""Request input that cannot be stored as sent gets a 422 naming the field: JSON text with
unpaired surrogates, integers too large for a column, flags that are not JSON booleans and
query text that is not UTF-8."""

from __future__ import annotations

import uuid

import httpx
import pytest

from conftest import signup
from factories import create_form, field, owner

JSON = {"Content-Type": "application/json"}
LONE = "\\ud800"  # The JSON escape of a lone high surrogate, as a client may send it.


def assert_invalid(response: httpx.Response, field: str, code: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert error["code"] == code


async def test_signup_lone_surrogate_stores_nothing(client: httpx.AsyncClient) -> None:
    email = f"lone-{uuid.uuid4().hex[:8]}@example.com"
    body = (
        f'{{"email": "{email}", "password": "a long passphrase", "full_name": "Sam", '
        f'"workspace_name": "Studio {LONE}"}}'
    )

    response = await client.post("/api/v1/auth/signup", content=body, headers=JSON)

    assert_invalid(response, "workspace_name", "string_unicode")
    assert "unpaired UTF-16 surrogate" in response.json()["errors"][0]["message"]
    # Nothing was stored: the same address signs up afterwards.
    await signup(client, email=email)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"full_name": "Robin {LONE}"}}', "full_name"),
        (f'{{"full_name": "Robin", "locale": ["{LONE}"]}}', "locale.0"),
        (f'{{"full_name": "Robin", "{LONE}": 1}}', "body"),
        # Surrogate bytes written as UTF-8 rather than escaped.
        ('{"full_name": "Robin \xed\xa0\x80"}', "full_name"),
    ],
)
async def test_profile_lone_surrogate_names_field(
    client: httpx.AsyncClient, body: str, field: str
) -> None:
    staff = await owner(client)

    response = await client.patch(
        "/api/v1/me", content=body.encode("latin-1"), headers=JSON | staff.headers
    )

    assert_invalid(response, field, "string_unicode")


async def test_profile_surrogate_pair_accepted(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.patch(
        "/api/v1/me",
        content='{"full_name": "Robin \\ud83d\\ude00"}',
        headers=JSON | staff.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Robin \N{GRINNING FACE}"


async def test_nested_lone_surrogate_names_path(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.put(
        "/api/v1/chat/settings",
        content=f'{{"enabled": true, "theme": {{"title": "Hi {LONE}"}}}}',
        headers=JSON | staff.headers,
    )

    assert_invalid(response, "theme.title", "string_unicode")


async def test_bucket_size_over_64_bits_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.post(
        "/api/v1/storage/buckets",
        json={"name": "big", "max_object_bytes": 2**63},
        headers=staff.headers,
    )

    assert_invalid(response, "max_object_bytes", "less_than_equal")


async def test_history_seq_over_64_bits_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )
    path = f"/api/v1/conversations/{created.json()['id']}/messages"

    before = await client.get(path, params={"before": 2**63}, headers=staff.headers)
    around = await client.get(path, params={"around": str(2**63)}, headers=staff.headers)

    assert_invalid(before, "before", "less_than_equal")
    assert_invalid(around, "around", "invalid")
    assert "from 0 to 9223372036854775807" in around.json()["errors"][0]["message"]


async def test_nul_text_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )
    path = f"/api/v1/conversations/{created.json()['id']}"

    response = await client.patch(path, json={"subject": "Booking\x00"}, headers=staff.headers)
    stored = await client.get(path, headers=staff.headers)

    assert_invalid(response, "subject", "invalid_character")
    assert stored.json()["subject"] is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"full_name": "\xff\xfe"}',
        b'{"full_name": 1' + b"0" * 5000 + b"}",
        b'{"full_name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["not-utf-8", "long-integer", "deep-nesting"],
)
async def test_unreadable_json_names_body(client: httpx.AsyncClient, body: bytes) -> None:
    staff = await owner(client)

    response = await client.patch("/api/v1/me", content=body, headers=JSON | staff.headers)

    assert_invalid(response, "body", "json_invalid")


@pytest.mark.parametrize("flag", ["yes", "true", 1, 0])
async def test_form_flag_must_be_json_boolean(client: httpx.AsyncClient, flag: object) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    url = f"/api/v1/forms/{form['id']}"

    response = await client.patch(
        url, json={"published": flag, "name": "Renamed"}, headers=staff.headers
    )

    assert_invalid(response, "published", "bool_type")
    assert response.json()["errors"][0]["message"] == "Send true or false."
    # Nothing changed: the name is the old one.
    read = await client.get(url, headers=staff.headers)
    assert read.json()["name"] == form["name"]


async def test_required_flag_rejects_string(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    fields = [field("email", "email") | {"required": "no"}]

    response = await client.post(
        "/api/v1/forms", json={"name": "Booking", "fields": fields}, headers=staff.headers
    )

    assert_invalid(response, "fields.0.required", "bool_type")
    listed = await client.get("/api/v1/forms", headers=staff.headers)
    assert listed.json()["items"] == []


async def test_query_flag_invalid_word(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.post(
        f"/api/v1/storage/buckets/{uuid.uuid4()}/objects?key=a.txt&overwrite=maybe",
        content=b"x",
        headers=staff.headers,
    )

    assert_invalid(response, "overwrite", "bool_parsing")
    assert response.json()["errors"][0]["message"] == "Use true or false."


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("q=%ff%fe", "q", "string_unicode"),
        # "café" in Latin-1, percent-encoded.
        ("q=caf%e9", "q", "string_unicode"),
        ("limit=5&%ff=1", "query", "string_unicode"),
    ],
)
async def test_query_text_not_utf8_rejected(
    client: httpx.AsyncClient, query: str, field: str, code: str
) -> None:
    staff = await owner(client)
    url = httpx.URL("/api/v1/conversations/search").copy_with(query=query.encode())

    response = await client.get(url, headers=staff.headers)

    assert_invalid(response, field, code)


async def test_unknown_path_with_bad_text_is_404(client: httpx.AsyncClient) -> None:
    url = httpx.URL("/no/such/page").copy_with(query=b"q=%ff")
    query = await client.get(url)
    body = await client.post(
        "/no/such/page",
        content=b'{"name": "a\\u0000"}',
        headers={"content-type": "application/json"},
    )

    assert query.status_code == 404
    assert body.status_code == 404


async def test_query_text_utf8_accepted(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.get(
        "/api/v1/conversations/search?q=caf%C3%A9+%E2%9C%93", headers=staff.headers
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("seq", [True, "5", 5.0])
async def test_read_seq_must_be_json_integer(client: httpx.AsyncClient, seq: object) -> None:
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )
    url = f"/api/v1/conversations/{created.json()['id']}/read"

    response = await client.post(url, json={"seq": seq}, headers=staff.headers)

    assert_invalid(response, "seq", "int_type")
    assert response.json()["errors"][0]["message"].startswith("Send a whole number")


async def test_form_length_rule_must_be_json_integer(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    fields = [field("name", validation={"min_length": True, "max": "9"})]

    response = await client.post(
        "/api/v1/forms", json={"name": "Booking", "fields": fields}, headers=staff.headers
    )

    assert response.status_code == 422, response.text
    codes = {error["field"]: error["code"] for error in response.json()["errors"]}
    assert codes["fields.0.validation.min_length"] == "int_type"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32-le"])
async def test_utf16_json_body_rejected(client: httpx.AsyncClient, encoding: str) -> None:
    staff = await owner(client)
    body = '{"full_name": "Robin"}'.encode(encoding)

    response = await client.patch("/api/v1/me", content=body, headers=JSON | staff.headers)

    assert_invalid(response, "body", "json_invalid")
    me = await client.get("/api/v1/me", headers=staff.headers)
    assert me.json()["full_name"] != "Robin"


async def test_json_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.patch(
        "/api/v1/me", content=b'{"full_name": "Robin"}', headers=staff.headers
    )

    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        # Text of only invisible characters.
        ("/api/v1/enquiries", {"contact": {"name": "\u200b\u200b"}}, "contact.name"),
        ("/api/v1/enquiries", {"contact": {"name": "Zoe"}, "message": "\u200b"}, "message"),
        (
            "/api/v1/canned-responses",
            {"shortcut": "hi", "title": "\u200b", "body": "Hi"},
            "title",
        ),
        # Whole numbers given as true or text.
        ("/api/v1/storage/buckets", {"name": "b1", "max_object_bytes": True}, "max_object_bytes"),
        ("/api/v1/storage/buckets", {"name": "b2", "max_object_bytes": "5"}, "max_object_bytes"),
        (
            "/api/v1/forms",
            {
                "name": "F",
                "fields": [
                    {"key": "cv", "type": "file", "label": "CV", "file": {"max_files": True}}
                ],
            },
            "fields.0.file.max_files",
        ),
    ],
)
async def test_post_names_bad_field(
    client: httpx.AsyncClient, path: str, body: dict[str, object], field: str
) -> None:
    staff = await owner(client)

    response = await client.post(path, json=body, headers=staff.headers)

    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_text_too_long_counts_characters(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.post(
        "/api/v1/enquiries",
        json={"contact": {"name": "Zoe"}, "message": "Hi", "subject": "s" * 301},
        headers=staff.headers,
    )

    assert response.status_code == 422, response.text
    errors = {error["field"]: error for error in response.json()["errors"]}
    assert errors["subject"]["code"] == "too_long"
    assert errors["subject"]["message"] == "Use at most 300 characters."


async def test_date_as_number_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )
    url = f"/api/v1/conversations/{created.json()['id']}"

    response = await client.patch(
        url, json={"status": "snoozed", "snoozed_until": 0}, headers=staff.headers
    )

    assert_invalid(response, "snoozed_until", "datetime_type")
    read = await client.get(url, headers=staff.headers)
    assert read.json()["status"] == "open"


async def test_enquiry_errors_listed_together(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.post(
        "/api/v1/enquiries",
        json={"contact": {"name": "Zoe", "phone": "12"}, "message": "Hi", "tags": ["\u200b"]},
        headers=staff.headers,
    )

    assert response.status_code == 422, response.text
    fields = sorted(error["field"] for error in response.json()["errors"])
    assert fields == ["contact.phone", "tags.0"]


@pytest.mark.parametrize(
    ("path", "parameter", "value"),
    [
        ("/api/v1/enquiries", "created_after", "1700000000"),
        ("/api/v1/enquiries", "created_before", "-5"),
        ("/api/v1/conversations/search?q=hello", "from", "1700000000.5"),
        ("/api/v1/email/analytics?to=2026-02-01T00:00:00Z", "from", "1700000000"),
        ("/api/v1/enquiries", "created_after", "2026-13-45"),
        ("/api/v1/enquiries", "created_before", "2026-12-05T25:00:00Z"),
    ],
)
async def test_time_in_query_is_iso_text(
    client: httpx.AsyncClient, path: str, parameter: str, value: str
) -> None:
    staff = await owner(client)
    separator = "&" if "?" in path else "?"

    response = await client.get(f"{path}{separator}{parameter}={value}", headers=staff.headers)

    assert_invalid(response, parameter, "datetime_parsing")
    assert "ISO 8601" in response.json()["errors"][0]["message"]


async def test_date_as_digits_text_rejected(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    created = await client.post(
        "/api/v1/conversations", json={"channel": "chat"}, headers=staff.headers
    )
    url = f"/api/v1/conversations/{created.json()['id']}"

    response = await client.patch(
        url, json={"status": "snoozed", "snoozed_until": "1900000000"}, headers=staff.headers
    )

    assert_invalid(response, "snoozed_until", "datetime_parsing")
    read = await client.get(url, headers=staff.headers)
    assert read.json()["status"] == "open"


async def test_query_offset_plus_explained(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    # An unencoded + reaches the server as a space.
    response = await client.get(
        "/api/v1/enquiries?created_after=2026-12-05T15:28:36+01:00", headers=staff.headers
    )

    assert_invalid(response, "created_after", "datetime_parsing")
    assert "%2B" in response.json()["errors"][0]["message"]


async def test_analytics_offset_past_year_9999(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.get(
        "/api/v1/email/analytics",
        params={"from": "9999-12-31T00:00:00Z", "to": "9999-12-31T23:59:59-14:00"},
        headers=staff.headers,
    )

    assert_invalid(response, "to", "out_of_range")


@pytest.mark.parametrize(
    ("path", "start", "end"),
    [
        ("/api/v1/enquiries", "created_after", "created_before"),
        ("/api/v1/conversations/search?q=hello", "from", "to"),
    ],
)
async def test_empty_time_range_rejected(
    client: httpx.AsyncClient, path: str, start: str, end: str
) -> None:
    staff = await owner(client)
    separator = "&" if "?" in path else "?"

    response = await client.get(
        f"{path}{separator}{start}=2026-12-06T00:00:00Z&{end}=2026-12-01T00:00:00Z",
        headers=staff.headers,
    )

    assert_invalid(response, end, "invalid_range")
