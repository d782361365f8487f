"""Webhook signature checks of SendGrid, Mailgun, Resend, Amazon SNS and Postmark.

Every delivery is signed in the test with keys generated here (``webhook_signing``); the two
known-answer vectors come from SendGrid's and Svix's own library tests.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.datastructures import Headers

from frontdesk.email.webhooks import (
    HttpxCertificateFetcher,
    WebhookRejected,
    check_certificate_url,
    confirmation_url,
    verify_mailgun,
    verify_mailgun_form,
    verify_postmark,
    verify_resend,
    verify_sendgrid,
    verify_sns_message,
)
from webhook_signing import (
    SNS_CERTIFICATE_URL,
    SNS_TOPIC_ARN,
    SendGridSigner,
    SnsSigner,
    SvixSigner,
    mailgun_body,
    mailgun_signature,
    postmark_authorization,
    sns_notification,
    sns_subscription_confirmation,
    unix,
)

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email-webhooks"
NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
OLD = NOW - timedelta(seconds=301)
AHEAD = NOW + timedelta(seconds=301)


def flip_byte(body: bytes, index: int | None = None) -> bytes:
    position = len(body) // 2 if index is None else index
    return body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]


def rejection(excinfo: pytest.ExceptionInfo[WebhookRejected]) -> str:
    return excinfo.value.code


# SendGrid

SENDGRID_BODY = (
    json.dumps(
        [
            {
                "email": "client@example.org",
                "event": "delivered",
                "sg_event_id": "ZGVsaXZlcmVkLTAtMTg2NDk2NzctaE5GNXpwaFFTLS1xYVJYbDJ1d0RBLTA",
                "sg_message_id": "hNF5zphQS--qaRXl2uwDA.filterdrecv-5645d9c87f-6r8tq-1-5F5FC76C-9.0",
                "smtp-id": "<hNF5zphQS--qaRXl2uwDA@geopod-ismtpd-3-1>",
                "timestamp": int(NOW.timestamp()),
                "response": "250 2.0.0 OK",
            }
        ]
    ).encode()
    + b"\r\n"
)


@pytest.fixture(scope="module")
def sendgrid() -> SendGridSigner:
    return SendGridSigner()


def test_sendgrid_signed_body_passes(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)

    verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)


def test_sendgrid_starlette_headers_pass(sendgrid: SendGridSigner) -> None:
    # Routes pass the request's headers, which Starlette stores with lowercase names.
    headers = Headers(sendgrid.headers(SENDGRID_BODY, NOW))

    verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)


def test_sendgrid_corpus_body_passes(sendgrid: SendGridSigner) -> None:
    # Any bytes are signed as sent; this multipart corpus body keeps its CRLF line endings.
    body = (CORPUS / "sendgrid" / "raw_data_with_attachments.txt").read_bytes()
    headers = sendgrid.headers(body, NOW)

    verify_sendgrid(body, headers, public_key=sendgrid.public_key, now=NOW)
    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(flip_byte(body), headers, public_key=sendgrid.public_key, now=NOW)
    assert rejection(excinfo) == "signature_invalid"


def test_sendgrid_known_answer_vector() -> None:
    # Key, signature and payload of SendGrid's own library tests (sendgrid-python,
    # test/unit/test_eventwebhook.py): a real SendGrid signature over compact JSON + CRLF.
    public_key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3G"
        "Rqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
    )
    signature = (
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M"
        "15TluLtEZtM="
    )
    body = (
        b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
        b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
        b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-'
        b'5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",'
        b'"timestamp":1600112492}]\r\n'
    )
    headers = {
        "x-twilio-email-event-webhook-signature": signature,
        "x-twilio-email-event-webhook-timestamp": "1600112502",
    }
    signed_at = datetime.fromtimestamp(1600112502, UTC)

    verify_sendgrid(body, headers, public_key=public_key, now=signed_at)
    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(body.rstrip(), headers, public_key=public_key, now=signed_at)
    assert rejection(excinfo) == "signature_invalid"


def test_sendgrid_changed_byte_fails(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(flip_byte(SENDGRID_BODY), headers, public_key=sendgrid.public_key, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_sendgrid_changed_timestamp_fails(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = unix(NOW + timedelta(seconds=1))

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_sendgrid_wrong_key_fails(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(SENDGRID_BODY, headers, public_key=SendGridSigner().public_key, now=NOW)

    assert rejection(excinfo) == "signature_invalid"
    assert "verification key" in str(excinfo.value)


@pytest.mark.parametrize("signed_at", [OLD, AHEAD], ids=["replayed", "ahead"])
def test_sendgrid_timestamp_outside_tolerance(
    sendgrid: SendGridSigner, signed_at: datetime
) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, signed_at)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)

    assert rejection(excinfo) == "timestamp_outside_tolerance"
    assert "301 s" in str(excinfo.value)


def test_sendgrid_tolerance_is_configurable(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, OLD)

    verify_sendgrid(
        SENDGRID_BODY,
        headers,
        public_key=sendgrid.public_key,
        now=NOW,
        tolerance=timedelta(seconds=302),
    )
    verify_sendgrid(
        SENDGRID_BODY,
        sendgrid.headers(SENDGRID_BODY, NOW - timedelta(seconds=299)),
        public_key=sendgrid.public_key,
        now=NOW,
    )


@pytest.mark.parametrize(
    "missing",
    ["X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"],
)
def test_sendgrid_missing_header(sendgrid: SendGridSigner, missing: str) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)
    del headers[missing]

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)

    assert rejection(excinfo) == "signature_missing"
    assert missing in str(excinfo.value)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Twilio-Email-Event-Webhook-Signature", "not base64!"),
        ("X-Twilio-Email-Event-Webhook-Signature", base64.b64encode(b"junk").decode()),
        ("X-Twilio-Email-Event-Webhook-Timestamp", "2026-03-02T12:00:00Z"),
        ("X-Twilio-Email-Event-Webhook-Timestamp", "-1"),
    ],
)
def test_sendgrid_malformed_header(sendgrid: SendGridSigner, header: str, value: str) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)
    headers[header] = value

    with pytest.raises(WebhookRejected) as excinfo:
        verify_sendgrid(SENDGRID_BODY, headers, public_key=sendgrid.public_key, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_sendgrid_unusable_key_is_configuration_error(sendgrid: SendGridSigner) -> None:
    headers = sendgrid.headers(SENDGRID_BODY, NOW)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_text = base64.b64encode(
        p384.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()

    with pytest.raises(ValueError, match="not a base64 DER public key"):
        verify_sendgrid(SENDGRID_BODY, headers, public_key="not-a-key", now=NOW)
    with pytest.raises(ValueError, match="P-256"):
        verify_sendgrid(SENDGRID_BODY, headers, public_key=p384_text, now=NOW)


# Mailgun

MAILGUN_KEY = "key-" + "3ax6xnjp29jd6fds4gc373sgvjxteol0"
MAILGUN_EVENT = {
    "event": "delivered",
    "id": "CPgfbmQMTCKtHW6uIWtuVe",
    "timestamp": NOW.timestamp(),
    "recipient": "client@example.org",
}


def test_mailgun_signed_body_passes() -> None:
    body = mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, NOW)

    payload = verify_mailgun(body, signing_key=MAILGUN_KEY, now=NOW)

    assert payload["event-data"] == MAILGUN_EVENT


def test_mailgun_changed_token_fails() -> None:
    # Mailgun signs the timestamp and token, not event-data, so the token is the byte to change.
    payload = json.loads(mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, NOW))
    token = payload["signature"]["token"]
    payload["signature"]["token"] = ("0" if token[0] != "0" else "1") + token[1:]

    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(json.dumps(payload).encode(), signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_mailgun_changed_signature_byte_fails() -> None:
    body = mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, NOW)
    signature = json.loads(body)["signature"]["signature"]
    changed = body.replace(signature.encode(), flip_byte(signature.encode(), 0))

    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(changed, signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_mailgun_wrong_key_fails() -> None:
    body = mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, NOW)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(body, signing_key="key-someone-else", now=NOW)

    assert rejection(excinfo) == "signature_invalid"


@pytest.mark.parametrize("signed_at", [OLD, AHEAD], ids=["replayed", "ahead"])
def test_mailgun_timestamp_outside_tolerance(signed_at: datetime) -> None:
    body = mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, signed_at)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(body, signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("missing", ["timestamp", "token", "signature"])
def test_mailgun_missing_signature_field(missing: str) -> None:
    payload = json.loads(mailgun_body(MAILGUN_KEY, MAILGUN_EVENT, NOW))
    del payload["signature"][missing]

    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(payload, signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "signature_missing"
    assert missing in str(excinfo.value)


def test_mailgun_missing_signature_object() -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun({"event-data": MAILGUN_EVENT}, signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "signature_missing"


def test_mailgun_body_not_json() -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        verify_mailgun(b"timestamp=1&token=2", signing_key=MAILGUN_KEY, now=NOW)

    assert rejection(excinfo) == "payload_invalid"


def test_mailgun_route_form_passes() -> None:
    form = {
        **mailgun_signature(
            MAILGUN_KEY, unix(NOW), "f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4"
        ),
        "recipient": "enquiries@example.com",
        "body-plain": "Hello",
    }

    verify_mailgun_form(form, signing_key=MAILGUN_KEY, now=NOW)


def test_mailgun_route_form_rejections() -> None:
    form = mailgun_signature(
        MAILGUN_KEY, unix(OLD), "f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4"
    )

    with pytest.raises(WebhookRejected) as replayed:
        verify_mailgun_form(form, signing_key=MAILGUN_KEY, now=NOW)
    with pytest.raises(WebhookRejected) as wrong_key:
        verify_mailgun_form(form, signing_key="key-someone-else", now=OLD)
    with pytest.raises(WebhookRejected) as missing:
        verify_mailgun_form({"token": form["token"]}, signing_key=MAILGUN_KEY, now=OLD)

    assert rejection(replayed) == "timestamp_outside_tolerance"
    assert rejection(wrong_key) == "signature_invalid"
    assert rejection(missing) == "signature_missing"


# Resend (Svix)

RESEND_BODY = json.dumps(
    {
        "type": "email.delivered",
        "created_at": "2026-03-02T11:59:58.000Z",
        "data": {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "to": ["a@example.org"]},
    }
).encode()
SVIX_ID = "msg_2W2D3qXLS5fOaPja1GDg7rF2CwB"


@pytest.fixture(scope="module")
def svix() -> SvixSigner:
    return SvixSigner()


def test_resend_signed_body_passes(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)

    verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)


def test_resend_known_answer_vector() -> None:
    # The signing test vector of Svix's client libraries (testSignFunctionWorks in svix-php).
    headers = {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp": "1614265330",
        "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    signed_at = datetime.fromtimestamp(1614265330, UTC)

    verify_resend(body, headers, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=signed_at)
    # The secret's base64 without the whsec_ prefix is accepted too.
    verify_resend(body, headers, secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=signed_at)


def test_resend_any_listed_signature_passes(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)
    other = SvixSigner().signature(SVIX_ID, headers["svix-timestamp"], RESEND_BODY)
    headers["svix-signature"] = f"v1,bm90IGl0 {other} v2,abc {headers['svix-signature']}"

    verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)


def test_resend_changed_byte_fails(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(flip_byte(RESEND_BODY), headers, secret=svix.secret, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_resend_changed_id_fails(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)
    headers["svix-id"] = "msg_2W2D3qXLS5fOaPja1GDg7rF2CwC"

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_resend_wrong_secret_fails(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(RESEND_BODY, headers, secret=SvixSigner().secret, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


def test_resend_signature_of_other_version_fails(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)
    headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


@pytest.mark.parametrize("signed_at", [OLD, AHEAD], ids=["replayed", "ahead"])
def test_resend_timestamp_outside_tolerance(svix: SvixSigner, signed_at: datetime) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, signed_at)

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)

    assert rejection(excinfo) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_resend_missing_header(svix: SvixSigner, missing: str) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)
    del headers[missing]

    with pytest.raises(WebhookRejected) as excinfo:
        verify_resend(RESEND_BODY, headers, secret=svix.secret, now=NOW)

    assert rejection(excinfo) == "signature_missing"


def test_resend_unusable_secret_is_configuration_error(svix: SvixSigner) -> None:
    headers = svix.headers(RESEND_BODY, SVIX_ID, NOW)

    with pytest.raises(ValueError, match="whsec_"):
        verify_resend(RESEND_BODY, headers, secret="whsec_not base64!", now=NOW)


# Postmark


def test_postmark_credentials_pass() -> None:
    headers = postmark_authorization("frontdesk", "correct horse battery staple")

    verify_postmark(headers, username="frontdesk", password="correct horse battery staple")


def test_postmark_password_with_colon_passes() -> None:
    headers = postmark_authorization("frontdesk", "pa:ss")

    verify_postmark(headers, username="frontdesk", password="pa:ss")


@pytest.mark.parametrize(
    "headers",
    [
        postmark_authorization("frontdesk", "wrong"),
        postmark_authorization("someone", "correct horse battery staple"),
        postmark_authorization("frontdesk", "correct horse battery stapl"),
        {"Authorization": "Bearer frontdesk:correct horse battery staple"},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Basic " + base64.b64encode(b"no separator").decode()},
    ],
    ids=["password", "user", "prefix", "scheme", "base64", "separator"],
)
def test_postmark_wrong_credentials_fail(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        verify_postmark(headers, username="frontdesk", password="correct horse battery staple")

    assert rejection(excinfo) == "credentials_invalid"


def test_postmark_missing_header() -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        verify_postmark({}, username="frontdesk", password="secret")

    assert rejection(excinfo) == "signature_missing"
    assert "https://user:password@" in str(excinfo.value)


# Amazon SNS

SES_DELIVERY = {
    "eventType": "Delivery",
    "mail": {
        "timestamp": "2026-03-02T11:59:58.000Z",
        "messageId": "0100018e0f5b2a4c-5f0e0d0c-1b2a-4c3d-8e9f-0a1b2c3d4e5f-000000",
        "destination": ["client@example.org"],
    },
    "delivery": {
        "timestamp": "2026-03-02T11:59:59.000Z",
        "recipients": ["client@example.org"],
        "smtpResponse": "250 2.0.0 OK",
    },
}


@pytest.fixture(scope="module")
def sns() -> SnsSigner:
    return SnsSigner(not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=300))


@pytest.mark.parametrize("version", ["1", "2"])
async def test_sns_notification_passes(sns: SnsSigner, version: str) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW), version=version)

    verified = await verify_sns_message(
        json.dumps(message).encode(),
        fetch_certificate=sns.fetch,
        expected_topic_arn=SNS_TOPIC_ARN,
        now=NOW,
    )

    assert verified == message
    assert sns.fetched[-1] == SNS_CERTIFICATE_URL


async def test_sns_notification_without_subject_passes(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW, subject=None))

    await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)


@pytest.mark.parametrize("kind", ["Subscription", "Unsubscribe"])
@pytest.mark.parametrize("version", ["1", "2"])
async def test_sns_confirmation_passes(sns: SnsSigner, kind: str, version: str) -> None:
    message = sns.sign(sns_subscription_confirmation(NOW, kind=kind), version=version)

    verified = await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert verified["Type"] == f"{kind}Confirmation"


@pytest.mark.parametrize("field", ["Message", "MessageId", "Subject", "Timestamp", "TopicArn"])
async def test_sns_changed_field_fails(sns: SnsSigner, field: str) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    value = message[field]
    message[field] = value[:-1] + ("0" if value[-1] != "0" else "1")

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


async def test_sns_changed_body_byte_fails(sns: SnsSigner) -> None:
    body = json.dumps(sns.sign(sns_notification(SES_DELIVERY, NOW))).encode()
    position = body.index(b"client@example.org") + 1

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(flip_byte(body, position), fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


async def test_sns_signed_subject_cannot_be_removed(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    del message["Subject"]

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


async def test_sns_version_swap_fails(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW), version="2")
    message["SignatureVersion"] = "1"

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


async def test_sns_wrong_key_fails(sns: SnsSigner) -> None:
    other = SnsSigner(not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=1))
    message = other.sign(sns_notification(SES_DELIVERY, NOW))

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_invalid"


@pytest.mark.parametrize("published_at", [OLD, AHEAD], ids=["replayed", "ahead"])
async def test_sns_timestamp_outside_tolerance(sns: SnsSigner, published_at: datetime) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, published_at))

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("missing", ["Signature", "SignatureVersion"])
async def test_sns_missing_signature(sns: SnsSigner, missing: str) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    del message[missing]

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "signature_missing"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("SignatureVersion", "3", "signature_invalid"),
        ("Signature", "not base64!", "signature_invalid"),
        ("Type", "Notice", "payload_invalid"),
        ("Timestamp", "yesterday", "signature_invalid"),
    ],
)
async def test_sns_malformed_field(sns: SnsSigner, field: str, value: str, code: str) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    message[field] = value

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == code


async def test_sns_malformed_timestamp_signed(sns: SnsSigner) -> None:
    message = sns_notification(SES_DELIVERY, NOW)
    message["Timestamp"] = "yesterday"

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(sns.sign(message), fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "payload_invalid"
    assert "Timestamp" in str(excinfo.value)


async def test_sns_missing_signed_field(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    del message["MessageId"]

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "payload_invalid"
    assert "MessageId" in str(excinfo.value)


async def test_sns_unexpected_topic_fails(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    fetched_before = len(sns.fetched)

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(
            message,
            fetch_certificate=sns.fetch,
            expected_topic_arn="arn:aws:sns:us-east-1:123456789012:other-topic",
            now=NOW,
        )

    assert rejection(excinfo) == "payload_invalid"
    assert "TopicArn" in str(excinfo.value)
    assert len(sns.fetched) == fetched_before


BAD_CERTIFICATE_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://evil.example/?sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-abc.pem",
    "https://user:pass@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:443@evil.example/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:0/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:99999/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com./SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.example/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com%2eevil.example/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com\t.evil.example/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com /SimpleNotificationService-abc.pem",
    "https://sn\u0455.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",  # Cyrillic dze
    "https://sns.s3.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://evilsns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.evil.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    "https://sns.cn-north-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://amazonaws.com/SimpleNotificationService-abc.pem",
    "https://127.0.0.1/SimpleNotificationService-abc.pem",
    "https://[::1]/SimpleNotificationService-abc.pem",
    "//sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "file:///etc/ssl/cert.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#fragment",
    "https://sns.us-east-1.amazonaws.com#@evil.example/x.pem",
    "https://sns.us-east-1.amazonaws.com/redirect?to=https://evil.example/x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.crt",
    "https://sns.us-east-1.amazonaws.com",
    "",
]


@pytest.mark.parametrize("url", BAD_CERTIFICATE_URLS)
async def test_sns_bad_certificate_url(sns: SnsSigner, url: str) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW), certificate_url=url)
    fetched_before = len(sns.fetched)

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "certificate_url_invalid"
    assert len(sns.fetched) == fetched_before


async def test_sns_missing_certificate_url(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))
    del message["SigningCertURL"]

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=sns.fetch, now=NOW)

    assert rejection(excinfo) == "certificate_url_invalid"


@pytest.mark.parametrize(
    "url",
    [
        SNS_CERTIFICATE_URL,
        "https://sns.eu-central-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
        "https://SNS.US-EAST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem",
    ],
)
def test_sns_good_certificate_url(url: str) -> None:
    assert check_certificate_url(url) == url


async def test_sns_certificate_with_wrong_cn(sns: SnsSigner) -> None:
    impostor = SnsSigner(
        common_name="sns.amazonaws.com.evil.example",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
    )
    message = impostor.sign(sns_notification(SES_DELIVERY, NOW))

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=impostor.fetch, now=NOW)

    assert rejection(excinfo) == "certificate_invalid"
    assert "CN" in str(excinfo.value)


async def test_sns_expired_certificate() -> None:
    expired = SnsSigner(not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    message = expired.sign(sns_notification(SES_DELIVERY, NOW))

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=expired.fetch, now=NOW)

    assert rejection(excinfo) == "certificate_invalid"


async def test_sns_unreadable_certificate(sns: SnsSigner) -> None:
    message = sns.sign(sns_notification(SES_DELIVERY, NOW))

    async def fetch_garbage(url: str) -> bytes:
        return b"<html>not a certificate</html>"

    with pytest.raises(WebhookRejected) as excinfo:
        await verify_sns_message(message, fetch_certificate=fetch_garbage, now=NOW)

    assert rejection(excinfo) == "certificate_invalid"


def test_confirmation_url_returned(sns: SnsSigner) -> None:
    message = sns_subscription_confirmation(NOW)

    assert confirmation_url(message) == message["SubscribeURL"]


CONFIRM_QUERY = f"?Action=ConfirmSubscription&TopicArn={SNS_TOPIC_ARN}&Token=2336412f"


@pytest.mark.parametrize(
    "url",
    [
        f"https://sns.us-east-1.amazonaws.com.evil.example/{CONFIRM_QUERY}",
        f"https://evil.example/sns.us-east-1.amazonaws.com/{CONFIRM_QUERY}",
        f"https://x@sns.us-east-1.amazonaws.com/{CONFIRM_QUERY}",
        f"http://sns.us-east-1.amazonaws.com/{CONFIRM_QUERY}",
        f"https://sns.us-east-1.amazonaws.com:8080/{CONFIRM_QUERY}",
        f"https://sns.us-east-1.amazonaws.com/{CONFIRM_QUERY.replace('Confirm', 'Un')}",
        f"https://sns.us-east-1.amazonaws.com/{CONFIRM_QUERY.replace('events', 'other')}",
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f",
    ],
)
def test_confirmation_url_rejected(url: str) -> None:
    message = sns_subscription_confirmation(NOW)
    message["SubscribeURL"] = url

    with pytest.raises(WebhookRejected) as excinfo:
        confirmation_url(message)

    assert rejection(excinfo) == "payload_invalid"
    assert "SubscribeURL" in str(excinfo.value)


def test_confirmation_url_needs_confirmation_type() -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        confirmation_url(sns_notification(SES_DELIVERY, NOW))

    assert rejection(excinfo) == "payload_invalid"


# The certificate fetcher, against httpx's in-process transport: no request leaves the test.


class CertificateServer:
    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None):
        self.body = body
        self.status = status
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


async def test_fetcher_caches_by_url(sns: SnsSigner) -> None:
    server = CertificateServer(sns.certificate_pem)
    async with server.client() as client:
        fetcher = HttpxCertificateFetcher(client, timeout=2.5)
        first = await fetcher(SNS_CERTIFICATE_URL)
        second = await fetcher(SNS_CERTIFICATE_URL)
        message = sns.sign(sns_notification(SES_DELIVERY, NOW))
        await verify_sns_message(message, fetch_certificate=fetcher, now=NOW)

    assert first == second == sns.certificate_pem
    assert len(server.requests) == 1
    assert str(server.requests[0].url) == SNS_CERTIFICATE_URL
    assert server.requests[0].extensions["timeout"]["read"] == 2.5


async def test_fetcher_evicts_least_recently_used(sns: SnsSigner) -> None:
    other_url = SNS_CERTIFICATE_URL.replace("0123456789abcdef", "fedcba9876543210")
    server = CertificateServer(sns.certificate_pem)
    async with server.client() as client:
        fetcher = HttpxCertificateFetcher(client, max_cached=1)
        await fetcher(SNS_CERTIFICATE_URL)
        await fetcher(other_url)
        await fetcher(SNS_CERTIFICATE_URL)

    assert [str(request.url) for request in server.requests] == [
        SNS_CERTIFICATE_URL,
        other_url,
        SNS_CERTIFICATE_URL,
    ]


@pytest.mark.parametrize(
    ("body", "status", "headers"),
    [
        (b"x" * 40_000, 200, {}),
        (b"gone", 404, {}),
        (b"", 302, {"Location": "https://evil.example/x.pem"}),
    ],
    ids=["too-large", "not-found", "redirect"],
)
async def test_fetcher_rejects_bad_responses(
    body: bytes, status: int, headers: dict[str, str]
) -> None:
    server = CertificateServer(body, status, headers)
    async with server.client() as client:
        fetcher = HttpxCertificateFetcher(client)
        with pytest.raises(WebhookRejected) as excinfo:
            await fetcher(SNS_CERTIFICATE_URL)

    assert rejection(excinfo) == "certificate_invalid"
    assert len(server.requests) == 1


async def test_fetcher_checks_url_before_request() -> None:
    server = CertificateServer(b"")
    async with server.client() as client:
        fetcher = HttpxCertificateFetcher(client)
        with pytest.raises(WebhookRejected) as excinfo:
            await fetcher("https://evil.example/SimpleNotificationService-abc.pem")

    assert rejection(excinfo) == "certificate_url_invalid"
    assert server.requests == []
