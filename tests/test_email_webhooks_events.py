"""Provider webhook payloads normalized to ``ProviderEvent``.

Payloads follow each provider's documented examples and field lists. The corpus has no event
payload of these providers, only inbound ones, which serve as payloads posted to the wrong
endpoint.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from frontdesk.email.webhooks import (
    EventType,
    Provider,
    ProviderEvent,
    WebhookRejected,
    parse_mailgun,
    parse_postmark,
    parse_resend,
    parse_sendgrid,
    parse_ses_sns,
    postmark_event_id,
    verify_sns_message,
)
from webhook_signing import SnsSigner, sns_notification, sns_subscription_confirmation

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email-webhooks"


def only(events: list[ProviderEvent]) -> ProviderEvent:
    assert len(events) == 1, events
    return events[0]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# SendGrid

SG_MESSAGE = "hNF5zphQS--qaRXl2uwDA.filterdrecv-5645d9c87f-6r8tq-1-5F5FC76C-9.0"
SG_COMMON = {
    "email": "client@example.org",
    "timestamp": 1772452800,
    "smtp-id": "<hNF5zphQS--qaRXl2uwDA@geopod-ismtpd-3-1>",
    "sg_message_id": SG_MESSAGE,
    "category": ["enquiry-reply"],
}
SENDGRID_BATCH: list[dict[str, Any]] = [
    {**SG_COMMON, "event": "processed", "sg_event_id": "cHJvY2Vzc2VkLTE"},
    {
        **SG_COMMON,
        "event": "dropped",
        "sg_event_id": "ZHJvcHBlZC0y",
        "reason": "Bounced Address",
        "status": "5.0.0",
    },
    {
        **SG_COMMON,
        "event": "deferred",
        "sg_event_id": "ZGVmZXJyZWQtMw",
        "response": "400 try again later",
        "attempt": "5",
    },
    {
        **SG_COMMON,
        "event": "delivered",
        "sg_event_id": "ZGVsaXZlcmVkLTQ",
        "response": "250 OK",
        "ip": "168.1.1.1",
    },
    {
        **SG_COMMON,
        "event": "bounce",
        "type": "bounce",
        "sg_event_id": "Ym91bmNlLTU",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist",
        "status": "5.1.1",
        "bounce_classification": "Invalid Address",
    },
    {
        **SG_COMMON,
        "event": "bounce",
        "type": "blocked",
        "sg_event_id": "YmxvY2tlZC02",
        "reason": "550 5.7.1 Service unavailable; client host blocked",
        "status": "5.7.1",
        "bounce_classification": "Reputation",
    },
    {
        **SG_COMMON,
        "event": "open",
        "sg_event_id": "b3Blbi03",
        "sg_machine_open": True,
        "useragent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com)",
        "ip": "255.255.255.255",
    },
    {
        **SG_COMMON,
        "event": "open",
        "sg_event_id": "b3Blbi04",
        "sg_machine_open": False,
        "useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
        "ip": "203.0.113.7",
    },
    {
        **SG_COMMON,
        "event": "click",
        "sg_event_id": "Y2xpY2stOQ",
        "useragent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
        "ip": "203.0.113.8",
        "url": "https://frontdesk.example/enquiries/42",
        "url_offset": {"index": 0, "type": "html"},
    },
    {**SG_COMMON, "event": "spamreport", "sg_event_id": "c3BhbXJlcG9ydC0xMA"},
    {**SG_COMMON, "event": "unsubscribe", "sg_event_id": "dW5zdWJzY3JpYmUtMTE"},
    {
        **SG_COMMON,
        "event": "group_unsubscribe",
        "sg_event_id": "Z3JvdXBfdW5zdWItMTI",
        "asm_group_id": 10,
        "useragent": "Mozilla/5.0",
        "ip": "203.0.113.9",
    },
    {
        **SG_COMMON,
        "event": "group_resubscribe",
        "sg_event_id": "Z3JvdXBfcmVzdWItMTM",
        "asm_group_id": 10,
    },
    {
        "event": "account_status_change",
        "sg_event_id": "YWNjb3VudC0xNA",
        "timestamp": 1772452800,
        "type": "compliance_suspend",
    },
]


@pytest.fixture(scope="module")
def sendgrid_events() -> dict[str, ProviderEvent]:
    body = json.dumps(SENDGRID_BATCH).encode() + b"\r\n"
    return {event.event_id: event for event in parse_sendgrid(body)}


def test_sendgrid_batch_skips_unknown_types(sendgrid_events: dict[str, ProviderEvent]) -> None:
    assert len(sendgrid_events) == 12
    assert "Z3JvdXBfcmVzdWItMTM" not in sendgrid_events
    assert "YWNjb3VudC0xNA" not in sendgrid_events


@pytest.mark.parametrize(
    ("event_id", "event_type", "bounce_kind", "reason"),
    [
        ("cHJvY2Vzc2VkLTE", EventType.QUEUED, None, None),
        ("ZHJvcHBlZC0y", EventType.REJECTED, None, "Bounced Address"),
        ("ZGVmZXJyZWQtMw", EventType.DEFERRED, None, "400 try again later"),
        ("ZGVsaXZlcmVkLTQ", EventType.DELIVERED, None, None),
        (
            "Ym91bmNlLTU",
            EventType.BOUNCED,
            "hard",
            "550 5.1.1 The email account that you tried to reach does not exist",
        ),
        (
            "YmxvY2tlZC02",
            EventType.BOUNCED,
            "soft",
            "550 5.7.1 Service unavailable; client host blocked",
        ),
        ("b3Blbi03", EventType.OPENED, None, None),
        ("Y2xpY2stOQ", EventType.CLICKED, None, None),
        ("c3BhbXJlcG9ydC0xMA", EventType.COMPLAINED, None, None),
        ("dW5zdWJzY3JpYmUtMTE", EventType.UNSUBSCRIBED, None, None),
        ("Z3JvdXBfdW5zdWItMTI", EventType.UNSUBSCRIBED, None, None),
    ],
)
def test_sendgrid_event_types(
    sendgrid_events: dict[str, ProviderEvent],
    event_id: str,
    event_type: EventType,
    bounce_kind: str | None,
    reason: str | None,
) -> None:
    event = sendgrid_events[event_id]

    assert event.type == event_type
    assert event.bounce_kind == bounce_kind
    assert event.reason == reason
    assert event.provider == Provider.SENDGRID
    assert event.occurred_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert event.recipient == "client@example.org"
    assert event.provider_message_id == SG_MESSAGE
    assert event.message_id_header == "<hNF5zphQS--qaRXl2uwDA@geopod-ismtpd-3-1>"


def test_sendgrid_open_machine_hint(sendgrid_events: dict[str, ProviderEvent]) -> None:
    machine = sendgrid_events["b3Blbi03"]
    person = sendgrid_events["b3Blbi04"]

    assert machine.machine_hint is True
    assert person.machine_hint is False
    assert machine.ip == "255.255.255.255"
    assert machine.user_agent is not None
    assert machine.user_agent.endswith("(via ggpht.com)")
    assert sendgrid_events["Y2xpY2stOQ"].machine_hint is None


def test_sendgrid_client_ip_only(sendgrid_events: dict[str, ProviderEvent]) -> None:
    assert sendgrid_events["ZGVsaXZlcmVkLTQ"].ip is None
    assert sendgrid_events["Z3JvdXBfdW5zdWItMTI"].ip == "203.0.113.9"


def test_sendgrid_click_fields(sendgrid_events: dict[str, ProviderEvent]) -> None:
    click = sendgrid_events["Y2xpY2stOQ"]

    assert click.url == "https://frontdesk.example/enquiries/42"
    assert click.ip == "203.0.113.8"
    assert click.user_agent == "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"
    assert click.provider_event_type == "click"
    assert click.raw["url_offset"] == {"index": 0, "type": "html"}


def test_sendgrid_library_sample_record() -> None:
    # The dropped record that SendGrid's Python library signs in its own tests.
    body = (
        b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
        b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
        b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-'
        b'5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",'
        b'"timestamp":1600112492}]\r\n'
    )

    event = only(parse_sendgrid(body))

    assert event.type == EventType.REJECTED
    assert event.event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.occurred_at == datetime.fromtimestamp(1600112492, UTC)
    assert event.recipient == "hello@world.com"
    assert event.reason == "Bounced Address"
    assert event.message_id_header == "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>"


@pytest.mark.parametrize(
    ("records", "field"),
    [
        ({"event": "processed"}, "(body)"),
        ([{**SG_COMMON, "event": "processed", "sg_event_id": "a"}, "text"], "[1]"),
        ([{**SG_COMMON, "sg_event_id": "a"}], "[0].event"),
        ([{**SG_COMMON, "event": "processed"}], "[0].sg_event_id"),
        (
            [{**SG_COMMON, "event": "open", "sg_event_id": "a", "timestamp": "yesterday"}],
            "[0].timestamp",
        ),
        ([{"event": "delivered", "sg_event_id": "a", "email": "x@example.org"}], "[0].timestamp"),
    ],
)
def test_sendgrid_malformed_names_field(records: Any, field: str) -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        parse_sendgrid(json.dumps(records))

    assert excinfo.value.code == "payload_invalid"
    assert f"field {field} " in str(excinfo.value)


def test_sendgrid_inbound_parse_body_rejected() -> None:
    # An Inbound Parse form post sent to the Event Webhook URL by mistake.
    body = (CORPUS / "sendgrid" / "default_data.txt").read_bytes()

    with pytest.raises(WebhookRejected) as excinfo:
        parse_sendgrid(body)

    assert excinfo.value.code == "payload_invalid"
    assert "not valid JSON" in str(excinfo.value)


# Mailgun

MAILGUN_MESSAGE_ID = "20260302120000.1.A1B2C3D4E5F6@mg.frontdesk.example"


def mailgun(event: str, **fields: Any) -> dict[str, Any]:
    record = {
        "id": f"{event}-G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1772452800.123456,
        "log-level": "info",
        "event": event,
        "recipient": "client@example.org",
        "recipient-domain": "example.org",
        "tags": ["enquiry-reply"],
        "envelope": {
            "transport": "smtp",
            "sender": "bob@mg.frontdesk.example",
            "targets": "client@example.org",
        },
        "message": {
            "headers": {
                "to": "Client <client@example.org>",
                "message-id": MAILGUN_MESSAGE_ID,
                "from": "Bob <bob@mg.frontdesk.example>",
                "subject": "Your enquiry",
            },
            "attachments": [],
            "size": 1024,
        },
        "user-variables": {},
        **fields,
    }
    return {
        "signature": {
            "timestamp": "1772452800",
            "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
            "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
        },
        "event-data": record,
    }


MAILGUN_CASES = [
    ("accepted", {"method": "HTTP"}, EventType.QUEUED, None, None),
    (
        "delivered",
        {"delivery-status": {"code": 250, "message": "OK", "description": ""}},
        EventType.DELIVERED,
        None,
        None,
    ),
    (
        "failed",
        {
            "severity": "permanent",
            "reason": "bounce",
            "log-level": "error",
            "delivery-status": {
                "attempt-no": 1,
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            },
        },
        EventType.BOUNCED,
        "hard",
        "5.1.1 The email account that you tried to reach does not exist.",
    ),
    (
        "failed",
        {
            "severity": "permanent",
            "reason": "suppress-bounce",
            "delivery-status": {
                "code": 605,
                "message": "",
                "description": "Not delivering to previously bounced address",
            },
        },
        EventType.REJECTED,
        None,
        "Not delivering to previously bounced address",
    ),
    (
        "failed",
        {
            "severity": "temporary",
            "reason": "generic",
            "delivery-status": {
                "attempt-no": 2,
                "code": 452,
                "message": "4.2.2 The email account that you tried to reach is over quota.",
                "retry-seconds": 600,
            },
        },
        EventType.DEFERRED,
        None,
        "4.2.2 The email account that you tried to reach is over quota.",
    ),
    (
        "rejected",
        {"reject": {"reason": "Sandbox subdomains are for test purposes only", "description": ""}},
        EventType.REJECTED,
        None,
        "Sandbox subdomains are for test purposes only",
    ),
    ("unsubscribed", {"ip": "203.0.113.5"}, EventType.UNSUBSCRIBED, None, None),
    ("complained", {}, EventType.COMPLAINED, None, None),
]


@pytest.mark.parametrize(
    ("name", "fields", "event_type", "bounce_kind", "reason"),
    MAILGUN_CASES,
    ids=[f"{case[0]}-{case[2]}" for case in MAILGUN_CASES],
)
def test_mailgun_event_types(
    name: str,
    fields: dict[str, Any],
    event_type: EventType,
    bounce_kind: str | None,
    reason: str | None,
) -> None:
    payload = mailgun(name, **fields)

    event = only(parse_mailgun(json.dumps(payload).encode()))

    assert event.type == event_type
    assert event.bounce_kind == bounce_kind
    assert event.reason == reason
    assert event.provider == Provider.MAILGUN
    assert event.event_id == f"{name}-G9Bn5sl1TC6nu79C8C0bwg"
    assert event.occurred_at == datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
    assert event.recipient == "client@example.org"
    assert event.provider_message_id == MAILGUN_MESSAGE_ID
    assert event.message_id_header == f"<{MAILGUN_MESSAGE_ID}>"
    assert event.raw == payload["event-data"]


def test_mailgun_opened_and_clicked() -> None:
    client_info = {
        "client-type": "browser",
        "client-os": "Linux",
        "device-type": "desktop",
        "client-name": "Chrome",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
    }
    geolocation = {"country": "US", "region": "CA", "city": "San Francisco"}
    opened = mailgun(
        "opened", ip="50.56.129.169", geolocation=geolocation, **{"client-info": client_info}
    )
    clicked = mailgun(
        "clicked",
        ip="50.56.129.170",
        url="https://frontdesk.example/enquiries/42",
        geolocation=geolocation,
        **{"client-info": client_info},
    )

    open_event = only(parse_mailgun(opened))
    click_event = only(parse_mailgun(clicked))

    assert open_event.type == EventType.OPENED
    assert open_event.ip == "50.56.129.169"
    assert open_event.user_agent == client_info["user-agent"]
    assert open_event.url is None
    assert open_event.machine_hint is None
    assert click_event.type == EventType.CLICKED
    assert click_event.url == "https://frontdesk.example/enquiries/42"
    assert click_event.ip == "50.56.129.170"


@pytest.mark.parametrize("name", ["stored", "list_member_uploaded", "something_new"])
def test_mailgun_unknown_type_skipped(name: str) -> None:
    assert parse_mailgun(mailgun(name)) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"signature": {}}, "event-data"),
        ({"event-data": []}, "event-data"),
        ({"event-data": {"id": "x", "timestamp": 1}}, "event-data.event"),
        (
            {"event-data": {"event": "delivered", "timestamp": 1772452800}},
            "event-data.id",
        ),
        ({"event-data": {"event": "delivered", "id": "x"}}, "event-data.timestamp"),
        (
            {"event-data": {"event": "failed", "id": "x", "timestamp": 1772452800}},
            "event-data.severity",
        ),
        ([], "(body)"),
    ],
)
def test_mailgun_malformed_names_field(payload: Any, field: str) -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        parse_mailgun(payload)

    assert excinfo.value.code == "payload_invalid"
    assert f"field {field} " in str(excinfo.value)


# Resend

RESEND_EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


def resend(event_type: str, **data: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "created_at": "2026-03-02T12:00:01.736Z",
        "data": {
            "broadcast_id": None,
            "created_at": "2026-03-02T11:59:58.982Z",
            "email_id": RESEND_EMAIL_ID,
            "from": "Bob at Frontdesk <bob@frontdesk.example>",
            "to": ["Client <client@example.org>", "second@example.org"],
            "subject": "Your enquiry",
            "headers": [
                {"name": "Message-ID", "value": "<0102018e.frontdesk@frontdesk.example>"},
                {"name": "Reply-To", "value": "enquiries@frontdesk.example"},
            ],
            "tags": {"category": "enquiry_reply"},
            **data,
        },
    }


RESEND_CASES = [
    ("email.scheduled", {}, EventType.QUEUED, None, None),
    ("email.sent", {}, EventType.SENT, None, None),
    ("email.delivered", {}, EventType.DELIVERED, None, None),
    ("email.delivery_delayed", {}, EventType.DEFERRED, None, None),
    (
        "email.bounced",
        {
            "bounce": {
                "message": "The recipient's email address is on the suppression list.",
                "subType": "Suppressed",
                "type": "Permanent",
            }
        },
        EventType.BOUNCED,
        "hard",
        "The recipient's email address is on the suppression list.",
    ),
    (
        "email.bounced",
        {
            "bounce": {
                "message": "The recipient's mailbox is full.",
                "subType": "MailboxFull",
                "type": "Transient",
            }
        },
        EventType.BOUNCED,
        "soft",
        "The recipient's mailbox is full.",
    ),
    (
        "email.bounced",
        {"bounce": {"message": "The recipient's email provider sent a hard bounce message."}},
        EventType.BOUNCED,
        "hard",
        "The recipient's email provider sent a hard bounce message.",
    ),
    ("email.complained", {}, EventType.COMPLAINED, None, None),
    ("email.opened", {}, EventType.OPENED, None, None),
    (
        "email.failed",
        {"failed": {"reason": "reached_daily_quota"}},
        EventType.FAILED,
        None,
        "reached_daily_quota",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "event_type", "bounce_kind", "reason"),
    RESEND_CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(RESEND_CASES)],
)
def test_resend_event_types(
    name: str,
    data: dict[str, Any],
    event_type: EventType,
    bounce_kind: str | None,
    reason: str | None,
) -> None:
    payload = resend(name, **data)

    event = only(
        parse_resend(json.dumps(payload).encode(), svix_id="msg_2W2D3qXLS5fOaPja1GDg7rF2CwB")
    )

    assert event.type == event_type
    assert event.bounce_kind == bounce_kind
    assert event.reason == reason
    assert event.provider == Provider.RESEND
    assert event.event_id == "msg_2W2D3qXLS5fOaPja1GDg7rF2CwB"
    assert event.provider_event_type == name
    assert event.occurred_at == datetime(2026, 3, 2, 12, 0, 1, 736000, tzinfo=UTC)
    assert event.recipient == "client@example.org"
    assert event.provider_message_id == RESEND_EMAIL_ID
    assert event.message_id_header == "<0102018e.frontdesk@frontdesk.example>"
    assert event.raw == payload


def test_resend_clicked() -> None:
    payload = resend(
        "email.clicked",
        click={
            "ipAddress": "122.115.53.11",
            "link": "https://frontdesk.example/enquiries/42",
            "timestamp": "2026-03-02T12:05:07.424Z",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15",
        },
    )

    event = only(parse_resend(payload, svix_id="msg_click"))

    assert event.type == EventType.CLICKED
    assert event.url == "https://frontdesk.example/enquiries/42"
    assert event.ip == "122.115.53.11"
    assert event.user_agent == "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"
    assert event.occurred_at == datetime(2026, 3, 2, 12, 5, 7, 424000, tzinfo=UTC)


@pytest.mark.parametrize("name", ["email.received", "contact.created", "domain.updated"])
def test_resend_unknown_type_skipped(name: str) -> None:
    assert parse_resend(resend(name), svix_id="msg_x") == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"created_at": "2026-03-02T12:00:00Z", "data": {}}, "type"),
        ({"type": "email.sent", "created_at": "2026-03-02T12:00:00Z"}, "data"),
        ({"type": "email.sent", "created_at": "2026-03-02T12:00:00Z", "data": {}}, "data.email_id"),
        ({"type": "email.sent", "data": {"email_id": "x"}}, "created_at"),
        ({"type": "email.sent", "created_at": "soon", "data": {"email_id": "x"}}, "created_at"),
        ({**resend("email.clicked")}, "data.click"),
        ({**resend("email.clicked", click={"ipAddress": "192.0.2.1"})}, "data.click.link"),
    ],
)
def test_resend_malformed_names_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        parse_resend(payload, svix_id="msg_x")

    assert excinfo.value.code == "payload_invalid"
    assert f"field {field} " in str(excinfo.value)


# Amazon SES through SNS

SES_MESSAGE_ID = "0100018e0f5b2a4c-5f0e0d0c-1b2a-4c3d-8e9f-0a1b2c3d4e5f-000000"
SNS_MESSAGE_ID = "9f5e0f43-7c1b-5e7e-9b0a-1c2d3e4f5a6b"
PUBLISHED = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def ses_mail(destination: list[str] | None = None) -> dict[str, Any]:
    return {
        "timestamp": "2026-03-02T11:59:58.000Z",
        "source": "Bob <bob@frontdesk.example>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/frontdesk.example",
        "sendingAccountId": "123456789012",
        "messageId": SES_MESSAGE_ID,
        "destination": destination or ["client@example.org"],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Bob <bob@frontdesk.example>"},
            {"name": "To", "value": "client@example.org"},
            {"name": "Message-ID", "value": "<1a2b3c@frontdesk.example>"},
        ],
        "commonHeaders": {
            "from": ["Bob <bob@frontdesk.example>"],
            "to": ["client@example.org"],
            "messageId": "<1a2b3c@frontdesk.example>",
            "subject": "Your enquiry",
        },
        "tags": {"ses:configuration-set": ["frontdesk"]},
    }


def ses(record: dict[str, Any], **mail: Any) -> dict[str, Any]:
    return sns_notification(
        {**record, "mail": ses_mail(**mail)}, PUBLISHED, message_id=SNS_MESSAGE_ID
    )


SES_CASES: list[tuple[str, dict[str, Any], EventType, str | None, str | None, str]] = [
    ("send", {"eventType": "Send", "send": {}}, EventType.SENT, None, None, "2026-03-02T11:59:58Z"),
    (
        "delivery",
        {
            "eventType": "Delivery",
            "delivery": {
                "timestamp": "2026-03-02T11:59:59.500Z",
                "processingTimeMillis": 1500,
                "recipients": ["client@example.org"],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
            },
        },
        EventType.DELIVERED,
        None,
        None,
        "2026-03-02T11:59:59.500Z",
    ),
    (
        "bounce-permanent",
        {
            "eventType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": "client@example.org",
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": "2026-03-02T12:00:01.000Z",
                "feedbackId": "0100018e0f5b2f6d-bounce-000000",
                "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            },
        },
        EventType.BOUNCED,
        "hard",
        "smtp; 550 5.1.1 user unknown",
        "2026-03-02T12:00:01Z",
    ),
    (
        "bounce-undetermined",
        {
            "eventType": "Bounce",
            "bounce": {
                "bounceType": "Undetermined",
                "bounceSubType": "Undetermined",
                "bouncedRecipients": [{"emailAddress": "client@example.org"}],
                "timestamp": "2026-03-02T12:00:01.000Z",
            },
        },
        EventType.BOUNCED,
        None,
        "Undetermined: Undetermined",
        "2026-03-02T12:00:01Z",
    ),
    (
        "complaint",
        {
            "eventType": "Complaint",
            "complaint": {
                "feedbackId": "0100018e0f5b3a2b-complaint-000000",
                "complaintSubType": None,
                "complainedRecipients": [{"emailAddress": "client@example.org"}],
                "timestamp": "2026-03-02T12:10:00.000Z",
                "userAgent": "Mozilla/5.0 (compatible; FeedbackLoop/1.0)",
                "complaintFeedbackType": "abuse",
                "arrivalDate": "2026-03-02T12:09:58.000Z",
            },
        },
        EventType.COMPLAINED,
        None,
        "abuse",
        "2026-03-02T12:10:00Z",
    ),
    (
        "reject",
        {"eventType": "Reject", "reject": {"reason": "Bad content"}},
        EventType.REJECTED,
        None,
        "Bad content",
        "2026-03-02T11:59:58Z",
    ),
    (
        "delivery-delay",
        {
            "eventType": "DeliveryDelay",
            "deliveryDelay": {
                "timestamp": "2026-03-02T12:20:00.000Z",
                "delayType": "TransientCommunicationFailure",
                "expirationTime": "2026-03-02T23:59:58.000Z",
                "delayedRecipients": [
                    {
                        "emailAddress": "client@example.org",
                        "status": "4.4.1",
                        "diagnosticCode": "smtp; 421 4.4.1 Unable to connect",
                    }
                ],
            },
        },
        EventType.DEFERRED,
        None,
        "smtp; 421 4.4.1 Unable to connect",
        "2026-03-02T12:20:00Z",
    ),
    (
        "rendering-failure",
        {
            "eventType": "Rendering Failure",
            "failure": {
                "errorMessage": "Attribute 'name' is not present in the rendering data.",
                "templateName": "enquiry_reply",
            },
        },
        EventType.FAILED,
        None,
        "Attribute 'name' is not present in the rendering data.",
        "2026-03-02T11:59:58Z",
    ),
    (
        "subscription",
        {
            "eventType": "Subscription",
            "subscription": {
                "contactList": "frontdesk-updates",
                "timestamp": "2026-03-02T12:30:00.000Z",
                "source": "UnsubscribeHeader",
                "newTopicPreferences": {"unsubscribeAll": True, "topicSubscriptionStatus": []},
                "oldTopicPreferences": {"unsubscribeAll": False, "topicSubscriptionStatus": []},
            },
        },
        EventType.UNSUBSCRIBED,
        None,
        "UnsubscribeHeader",
        "2026-03-02T12:30:00Z",
    ),
]


@pytest.mark.parametrize(
    ("record", "event_type", "bounce_kind", "reason", "occurred_at"),
    [case[1:] for case in SES_CASES],
    ids=[case[0] for case in SES_CASES],
)
def test_ses_event_types(
    record: dict[str, Any],
    event_type: EventType,
    bounce_kind: str | None,
    reason: str | None,
    occurred_at: str,
) -> None:
    message = ses(record)

    event = only(parse_ses_sns(message))

    assert event.type == event_type
    assert event.bounce_kind == bounce_kind
    assert event.reason == reason
    assert event.occurred_at == at(occurred_at)
    assert event.provider == Provider.SES
    assert event.event_id == SNS_MESSAGE_ID
    assert event.provider_event_type == record["eventType"]
    assert event.recipient == "client@example.org"
    assert event.provider_message_id == SES_MESSAGE_ID
    assert event.message_id_header == "<1a2b3c@frontdesk.example>"
    assert event.raw == json.loads(message["Message"])


def test_ses_transient_bounce_per_recipient() -> None:
    record = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Transient",
            "bounceSubType": "MailboxFull",
            "bouncedRecipients": [
                {"emailAddress": "first@example.org", "status": "4.2.2"},
                {"emailAddress": "Second <second@example.org>", "status": "4.2.2"},
            ],
            "timestamp": "2026-03-02T12:00:01.000Z",
        },
    }

    events = parse_ses_sns(
        ses(record, destination=["first@example.org", "second@example.org", "third@example.org"])
    )

    assert [event.recipient for event in events] == ["first@example.org", "second@example.org"]
    assert [event.event_id for event in events] == [f"{SNS_MESSAGE_ID}:0", f"{SNS_MESSAGE_ID}:1"]
    assert {event.bounce_kind for event in events} == {"soft"}
    assert {event.reason for event in events} == {"Transient: MailboxFull"}


def test_ses_open_and_click() -> None:
    opened = ses(
        {
            "eventType": "Open",
            "open": {
                "ipAddress": "192.0.2.1",
                "timestamp": "2026-03-02T13:00:00.000Z",
                "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
            },
        }
    )
    clicked = ses(
        {
            "eventType": "Click",
            "click": {
                "ipAddress": "192.0.2.2",
                "link": "https://frontdesk.example/enquiries/42",
                "linkTags": {"samplekey0": ["samplevalue0"]},
                "timestamp": "2026-03-02T13:01:00.000Z",
                "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            },
        },
        destination=["a@example.org", "b@example.org"],
    )

    open_event = only(parse_ses_sns(opened))
    click_event = only(parse_ses_sns(clicked))

    assert open_event.type == EventType.OPENED
    assert open_event.ip == "192.0.2.1"
    assert open_event.user_agent == "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
    assert open_event.occurred_at == at("2026-03-02T13:00:00Z")
    assert open_event.recipient == "client@example.org"
    assert click_event.type == EventType.CLICKED
    assert click_event.url == "https://frontdesk.example/enquiries/42"
    # The message went to two recipients and SES does not say whose click this was.
    assert click_event.recipient is None


def test_ses_send_to_several_recipients() -> None:
    events = parse_ses_sns(
        ses({"eventType": "Send", "send": {}}, destination=["a@example.org", "b@example.org"])
    )

    assert [event.recipient for event in events] == ["a@example.org", "b@example.org"]
    assert [event.event_id for event in events] == [f"{SNS_MESSAGE_ID}:0", f"{SNS_MESSAGE_ID}:1"]


@pytest.mark.parametrize(
    ("record", "event_type", "recipient"),
    [
        (
            {
                "notificationType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "bouncedRecipients": [{"emailAddress": "client@example.org"}],
                    "timestamp": "2026-03-02T12:00:01.000Z",
                    "feedbackId": "0100018e-old-bounce",
                },
            },
            EventType.BOUNCED,
            "client@example.org",
        ),
        (
            {
                "notificationType": "Complaint",
                "complaint": {
                    "complainedRecipients": [{"emailAddress": "client@example.org"}],
                    "timestamp": "2026-03-02T12:00:01.000Z",
                    "feedbackId": "0100018e-old-complaint",
                    "complaintFeedbackType": "abuse",
                },
            },
            EventType.COMPLAINED,
            "client@example.org",
        ),
        (
            {
                "notificationType": "Delivery",
                "delivery": {
                    "timestamp": "2026-03-02T12:00:01.000Z",
                    "recipients": ["client@example.org"],
                    "smtpResponse": "250 ok",
                },
            },
            EventType.DELIVERED,
            "client@example.org",
        ),
    ],
    ids=["bounce", "complaint", "delivery"],
)
def test_ses_notification_format(
    record: dict[str, Any], event_type: EventType, recipient: str
) -> None:
    event = only(parse_ses_sns(ses(record)))

    assert event.type == event_type
    assert event.recipient == recipient
    assert event.provider_event_type == record["notificationType"]
    assert event.occurred_at == at("2026-03-02T12:00:01Z")


@pytest.mark.parametrize(
    "record",
    [
        {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have subscribed"},
        {
            "eventType": "Subscription",
            "subscription": {
                "contactList": "frontdesk-updates",
                "timestamp": "2026-03-02T12:30:00.000Z",
                "source": "SubscriptionPreferencePage",
                "newTopicPreferences": {"unsubscribeAll": False},
            },
        },
        {"eventType": "SomethingNew", "somethingNew": {}},
    ],
    ids=["subscription-succeeded", "resubscribed", "unknown"],
)
def test_ses_unknown_type_skipped(record: dict[str, Any]) -> None:
    assert parse_ses_sns(ses(record)) == []


def test_ses_confirmation_has_no_events() -> None:
    assert parse_ses_sns(sns_subscription_confirmation(PUBLISHED)) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Message": "not json"}, "Message"),
        ({"Message": "[]"}, "Message"),
        ({"Message": json.dumps({"eventType": "Send"})}, "Message.mail"),
        ({"Message": json.dumps({"mail": ses_mail()})}, "Message.eventType"),
        (
            {"Message": json.dumps({"eventType": "Bounce", "mail": ses_mail()})},
            "Message.bounce",
        ),
        (
            {
                "Message": json.dumps(
                    {
                        "eventType": "Bounce",
                        "mail": ses_mail(),
                        "bounce": {"bounceType": "Permanent"},
                    }
                )
            },
            "Message.bounce.bouncedRecipients",
        ),
        (
            {"Message": json.dumps({"eventType": "Send", "send": {}, "mail": {"destination": []}})},
            "Message.mail.messageId",
        ),
        ({"MessageId": None}, "MessageId"),
        ({"Type": None}, "Type"),
    ],
)
def test_ses_malformed_names_field(change: dict[str, Any], field: str) -> None:
    message = {**ses({"eventType": "Send", "send": {}}), **change}
    message = {key: value for key, value in message.items() if value is not None}

    with pytest.raises(WebhookRejected) as excinfo:
        parse_ses_sns(message)

    assert excinfo.value.code == "payload_invalid"
    assert f"field {field} " in str(excinfo.value)


async def test_ses_verified_then_parsed() -> None:
    now = PUBLISHED + timedelta(seconds=2)
    signer = SnsSigner(not_before=now - timedelta(days=1), not_after=now + timedelta(days=1))
    body = json.dumps(signer.sign(ses(SES_CASES[1][1]), version="1")).encode()

    message = await verify_sns_message(body, fetch_certificate=signer.fetch, now=now)
    event = only(parse_ses_sns(message))

    assert event.type == EventType.DELIVERED
    assert event.event_id == SNS_MESSAGE_ID


# Postmark

POSTMARK_MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def postmark_bounce(type_name: str, type_code: int, **fields: Any) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": type_name,
        "TypeCode": type_code,
        "Name": type_name,
        "Tag": "enquiry-reply",
        "MessageID": POSTMARK_MESSAGE_ID,
        "Metadata": {"enquiry": "42"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "client@example.org",
        "From": "bob@frontdesk.example",
        "BouncedAt": "2026-03-02T12:00:01.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Your enquiry",
        "Content": "Return-Path: <>\r\n...",
        **fields,
    }


POSTMARK_BOUNCE_CASES = [
    ("HardBounce", 1, EventType.BOUNCED, "hard"),
    ("Transient", 2, EventType.BOUNCED, "soft"),
    ("Unsubscribe", 16, EventType.UNSUBSCRIBED, None),
    ("DnsError", 256, EventType.BOUNCED, "soft"),
    ("SpamNotification", 512, EventType.BOUNCED, "soft"),
    ("Unknown", 2048, EventType.BOUNCED, None),
    ("SoftBounce", 4096, EventType.BOUNCED, "soft"),
    ("VirusNotification", 8192, EventType.BOUNCED, "soft"),
    ("BadEmailAddress", 100000, EventType.BOUNCED, "hard"),
    ("SpamComplaint", 100001, EventType.COMPLAINED, None),
    ("ManuallyDeactivated", 100002, EventType.REJECTED, None),
    ("Unconfirmed", 100003, EventType.REJECTED, None),
    ("Blocked", 100006, EventType.BOUNCED, "soft"),
    ("SMTPApiError", 100007, EventType.FAILED, None),
    ("DMARCPolicy", 100009, EventType.BOUNCED, "soft"),
    ("TemplateRenderingFailed", 100010, EventType.FAILED, None),
    ("SomethingNew", 999999, EventType.BOUNCED, None),
]


@pytest.mark.parametrize(
    ("type_name", "type_code", "event_type", "bounce_kind"),
    POSTMARK_BOUNCE_CASES,
    ids=[case[0] for case in POSTMARK_BOUNCE_CASES],
)
def test_postmark_bounce_types(
    type_name: str, type_code: int, event_type: EventType, bounce_kind: str | None
) -> None:
    record = postmark_bounce(type_name, type_code)

    event = only(parse_postmark(json.dumps(record).encode()))

    assert event.type == event_type
    assert event.bounce_kind == bounce_kind
    assert event.provider == Provider.POSTMARK
    assert event.provider_event_type == "Bounce"
    assert event.recipient == "client@example.org"
    assert event.provider_message_id == POSTMARK_MESSAGE_ID
    assert event.occurred_at == datetime(2026, 3, 2, 12, 0, 1, 907025, tzinfo=UTC)
    assert event.reason == record["Details"]
    assert event.event_id == postmark_event_id(record)


@pytest.mark.parametrize(
    ("type_name", "type_code"),
    [
        ("Subscribe", 32),
        ("AutoResponder", 64),
        ("AddressChange", 128),
        ("OpenRelayTest", 1024),
        ("ChallengeVerification", 16384),
        ("InboundError", 100008),
    ],
)
def test_postmark_bounce_without_event(type_name: str, type_code: int) -> None:
    assert parse_postmark(postmark_bounce(type_name, type_code)) == []


def test_postmark_delivery() -> None:
    record = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": POSTMARK_MESSAGE_ID,
        "Recipient": "client@example.org",
        "Tag": "enquiry-reply",
        "DeliveredAt": "2026-03-02T07:00:01.1234567-05:00",
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": {"enquiry": "42"},
    }

    event = only(parse_postmark(record))

    assert event.type == EventType.DELIVERED
    assert event.occurred_at == datetime(2026, 3, 2, 12, 0, 1, 123456, tzinfo=UTC)
    assert event.occurred_at.tzinfo == UTC
    assert event.recipient == "client@example.org"
    assert event.bounce_kind is None
    assert event.message_id_header is None


def test_postmark_spam_complaint() -> None:
    record = {
        **postmark_bounce("SpamComplaint", 100001),
        "RecordType": "SpamComplaint",
        "Details": "Test spam complaint details",
    }

    event = only(parse_postmark(record))

    assert event.type == EventType.COMPLAINED
    assert event.provider_event_type == "SpamComplaint"
    assert event.recipient == "client@example.org"


def test_postmark_open_and_click() -> None:
    client = {"Name": "Chrome 120", "Company": "Google", "Family": "Chrome"}
    common = {
        "MessageStream": "outbound",
        "Metadata": {},
        "Client": client,
        "OS": {"Name": "macOS 14", "Company": "Apple Computer, Inc.", "Family": "OS X"},
        "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Chrome/120.0",
        "Geo": {"CountryISOCode": "RS", "Country": "Serbia", "IP": "188.2.95.4"},
        "MessageID": POSTMARK_MESSAGE_ID,
        "ReceivedAt": "2026-03-02T13:00:00.0000000Z",
        "Tag": "enquiry-reply",
        "Recipient": "client@example.org",
    }
    opened = {
        **common,
        "RecordType": "Open",
        "FirstOpen": True,
        "Platform": "WebMail",
        "ReadSeconds": 5,
    }
    clicked = {
        **common,
        "RecordType": "Click",
        "ClickLocation": "HTML",
        "Platform": "Desktop",
        "OriginalLink": "https://frontdesk.example/enquiries/42",
    }

    open_event = only(parse_postmark(opened))
    click_event = only(parse_postmark(clicked))

    assert open_event.type == EventType.OPENED
    assert open_event.ip == "188.2.95.4"
    assert open_event.user_agent == common["UserAgent"]
    assert open_event.url is None
    assert open_event.machine_hint is None
    assert click_event.type == EventType.CLICKED
    assert click_event.url == "https://frontdesk.example/enquiries/42"
    assert click_event.occurred_at == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def test_postmark_subscription_change() -> None:
    suppressed = {
        "RecordType": "SubscriptionChange",
        "MessageID": POSTMARK_MESSAGE_ID,
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-03-02T14:00:00.416071Z",
        "Recipient": "client@example.org",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "enquiry-reply",
        "Metadata": {},
    }
    reactivated = {**suppressed, "SuppressSending": False, "SuppressionReason": None}

    event = only(parse_postmark(suppressed))

    assert event.type == EventType.UNSUBSCRIBED
    assert event.reason == "ManualSuppression"
    assert event.occurred_at == datetime(2026, 3, 2, 14, 0, 0, 416071, tzinfo=UTC)
    assert parse_postmark(reactivated) == []


def test_postmark_unknown_record_type_skipped() -> None:
    assert parse_postmark({"RecordType": "SomethingNew", "Recipient": "a@example.org"}) == []


def test_postmark_event_id_stable() -> None:
    record = postmark_bounce("HardBounce", 1)
    reordered = dict(reversed(list(record.items())))
    changed = {**record, "BouncedAt": "2026-03-02T12:00:02.0000000Z"}

    assert only(parse_postmark(json.dumps(record))).event_id == postmark_event_id(record)
    assert postmark_event_id(reordered) == postmark_event_id(record)
    assert postmark_event_id(changed) != postmark_event_id(record)
    assert len(postmark_event_id(record)) == 64


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"RecordType": "Delivery", "Recipient": "a@example.org"}, "DeliveredAt"),
        (
            {"RecordType": "Delivery", "DeliveredAt": "2026-03-02T12:00:00Z"},
            "Recipient",
        ),
        (
            {k: v for k, v in postmark_bounce("HardBounce", 1).items() if k != "TypeCode"},
            "TypeCode",
        ),
        ({**postmark_bounce("HardBounce", 1), "BouncedAt": "yesterday"}, "BouncedAt"),
        ({"RecordType": "Open", "Recipient": "a@example.org"}, "ReceivedAt"),
    ],
)
def test_postmark_malformed_names_field(record: dict[str, Any], field: str) -> None:
    with pytest.raises(WebhookRejected) as excinfo:
        parse_postmark(record)

    assert excinfo.value.code == "payload_invalid"
    assert f"field {field} " in str(excinfo.value)


def test_postmark_inbound_payload_rejected() -> None:
    # A Postmark inbound message posted to the events URL has no RecordType.
    body = (CORPUS / "anymail" / "postmark-inbound-test-payload.json").read_bytes()

    with pytest.raises(WebhookRejected) as excinfo:
        parse_postmark(body)

    assert excinfo.value.code == "payload_invalid"
    assert "field RecordType " in str(excinfo.value)


# The event type itself


def test_provider_event_frozen_and_private() -> None:
    event = only(parse_postmark(postmark_bounce("HardBounce", 1)))

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.type = EventType.DELIVERED  # type: ignore[misc]
    assert {event, event} == {event}
    assert event.event_id in repr(event)
    assert "client@example.org" not in repr(event)
    assert "Return-Path" not in repr(event)
