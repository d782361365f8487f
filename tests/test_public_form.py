"""Public form: the page, JSON and browser submissions, CORS and rate limits."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any

import httpx
import pytest

from factories import (
    Staff,
    count_rows,
    create_form,
    enquiries,
    field,
    form_path,
    owner,
    submit,
    submit_ok,
)
from frontdesk.contacts.models import Contact
from frontdesk.enquiries.models import Enquiry
from frontdesk.forms.i18n import SUPPORTED_LANGUAGES, TEXTS
from frontdesk.runtime import Runtime

CHOICES = [{"value": "small", "label": "Small"}, {"value": "large", "label": "Large"}]

RICH_FIELDS = [
    field("name", required=True, label="Your name", help="As on your ID"),
    field("email", "email", required=True, label="Email"),
    field("guests", "number", validation={"min": 1, "max": 20}),
    field("code", validation={"pattern": "[A-Z]{3}-[0-9]{2}", "min_length": 6}),
    field("size", "choice", options=CHOICES),
    field(
        "extras",
        "multi_choice",
        options=[{"value": "wifi", "label": "Wi-Fi"}, {"value": "tea", "label": "Tea"}],
    ),
    field("day", "date"),
    field("newsletter", "checkbox", label="Send me news"),
    field("terms", "consent", required=True, label="I agree to be contacted about my enquiry."),
    field("message", "long_text", validation={"min_length": 10}),
]

VALID = {
    "name": "Ada Lovelace",
    "email": "Ada@Example.com",
    "guests": 4,
    "code": "ABC-12",
    "size": "small",
    "extras": ["tea", "wifi", "tea"],
    "day": "2027-03-01",
    "newsletter": True,
    "terms": True,
    "message": "We would like to visit in spring.",
}


async def _rich_form(client: httpx.AsyncClient, **settings: Any) -> tuple[Staff, dict[str, Any]]:
    staff = await owner(client)
    form = await create_form(client, staff, RICH_FIELDS, name="Booking", **settings)
    return staff, form


def _token(html: str) -> str:
    match = re.search(r'name="_render_token" value="([^"]+)"', html)
    assert match, "no render token in the page"
    return match.group(1)


async def test_page_renders_accessible_form(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client, language="de")
    response = await client.get(
        form_path(form), headers={"Referer": "https://studio.example/contact"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="de">' in html
    assert '<label for="f-name">Your name' in html
    assert 'id="f-name" name="name" type="text"' in html
    assert 'aria-describedby="f-name-help"' in html
    assert '<p class="help" id="f-name-help">As on your ID</p>' in html
    assert 'id="f-email" name="email" type="email"' in html
    assert 'type="radio" id="f-size-0" name="size" value="small"' in html
    assert "<legend>Size" in html
    assert 'type="checkbox" id="f-terms" name="terms" value="true" required' in html
    assert '<span class="req" aria-hidden="true">*</span>' in html
    assert "Mit * markierte Felder sind Pflichtfelder." in html
    assert ">Senden</button>" in html
    # Honeypot: hidden from people and assistive technology, skipped by the keyboard.
    assert '<div class="hp" aria-hidden="true">' in html
    assert 'name="website" value="" tabindex="-1" autocomplete="off"' in html
    assert re.search(r'name="_render_token" value="\d+\.[A-Za-z0-9_-]+"', html)
    assert 'name="_referrer" value="https://studio.example/contact"' in html
    assert "<script" not in html
    assert "http://" not in html.replace(form["public_url"], "").replace(
        "https://studio.example/contact", ""
    )
    assert "x-frame-options" not in response.headers
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors *" in policy
    assert "default-src 'none'" in policy
    assert "form-action 'self' http://frontdesk.test" in policy
    assert response.headers["cache-control"] == "no-store"
    style = html.split("<style>")[1].split("</style>")[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy


async def test_page_frame_ancestors_follow_origins(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(
        client, allowed_origins=["https://studio.example"], redirect_url="https://studio.example/ok"
    )
    response = await client.get(form_path(form))
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://studio.example" in policy
    assert "form-action 'self' http://frontdesk.test https://studio.example" in policy


async def test_page_escapes_labels(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(
        client, staff, [field("name", label="<script>alert(1)</script>")], name="<b>Hi</b>"
    )
    html = (await client.get(form_path(form))).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Hi&lt;/b&gt;" in html


async def test_honeypot_avoids_field_named_website(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("website", label="Your site")])
    html = (await client.get(form_path(form))).text
    assert 'name="url" value="" tabindex="-1"' in html
    await submit_ok(client, form, {"website": "https://ada.example"})
    assert (await enquiries(client, staff))["items"][0]["answers"] == {
        "website": "https://ada.example"
    }


async def test_unknown_and_unpublished_are_404(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, published=False)
    for path in ("/f/nope", "/f/%00", "/f/a%20b", form_path(form), f"{form_path(form)}/thanks"):
        page = await client.get(path)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Form not available" in page.text
    json_post = await client.post(form_path(form), json={"name": "x"})
    assert json_post.status_code == 404
    assert json_post.headers["content-type"] == "application/problem+json"
    html_post = await client.post(form_path(form), data={"name": "x"})
    assert html_post.status_code == 404
    assert html_post.headers["content-type"].startswith("text/html")


async def test_json_submission_normalizes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, form = await _rich_form(client)
    response = await submit(client, form, VALID, headers={"Referer": "https://studio.example/book"})
    assert response.status_code == 201
    assert response.json() == {"status": "received"}
    items = (await enquiries(client, staff))["items"]
    assert len(items) == 1
    enquiry = items[0]
    assert enquiry["answers"] == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "guests": 4,
        "code": "ABC-12",
        "size": "small",
        "extras": ["tea", "wifi"],
        "day": "2027-03-01",
        "newsletter": True,
        "message": "We would like to visit in spring.",
    }
    assert enquiry["source"] == "form"
    assert enquiry["source_details"] == {
        "form_id": form["id"],
        "form_name": "Booking",
        "form_version": 1,
        "language": "en",
        "referrer": "https://studio.example/book",
    }
    assert enquiry["form_id"] == form["id"]
    assert enquiry["form_version"] == 1
    assert enquiry["status"] == "new"
    assert enquiry["subject"] == "Booking"
    consent = enquiry["consent"]["terms"]
    assert consent["given"] is True
    assert consent["text"] == "I agree to be contacted about my enquiry."
    assert consent["form_version"] == 1
    assert consent["at"] == runtime.clock.now().isoformat()
    assert enquiry["contact"]["email"] == "ada@example.com"
    assert enquiry["contact"]["name"] == "Ada Lovelace"


async def test_number_strings_and_floats(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("n", "number"), field("m", "number")])
    await submit_ok(client, form, {"n": "2.50", "m": 3.0})
    assert (await enquiries(client, staff))["items"][0]["answers"] == {"n": 2.5, "m": 3}


INVALID_ANSWERS: list[tuple[str, dict[str, Any], str, str]] = [
    ("required missing", {"name": None}, "name", "required"),
    ("required blank", {"name": "   "}, "name", "required"),
    ("required control characters", {"name": "\x01\x07"}, "name", "required"),
    ("NUL", {"name": "Ada\x00"}, "name", "invalid_character"),
    ("bad email", {"email": "ada@"}, "email", "invalid_email"),
    ("number above max", {"guests": 21}, "guests", "too_large"),
    ("number below min", {"guests": 0}, "guests", "too_small"),
    ("number not numeric", {"guests": "four"}, "guests", "invalid_number"),
    ("number as bool", {"guests": True}, "guests", "invalid_type"),
    ("pattern mismatch", {"code": "abc-12"}, "code", "pattern_mismatch"),
    ("pattern needs full match", {"code": "XABC-12"}, "code", "pattern_mismatch"),
    ("min_length", {"message": "short"}, "message", "too_short"),
    ("unknown choice", {"size": "medium"}, "size", "invalid_choice"),
    ("unknown multi choice", {"extras": ["tea", "spa"]}, "extras", "invalid_choice"),
    ("multi choice not list", {"extras": "tea"}, "extras", "invalid_type"),
    ("bad date", {"day": "2027-02-30"}, "day", "invalid_date"),
    ("date format", {"day": "01/03/2027"}, "day", "invalid_date"),
    ("consent missing", {"terms": False}, "terms", "consent_required"),
    ("checkbox not bool", {"newsletter": "yes"}, "newsletter", "invalid_type"),
    ("text not string", {"name": 42}, "name", "invalid_type"),
    ("unknown key", {"colour": "red"}, "colour", "unknown_field"),
]


@pytest.mark.parametrize(
    ("change", "key", "code"),
    [case[1:] for case in INVALID_ANSWERS],
    ids=[case[0] for case in INVALID_ANSWERS],
)
async def test_json_invalid_answer_is_422(
    client: httpx.AsyncClient, runtime: Runtime, change: dict[str, Any], key: str, code: str
) -> None:
    _staff, form = await _rich_form(client)
    response = await submit(client, form, {**VALID, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [(key, code)]
    assert errors[0]["message"]
    assert await count_rows(runtime, Enquiry) == 0
    assert await count_rows(runtime, Contact) == 0


async def test_flag_answer_says_true_or_false(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client, language="de")
    response = await submit(client, form, {**VALID, "newsletter": "yes"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("newsletter", "invalid_type")
    assert error["message"] == "Senden Sie true oder false."


async def test_json_errors_in_form_language(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client, language="fr")
    response = await submit(client, form, {**VALID, "name": "", "guests": 50})
    assert response.status_code == 422
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert messages == {
        "name": "Ce champ est obligatoire.",
        "guests": "Saisissez un nombre inférieur ou égal à 20.",
    }


async def test_json_body_must_be_object(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client)
    listed = await client.post(form_path(form), json=["a"])
    assert listed.status_code == 422
    assert listed.json()["errors"][0]["field"] == "body"
    broken = await client.post(
        form_path(form), content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["code"] == "json_invalid"
    # Deeper than Python's JSON parser goes, in 2 KB.
    deep = await client.post(
        form_path(form),
        content=b"[" * 1000 + b"]" * 1000,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 422, deep.text
    assert [(e["field"], e["code"]) for e in deep.json()["errors"]] == [("body", "json_invalid")]
    text = await client.post(form_path(form), content=b"hi", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert text.headers["content-type"] == "application/problem+json"


async def test_invalid_phone_is_422(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    response = await submit(client, form, {"name": "Ada", "phone": "12"})
    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("phone", "invalid_phone")
    ]
    assert await count_rows(runtime, Contact) == 0


async def test_control_characters_removed(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    await submit_ok(client, form, {"name": "Ada\x01 L\x07", "message": "line one\r\nline two\x1b"})
    answers = (await enquiries(client, staff))["items"][0]["answers"]
    assert answers == {"name": "Ada L", "message": "line one\nline two"}


async def test_unicode_line_breaks_normalized(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    answers = {"name": "Ada\u2028Lovelace\x85", "message": "one\u2028two\u2029three\x85four\x9b"}

    await submit_ok(client, form, answers)

    stored = (await enquiries(client, staff))["items"][0]["answers"]
    assert stored["name"] == "Ada Lovelace"
    assert stored["message"] == "one\ntwo\nthree\nfour"


async def test_invisible_answer_counts_as_missing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)

    response = await submit(client, form, {"name": "\u200b\ufeff\u2060 ", "phone": "\u200b"})

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("name", "required")]
    assert await count_rows(runtime, Enquiry) == 0


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (9007199254740993, "too_large"),
        ("9007199254740993", "too_large"),
        (-(10**30), "too_small"),
        ("1" * 5000, "too_large"),
        # Written with a fraction or an exponent, still past what a double represents exactly.
        (9007199254740993.0, "too_large"),
        (1e16, "too_large"),
        ("1e16", "too_large"),
        (-12345678901234567890.5, "too_small"),
    ],
)
async def test_inexact_whole_number_rejected(
    client: httpx.AsyncClient, runtime: Runtime, answer: object, code: str
) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("big", "number")])

    response = await submit(client, form, {"big": answer})

    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("big", code)]
    assert await count_rows(runtime, Enquiry) == 0


async def test_largest_exact_number_kept(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("big", "number")])

    await submit_ok(client, form, {"big": 9007199254740991})

    stored = (await enquiries(client, staff))["items"][0]["answers"]
    assert stored["big"] == 9007199254740991


async def test_catastrophic_pattern_is_fast(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(
        client,
        staff,
        [field("code", validation={"pattern": "(a+)+$", "max_length": 10000})],
    )
    started = time.perf_counter()
    response = await submit(client, form, {"code": "a" * 5000 + "!"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "pattern_mismatch"
    assert elapsed < 2.0
    await submit_ok(client, form, {"code": "a" * 5000})


async def test_html_post_redirects_to_thanks(client: httpx.AsyncClient) -> None:
    staff, form = await _rich_form(client, language="es")
    page = await client.get(form_path(form), headers={"Referer": "https://studio.example/reservar"})
    data = {
        "name": "Ada",
        "email": "ada@example.com",
        "guests": "3",
        "extras": ["wifi", "tea"],
        "newsletter": "true",
        "terms": "true",
        "website": "",
        "_render_token": _token(page.text),
        "_referrer": "https://studio.example/reservar",
        "unexpected": "ignored",
    }
    response = await client.post(form_path(form), data=data)
    assert response.status_code == 303
    assert response.headers["location"] == f"{form['public_url']}/thanks"
    enquiry = (await enquiries(client, staff))["items"][0]
    assert enquiry["answers"] == {
        "name": "Ada",
        "email": "ada@example.com",
        "guests": 3,
        "extras": ["wifi", "tea"],
        "newsletter": True,
    }
    assert enquiry["consent"]["terms"]["given"] is True
    assert enquiry["source_details"]["referrer"] == "https://studio.example/reservar"
    assert enquiry["source_details"]["language"] == "es"

    thanks = await client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert '<html lang="es">' in thanks.text
    assert "Gracias" in thanks.text


async def test_multipart_post_accepted(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff)
    page = await client.get(form_path(form))
    response = await client.post(
        form_path(form),
        data={"name": "Ada", "_render_token": _token(page.text)},
        files={"attachment": ("a.txt", b"ignored", "text/plain")},
    )
    assert response.status_code == 303
    assert (await enquiries(client, staff))["items"][0]["answers"] == {"name": "Ada"}


async def test_html_post_follows_redirect_url(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, redirect_url="https://studio.example/thank-you")
    page = await client.get(form_path(form))
    response = await client.post(
        form_path(form), data={"name": "Ada", "_render_token": _token(page.text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://studio.example/thank-you"


async def test_thanks_shows_success_message(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, success_message="See you <soon>!")
    thanks = await client.get(f"{form_path(form)}/thanks")
    assert "See you &lt;soon&gt;!" in thanks.text


async def test_html_errors_keep_values(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await _rich_form(client)
    page = await client.get(form_path(form))
    token = _token(page.text)
    data = {
        "name": 'Ada "Countess" <Lovelace>',
        "email": "not-an-email",
        "guests": "99",
        "size": "large",
        "extras": ["tea"],
        "newsletter": "true",
        "message": "Long enough message",
        "_render_token": token,
    }
    response = await client.post(form_path(form), data=data)
    assert response.status_code == 422
    html = response.text
    assert '<p class="error" id="f-email-error">Enter a valid email address' in html
    assert 'aria-describedby="f-email-error"' in html
    assert 'id="f-email" name="email" type="email" value="not-an-email"' in html
    assert 'aria-invalid="true"' in html
    assert '<p class="error" id="f-guests-error">Enter a number of at most 20.</p>' in html
    assert (
        '<p class="error" id="f-terms-error">Your consent is needed to send this form.</p>' in html
    )
    assert 'value="Ada &#34;Countess&#34; &lt;Lovelace&gt;"' in html
    assert 'name="size" value="large" checked' in html
    assert 'name="extras" value="tea" checked' in html
    assert 'name="extras" value="wifi">' in html
    assert 'id="f-newsletter" name="newsletter" value="true" checked' in html
    assert ">Long enough message</textarea>" in html
    assert 'role="alert"' in html
    assert '<a href="#f-email">Email: ' in html
    assert f'name="_render_token" value="{token}"' in html
    assert await count_rows(runtime, Enquiry) == 0
    assert await count_rows(runtime, Contact) == 0


async def test_cors_preflight_allowed(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client, allowed_origins=["https://studio.example"])
    response = await client.options(
        form_path(form),
        headers={
            "Origin": "https://studio.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://studio.example"
    assert response.headers["access-control-allow-methods"] == "POST"
    assert "Content-Type" in response.headers["access-control-allow-headers"]

    posted = await submit(client, form, VALID, headers={"Origin": "https://studio.example"})
    assert posted.status_code == 201
    assert posted.headers["access-control-allow-origin"] == "https://studio.example"
    invalid = await submit(client, form, {}, headers={"Origin": "https://studio.example"})
    assert invalid.status_code == 422
    assert invalid.headers["access-control-allow-origin"] == "https://studio.example"


async def test_cors_origin_with_default_port(client: httpx.AsyncClient) -> None:
    # Browsers leave the scheme's default port out of the Origin header.
    _staff, form = await _rich_form(client, allowed_origins=["https://studio.example:443/"])

    posted = await submit(client, form, VALID, headers={"Origin": "https://studio.example"})

    assert form["allowed_origins"] == ["https://studio.example"]
    assert posted.status_code == 201
    assert posted.headers["access-control-allow-origin"] == "https://studio.example"


async def test_cors_preflight_rejected(client: httpx.AsyncClient) -> None:
    _staff, form = await _rich_form(client, allowed_origins=["https://studio.example"])
    for origin in ("https://evil.example", "http://studio.example", "https://studio.example.evil"):
        response = await client.options(
            form_path(form),
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert response.status_code == 403
        assert "access-control-allow-origin" not in response.headers
    posted = await submit(client, form, VALID, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in posted.headers


async def test_cors_global_origins(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await _rich_form(client)
    runtime.settings.cors_allow_origins = ["https://app.example"]
    response = await client.options(
        form_path(form),
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_rate_limit_json(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await _rich_form(client, allowed_origins=["https://studio.example"])
    for _ in range(5):
        assert (await submit(client, form, VALID)).status_code == 201
    response = await submit(client, form, VALID, headers={"Origin": "https://studio.example"})
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 600
    assert response.headers["access-control-allow-origin"] == "https://studio.example"
    assert await count_rows(runtime, Enquiry) == 5


async def test_rate_limit_html(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, language="it")
    token = _token((await client.get(form_path(form))).text)
    for _ in range(5):
        ok = await client.post(form_path(form), data={"name": "Ada", "_render_token": token})
        assert ok.status_code == 303
    response = await client.post(form_path(form), data={"name": "Ada", "_render_token": token})
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("text/html")
    assert int(response.headers["retry-after"]) > 0
    assert "Troppi invii" in response.text
    assert await count_rows(runtime, Enquiry) == 5


async def test_rate_limit_per_ip_across_forms(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    forms = [await create_form(client, staff) for _ in range(5)]
    statuses = []
    for form in forms:
        for _ in range(5):
            statuses.append((await submit(client, form, {"name": "Ada"})).status_code)
    assert statuses[:20] == [201] * 20
    assert statuses[20:] == [429] * 5


def test_texts_cover_every_language() -> None:
    assert set(SUPPORTED_LANGUAGES) >= {"en", "fr", "de", "es", "nl", "pt", "it"}
    for language in SUPPORTED_LANGUAGES:
        assert set(TEXTS[language]) == set(TEXTS["en"]), language
        assert all(text.strip() for text in TEXTS[language].values()), language
