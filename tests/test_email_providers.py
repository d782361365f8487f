"""Outbound email adapters against local fakes of each provider's API and a real SMTP server."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Iterator
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from email_provider_servers import SES_REGION, FakeProviders, serve_fake_providers
from frontdesk.email.mime import Attachment, OutgoingEmail
from frontdesk.email.providers import PROVIDER_CONFIGS, build_provider
from frontdesk.email.providers.base import SendResult, parse_retry_after
from frontdesk.email.providers.mailgun import MAILGUN_BASE_URLS
from frontdesk.email.providers.ses import SesProvider
from frontdesk.email.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from smtp_server import SmtpServer, free_port
from test_email_starttls import PASSWORD, USERNAME, self_signed_context

HTTP_PROVIDERS = ["postmark", "sendgrid", "ses", "mailgun", "resend"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.7\n" + bytes(range(200))
RESUME = "R\u00e9sum\u00e9 \u2013 \u65e5\u672c.pdf"


def make_email(**overrides: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "from_address": '"Studio Nine" <hello@studio.example>',
        "to": ['"Camille Martin" <camille@example.org>', "ana@example.org"],
        "cc": ["L\u00e9a Petit <lea@example.org>"],
        "reply_to": "desk@studio.example",
        "subject": "Your booking on Monday",
        "text": "Hello Camille,\nsee you on Monday.",
        "html": '<p>Hello Camille,</p><img src="cid:logo">',
        "headers": {
            "In-Reply-To": "<enquiry-7@mail.example.org>",
            "References": "<enquiry-7@mail.example.org>",
            "X-Frontdesk-Workspace": "studio-nine",
        },
        "attachments": [
            Attachment(RESUME, "application/pdf", PDF),
            Attachment("logo.png", "image/png", PNG, content_id="logo"),
        ],
        "message_id": "<booking-42@studio.example>",
        "idempotency_key": "email-42",
    }
    values.update(overrides)
    return OutgoingEmail(**values)


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with serve_fake_providers() as providers:
        yield providers


async def send(kind: str, config: dict[str, Any], email: OutgoingEmail) -> SendResult:
    # Without proxy variables from the environment, requests stay on 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as client:
        provider = build_provider(kind, config, http_client=client)
        try:
            return await provider.send(email)
        finally:
            await provider.close()


async def send_expecting(
    kind: str,
    config: dict[str, Any],
    error: type[DeliveryError],
    email: OutgoingEmail | None = None,
) -> DeliveryError:
    with pytest.raises(error) as caught:
        await send(kind, config, email or make_email())
    return caught.value


def secrets_of(fake: FakeProviders) -> list[str]:
    return [
        fake.postmark_token,
        fake.sendgrid_key,
        fake.resend_key,
        fake.mailgun_key,
        fake.ses_secret,
    ]


# Successful sends, checked field by field as the fake server received them.


async def test_postmark_sends_fields(fake: FakeProviders) -> None:
    result = await send(
        "postmark", fake.config("postmark", message_stream="outbound"), make_email()
    )

    [request] = fake.received("postmark")
    body = request.json()
    assert request.headers["x-postmark-server-token"] == fake.postmark_token
    assert body["From"] == '"Studio Nine" <hello@studio.example>'
    assert body["To"] == '"Camille Martin" <camille@example.org>, ana@example.org'
    assert body["Cc"] == '"L\u00e9a Petit" <lea@example.org>'
    assert body["ReplyTo"] == "desk@studio.example"
    assert body["Subject"] == "Your booking on Monday"
    assert body["TextBody"] == "Hello Camille,\nsee you on Monday."
    assert body["HtmlBody"] == '<p>Hello Camille,</p><img src="cid:logo">'
    assert body["MessageStream"] == "outbound"
    assert body["Headers"] == [
        {"Name": "Message-ID", "Value": "<booking-42@studio.example>"},
        {"Name": "In-Reply-To", "Value": "<enquiry-7@mail.example.org>"},
        {"Name": "References", "Value": "<enquiry-7@mail.example.org>"},
        {"Name": "X-Frontdesk-Workspace", "Value": "studio-nine"},
    ]
    pdf, logo = body["Attachments"]
    assert pdf == {
        "Name": RESUME,
        "Content": base64.b64encode(PDF).decode(),
        "ContentType": "application/pdf",
    }
    assert logo["ContentID"] == "cid:logo"
    assert base64.b64decode(logo["Content"]) == PNG
    assert result.provider_message_id == fake.accepted_ids[0]


async def test_sendgrid_sends_fields(fake: FakeProviders) -> None:
    email = make_email(
        to=['"Camille Martin" <camille@example.org>', "ana@example.org", "Camille@example.org"],
        cc=["Ana <ANA@example.org>", "L\u00e9a Petit <lea@example.org>"],
    )
    result = await send("sendgrid", fake.config("sendgrid"), email)

    [request] = fake.received("sendgrid")
    body = request.json()
    assert request.headers["authorization"] == f"Bearer {fake.sendgrid_key}"
    assert body["personalizations"] == [
        {
            "to": [
                {"email": "camille@example.org", "name": "Camille Martin"},
                {"email": "ana@example.org"},
            ],
            # Repeated addresses are dropped, because SendGrid rejects duplicates.
            "cc": [{"email": "lea@example.org", "name": "L\u00e9a Petit"}],
        }
    ]
    assert body["from"] == {"email": "hello@studio.example", "name": "Studio Nine"}
    assert body["reply_to"] == {"email": "desk@studio.example"}
    assert body["subject"] == "Your booking on Monday"
    assert body["content"] == [
        {"type": "text/plain", "value": "Hello Camille,\nsee you on Monday."},
        {"type": "text/html", "value": '<p>Hello Camille,</p><img src="cid:logo">'},
    ]
    assert body["headers"] == {
        "Message-ID": "<booking-42@studio.example>",
        "In-Reply-To": "<enquiry-7@mail.example.org>",
        "References": "<enquiry-7@mail.example.org>",
        "X-Frontdesk-Workspace": "studio-nine",
    }
    pdf, logo = body["attachments"]
    assert pdf == {
        "content": base64.b64encode(PDF).decode(),
        "type": "application/pdf",
        "filename": RESUME,
        "disposition": "attachment",
    }
    assert logo["disposition"] == "inline"
    assert logo["content_id"] == "logo"
    assert result.provider_message_id == fake.accepted_ids[0]


async def test_ses_sends_signed_raw_message(fake: FakeProviders) -> None:
    config = fake.config("ses", configuration_set="transactional")
    result = await send("ses", config, make_email())

    [request] = fake.received("ses")
    body = request.json()
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={fake.ses_access_key_id}/"
    )
    assert f"/{SES_REGION}/ses/aws4_request" in request.headers["authorization"]
    assert body["FromEmailAddress"] == "hello@studio.example"
    assert body["Destination"] == {
        "ToAddresses": ["camille@example.org", "ana@example.org"],
        "CcAddresses": ["lea@example.org"],
    }
    assert body["ConfigurationSetName"] == "transactional"
    mime = request.mime()
    assert mime["Message-ID"] == "<booking-42@studio.example>"
    assert mime["Subject"] == "Your booking on Monday"
    assert [part.get_filename() for part in mime.iter_attachments()] == [RESUME]
    assert result.provider_message_id == fake.accepted_ids[0]


async def test_ses_signature_covers_body(fake: FakeProviders) -> None:
    provider = build_provider("ses", fake.config("ses"))
    assert isinstance(provider, SesProvider)
    body = b'{"Content": {"Raw": {"Data": ""}}}'
    headers = provider.signed_headers(body)
    await provider.close()

    # A body changed after signing must fail the server's signature check.
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            f"{fake.url}/ses/v2/email/outbound-emails", content=body + b" ", headers=headers
        )
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"


async def test_mailgun_sends_mime_form(fake: FakeProviders) -> None:
    result = await send("mailgun", fake.config("mailgun"), make_email())

    [request] = fake.received("mailgun")
    expected_auth = base64.b64encode(f"api:{fake.mailgun_key}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert request.path == f"/mailgun/v3/{fake.mailgun_domain}/messages.mime"
    assert request.form["to"] == ["camille@example.org", "ana@example.org", "lea@example.org"]
    filename, content_type, _ = request.files["message"]
    assert filename == "message.eml"
    assert content_type == "message/rfc822"
    mime = request.mime()
    assert mime["From"].addresses[0].display_name == "Studio Nine"
    assert mime["Cc"].addresses[0].display_name == "L\u00e9a Petit"
    assert mime["X-Frontdesk-Workspace"] == "studio-nine"
    # Mailgun's id comes in angle brackets; its webhooks use it without them.
    assert result.provider_message_id == fake.accepted_ids[0]


async def test_resend_sends_fields(fake: FakeProviders) -> None:
    result = await send("resend", fake.config("resend"), make_email())

    [request] = fake.received("resend")
    body = request.json()
    assert request.headers["authorization"] == f"Bearer {fake.resend_key}"
    assert request.headers["idempotency-key"] == "email-42"
    assert body["from"] == '"Studio Nine" <hello@studio.example>'
    assert body["to"] == ['"Camille Martin" <camille@example.org>', "ana@example.org"]
    assert body["cc"] == ['"L\u00e9a Petit" <lea@example.org>']
    assert body["reply_to"] == "desk@studio.example"
    assert body["subject"] == "Your booking on Monday"
    assert body["text"] == "Hello Camille,\nsee you on Monday."
    assert body["html"] == '<p>Hello Camille,</p><img src="cid:logo">'
    assert body["headers"]["X-Frontdesk-Workspace"] == "studio-nine"
    assert body["headers"]["Message-ID"] == "<booking-42@studio.example>"
    pdf, logo = body["attachments"]
    assert pdf == {
        "content": base64.b64encode(PDF).decode(),
        "filename": RESUME,
        "content_type": "application/pdf",
    }
    assert logo["content_id"] == "logo"
    assert result.provider_message_id == fake.accepted_ids[0]


async def test_resend_repeat_returns_same_id(fake: FakeProviders) -> None:
    first = await send("resend", fake.config("resend"), make_email())
    second = await send("resend", fake.config("resend"), make_email())

    assert first.provider_message_id == second.provider_message_id
    assert len(fake.accepted_ids) == 1


async def test_resend_reused_key_other_body(fake: FakeProviders) -> None:
    await send("resend", fake.config("resend"), make_email())

    error = await send_expecting(
        "resend", fake.config("resend"), PermanentDeliveryError, make_email(subject="Changed")
    )
    assert "invalid_idempotent_request" in error.reason


# Failures every HTTP adapter classifies the same way.


@pytest.mark.parametrize(
    ("kind", "wrong", "provider_text"),
    [
        ("postmark", {"server_token": "wrong-token"}, "Request does not contain a valid Server"),
        ("sendgrid", {"api_key": "SG.wrong"}, "authorization grant is invalid"),
        ("ses", {"secret_access_key": "wrong-secret"}, "signature we calculated does not match"),
        ("mailgun", {"api_key": "wrong-key"}, "Forbidden"),
        ("resend", {"api_key": "re_wrong"}, "API key is invalid"),
    ],
)
async def test_auth_failure_is_permanent(
    fake: FakeProviders, kind: str, wrong: dict[str, Any], provider_text: str
) -> None:
    error = await send_expecting(kind, fake.config(kind, **wrong), PermanentDeliveryError)

    assert provider_text in error.reason
    assert "rejected the" in error.reason
    for secret in [*secrets_of(fake), *wrong.values()]:
        assert secret not in error.reason


RATE_LIMIT_REPLIES: dict[str, tuple[Any, dict[str, str], str]] = {
    "postmark": ({"ErrorCode": 429, "Message": "Rate limit exceeded"}, {}, "Rate limit exceeded"),
    "sendgrid": (
        {"errors": [{"message": "too many requests", "field": None, "help": None}]},
        {},
        "too many requests",
    ),
    "ses": (
        {"message": "Maximum sending rate exceeded."},
        {"X-Amzn-ErrorType": "TooManyRequestsException"},
        "TooManyRequestsException: Maximum sending rate exceeded.",
    ),
    "mailgun": ({"message": "Too many requests"}, {}, "Too many requests"),
    "resend": (
        {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."},
        {},
        "rate_limit_exceeded: Too many requests.",
    ),
}


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_rate_limit_sets_retry_after(fake: FakeProviders, kind: str) -> None:
    body, headers, provider_text = RATE_LIMIT_REPLIES[kind]
    fake.fail_next(kind, 429, body, {**headers, "Retry-After": "17"})

    error = await send_expecting(kind, fake.config(kind), TemporaryDeliveryError)

    assert isinstance(error, TemporaryDeliveryError)
    assert error.retry_after == 17.0
    assert "HTTP 429" in error.reason
    assert provider_text in error.reason


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_unavailable_with_http_date(fake: FakeProviders, kind: str) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    fake.fail_next(kind, 503, "upstream unavailable", {"Retry-After": format_datetime(later, True)})

    error = await send_expecting(kind, fake.config(kind), TemporaryDeliveryError)

    assert isinstance(error, TemporaryDeliveryError)
    assert error.retry_after is not None
    assert 100 <= error.retry_after <= 121
    assert "upstream unavailable" in error.reason


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_server_error_is_temporary(fake: FakeProviders, kind: str) -> None:
    fake.fail_next(kind, 500, "Internal Server Error")

    error = await send_expecting(kind, fake.config(kind), TemporaryDeliveryError)

    assert isinstance(error, TemporaryDeliveryError)
    assert error.retry_after is None
    assert "HTTP 500: Internal Server Error" in error.reason


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_connection_refused_is_temporary(fake: FakeProviders, kind: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/{kind}"

    error = await send_expecting(
        kind, fake.config(kind, api_base_url=closed), TemporaryDeliveryError
    )

    assert "ConnectError" in error.reason


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_timeout_is_temporary(fake: FakeProviders, kind: str) -> None:
    fake.fail_next(kind, 200, {}, delay=1.0)

    error = await send_expecting(
        kind, fake.config(kind, timeout_seconds=0.2), TemporaryDeliveryError
    )

    assert "timed out after 0.2 s" in error.reason


@pytest.mark.parametrize("kind", HTTP_PROVIDERS)
async def test_header_injection_sends_nothing(fake: FakeProviders, kind: str) -> None:
    email = make_email(headers={"X-Note": "a\r\nBcc: victim@example.org"})

    error = await send_expecting(kind, fake.config(kind), PermanentDeliveryError, email)

    assert "line break" in error.reason
    assert fake.requests == []


# Rejections specific to each provider.


@pytest.mark.parametrize(
    ("error_code", "message"),
    [
        (300, "Invalid 'From' address: 'nobody'."),
        (406, "You tried to send to a recipient that has been marked as inactive."),
        (405, "Not allowed to send: you have run out of credits."),
    ],
)
async def test_postmark_422_is_permanent(
    fake: FakeProviders, error_code: int, message: str
) -> None:
    fake.fail_next("postmark", 422, {"ErrorCode": error_code, "Message": message})

    error = await send_expecting("postmark", fake.config("postmark"), PermanentDeliveryError)

    assert f"ErrorCode {error_code}: {message}" in error.reason


async def test_postmark_bad_token_message(fake: FakeProviders) -> None:
    config = fake.config("postmark", server_token="wrong-token")

    error = await send_expecting("postmark", config, PermanentDeliveryError)

    assert "Postmark rejected the server token (HTTP 401)" in error.reason
    assert "API Tokens tab" in error.reason


async def test_sendgrid_unverified_sender(fake: FakeProviders) -> None:
    text = "The from address does not match a verified Sender Identity."
    fake.fail_next("sendgrid", 403, {"errors": [{"message": text, "field": "from", "help": None}]})

    error = await send_expecting("sendgrid", fake.config("sendgrid"), PermanentDeliveryError)

    assert f"HTTP 403: {text} (field from)" in error.reason


async def test_sendgrid_rate_limit_reset_header(fake: FakeProviders) -> None:
    reset = int(dt.datetime.now(dt.UTC).timestamp()) + 30
    fake.fail_next("sendgrid", 429, {"errors": []}, {"X-RateLimit-Reset": str(reset)})

    error = await send_expecting("sendgrid", fake.config("sendgrid"), TemporaryDeliveryError)

    assert isinstance(error, TemporaryDeliveryError)
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 31


@pytest.mark.parametrize(
    ("error_type", "status", "expected"),
    [
        ("MessageRejected", 400, PermanentDeliveryError),
        ("MailFromDomainNotVerifiedException", 400, PermanentDeliveryError),
        ("AccountSuspendedException", 400, PermanentDeliveryError),
        ("BadRequestException", 400, PermanentDeliveryError),
        ("TooManyRequestsException", 429, TemporaryDeliveryError),
        ("LimitExceededException", 400, TemporaryDeliveryError),
        ("ThrottlingException", 400, TemporaryDeliveryError),
    ],
)
async def test_ses_error_types(
    fake: FakeProviders, error_type: str, status: int, expected: type[DeliveryError]
) -> None:
    header = f"{error_type}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
    fake.fail_next("ses", status, {"message": f"{error_type} text"}, {"X-Amzn-ErrorType": header})

    error = await send_expecting("ses", fake.config("ses"), expected)

    assert f"{error_type}: {error_type} text" in error.reason


async def test_ses_error_type_in_body(fake: FakeProviders) -> None:
    fake.fail_next(
        "ses", 400, {"__type": "com.amazonaws.sesv2#MessageRejected", "message": "Bad content"}
    )

    error = await send_expecting("ses", fake.config("ses"), PermanentDeliveryError)

    assert "MessageRejected: Bad content" in error.reason


async def test_ses_unknown_key_id(fake: FakeProviders) -> None:
    config = fake.config("ses", access_key_id="AKIAUNKNOWNKEY0000")

    error = await send_expecting("ses", config, PermanentDeliveryError)

    assert "UnrecognizedClientException" in error.reason
    assert "Amazon SES rejected the credentials" in error.reason


async def test_mailgun_bad_request(fake: FakeProviders) -> None:
    text = "'from' parameter is not a valid address. please check documentation"
    fake.fail_next("mailgun", 400, {"message": text})

    error = await send_expecting("mailgun", fake.config("mailgun"), PermanentDeliveryError)

    assert f"HTTP 400: {text}" in error.reason


async def test_mailgun_unknown_domain(fake: FakeProviders) -> None:
    config = fake.config("mailgun", domain="other.example")

    error = await send_expecting("mailgun", config, PermanentDeliveryError)

    assert "HTTP 404: Domain not found" in error.reason


async def test_resend_validation_error(fake: FakeProviders) -> None:
    text = "The studio.example domain is not verified."
    fake.fail_next("resend", 403, {"statusCode": 403, "name": "validation_error", "message": text})

    error = await send_expecting("resend", fake.config("resend"), PermanentDeliveryError)

    assert f"validation_error: {text}" in error.reason


async def test_resend_concurrent_key_is_temporary(fake: FakeProviders) -> None:
    body = {
        "statusCode": 409,
        "name": "concurrent_idempotent_requests",
        "message": "Same idempotency key used while original request is still in progress.",
    }
    fake.fail_next("resend", 409, body)

    error = await send_expecting("resend", fake.config("resend"), TemporaryDeliveryError)

    assert "concurrent_idempotent_requests" in error.reason


# The fakes reject what the providers reject, so a wrong request fails the tests above.


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "text"),
    [
        (
            "/postmark/email",
            {"X-Postmark-Server-Token": "{postmark}", "Accept": "application/json"},
            {
                "From": "a@example.org",
                "To": "b@example.org",
                "Subject": "s",
                "TextBody": "t",
                "Attachments": [{"Name": "a", "ContentType": "text/plain", "Content": "no!"}],
            },
            422,
            "not valid base64",
        ),
        (
            "/sendgrid/v3/mail/send",
            {"Authorization": "Bearer {sendgrid}"},
            {
                "personalizations": [{"to": [{"email": "b@example.org"}]}],
                "from": {"email": "a@example.org"},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "t"}],
                "headers": {"Reply-To": "c@example.org"},
            },
            400,
            "reserved header",
        ),
        (
            "/sendgrid/v3/mail/send",
            {"Authorization": "Bearer {sendgrid}"},
            {
                "personalizations": [{"to": [{"email": "b@example.org"}]}],
                "from": {"email": "a@example.org"},
                "subject": "s",
                "content": [
                    {"type": "text/html", "value": "<p>t</p>"},
                    {"type": "text/plain", "value": "t"},
                ],
            },
            400,
            "text/plain must be first",
        ),
        (
            "/resend/emails",
            {},
            {"from": "a@example.org", "to": ["b@example.org"], "subject": "s", "text": "t"},
            401,
            "missing_api_key",
        ),
        (
            "/resend/emails",
            {"Authorization": "Bearer {resend}", "Idempotency-Key": "k" * 257},
            {"from": "a@example.org", "to": ["b@example.org"], "subject": "s", "text": "t"},
            400,
            "invalid_idempotency_key",
        ),
    ],
)
async def test_fake_rejects_invalid_request(
    fake: FakeProviders,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    text: str,
) -> None:
    keys = {
        "postmark": fake.postmark_token,
        "sendgrid": fake.sendgrid_key,
        "resend": fake.resend_key,
    }
    filled = {name: value.format(**keys) for name, value in headers.items()}

    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(fake.url + path, json=body, headers=filled)

    assert response.status_code == status
    assert text in response.text
    assert fake.accepted_ids == []


# Settings and the factory.


async def test_given_client_stays_open(fake: FakeProviders) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        provider = build_provider("resend", fake.config("resend"), http_client=client)
        await provider.send(make_email())
        await provider.close()

        assert not client.is_closed
        await provider.send(make_email(idempotency_key="email-43"))
    assert len(fake.accepted_ids) == 2


def test_configs_forbid_extra_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        build_provider("resend", {"api_key": "re_x", "apikey": "typo"})


def test_unknown_provider_raises() -> None:
    with pytest.raises(ValueError, match="unknown email provider 'sparkpost'"):
        build_provider("sparkpost", {})


def test_secrets_hidden_in_repr() -> None:
    config = PROVIDER_CONFIGS["ses"].model_validate(
        {"region": "eu-west-1", "access_key_id": "AKIAEXAMPLEKEY0000", "secret_access_key": "s3"}
    )

    assert "s3" not in repr(config)


@pytest.mark.parametrize(
    ("kind", "config", "base_url"),
    [
        ("postmark", {"server_token": "t"}, "https://api.postmarkapp.com"),
        ("sendgrid", {"api_key": "k"}, "https://api.sendgrid.com"),
        ("resend", {"api_key": "k"}, "https://api.resend.com"),
        ("mailgun", {"api_key": "k", "domain": "mg.example.org"}, MAILGUN_BASE_URLS["us"]),
        (
            "mailgun",
            {"api_key": "k", "domain": "mg.example.org", "region": "eu"},
            "https://api.eu.mailgun.net",
        ),
        (
            "ses",
            {
                "region": "eu-central-1",
                "access_key_id": "AKIAEXAMPLEKEY00",
                "secret_access_key": "s",
            },
            "https://email.eu-central-1.amazonaws.com",
        ),
        ("resend", {"api_key": "k", "api_base_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9"),
    ],
)
async def test_default_base_urls(kind: str, config: dict[str, Any], base_url: str) -> None:
    provider = build_provider(kind, config)

    assert getattr(provider, "base_url", None) == base_url
    await provider.close()


def test_base_url_must_be_http() -> None:
    with pytest.raises(pydantic.ValidationError, match="http or https"):
        build_provider("resend", {"api_key": "k", "api_base_url": "ftp://example.org"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17", 17.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = dt.datetime(2026, 10, 21, 7, 27, tzinfo=dt.UTC)

    assert parse_retry_after(value, now=now) == expected


# SMTP against aiosmtpd on 127.0.0.1.


def check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False makes aiosmtpd reply 535; with the default (True) it sends no reply.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def plain_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def starttls_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(
        tls_context=self_signed_context(tmp_path),
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def implicit_tls_server(tmp_path: Path) -> Iterator[SmtpServer]:
    context: ssl.SSLContext = self_signed_context(tmp_path)
    # aiosmtpd counts only STARTTLS as TLS when it checks auth_require_tls, so the check is
    # off here, where the whole connection is TLS from the start.
    server = SmtpServer(
        ssl_context=context, authenticator=check_login, auth_required=True, auth_require_tls=False
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def smtp_config(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "security": "none", **overrides}


async def test_smtp_sends_to_all_recipients(plain_server: SmtpServer) -> None:
    result = await send("smtp", smtp_config(plain_server), make_email())

    [received] = await plain_server.wait_for(1)
    assert result.provider_message_id is None
    assert received.mail_from == "hello@studio.example"
    assert received.rcpt_tos == ["camille@example.org", "ana@example.org", "lea@example.org"]
    assert received.tls is False
    message = received.parse()
    assert message["Message-ID"] == "<booking-42@studio.example>"
    assert message["Reply-To"] == "desk@studio.example"
    assert [part.get_filename() for part in message.iter_attachments()] == [RESUME]


async def test_smtp_starttls_with_login(starttls_server: SmtpServer) -> None:
    config = smtp_config(
        starttls_server,
        security="starttls",
        username=USERNAME,
        password=PASSWORD,
        verify_certificate=False,
    )

    await send("smtp", config, make_email())

    [received] = await starttls_server.wait_for(1)
    assert received.tls is True
    assert received.authenticated is True


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_implicit_tls_with_login(implicit_tls_server: SmtpServer) -> None:
    config = smtp_config(
        implicit_tls_server,
        security="tls",
        username=USERNAME,
        password=PASSWORD,
        verify_certificate=False,
    )

    await send("smtp", config, make_email())

    [received] = await implicit_tls_server.wait_for(1)
    assert received.authenticated is True
    assert received.parse()["Subject"] == "Your booking on Monday"


async def test_smtp_wrong_password_is_permanent(starttls_server: SmtpServer) -> None:
    config = smtp_config(
        starttls_server,
        security="starttls",
        username=USERNAME,
        password="wrong",
        verify_certificate=False,
    )

    error = await send_expecting("smtp", config, PermanentDeliveryError)

    assert "SMTP reply 535" in error.reason
    assert "wrong" not in error.reason


async def test_smtp_untrusted_certificate(starttls_server: SmtpServer) -> None:
    config = smtp_config(starttls_server, security="starttls", username=USERNAME, password=PASSWORD)

    error = await send_expecting("smtp", config, TemporaryDeliveryError)

    assert "CERTIFICATE_VERIFY_FAILED" in error.reason


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("550 5.1.1 No such user here", PermanentDeliveryError),
        ("451 4.3.0 Try again later", TemporaryDeliveryError),
    ],
)
async def test_smtp_refusal_classified(
    plain_server: SmtpServer, reply: str, expected: type[DeliveryError]
) -> None:
    plain_server.handler.rcpt_reply = reply

    error = await send_expecting("smtp", smtp_config(plain_server), expected)

    assert reply.split(" ", 1)[1] in error.reason
    assert plain_server.messages == []


async def test_smtp_connection_refused() -> None:
    config = {"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout_seconds": 5}

    error = await send_expecting("smtp", config, TemporaryDeliveryError)

    assert "SMTP failed" in error.reason
