"""Normalize email providers' webhook payloads to one event vocabulary.

Each ``parse_*`` function takes a payload that was already verified and returns one
``ProviderEvent`` per recipient and event. Event types that a provider documents but the
vocabulary has no word for (a resubscription, an inbound message) and types that this module
does not know are skipped, so a provider adding a type never breaks the endpoint. A payload
without a field that its event needs raises ``WebhookRejected`` with ``payload_invalid`` and
a message naming the field.

Provider names map to the vocabulary as follows.

============  ===========================================================================
type          provider events
============  ===========================================================================
queued        SendGrid processed, Mailgun accepted, Resend email.scheduled
sent          Resend email.sent, SES Send
delivered     SendGrid delivered, Mailgun delivered, Resend email.delivered,
              SES Delivery, Postmark Delivery
deferred      SendGrid deferred, Mailgun failed with severity temporary,
              Resend email.delivery_delayed, SES DeliveryDelay
bounced       SendGrid bounce, Mailgun failed with severity permanent, Resend email.bounced,
              SES Bounce, Postmark Bounce with a bounce Type
complained    SendGrid spamreport, Mailgun complained, Resend email.complained,
              SES Complaint, Postmark SpamComplaint
opened        SendGrid open, Mailgun opened, Resend email.opened, SES Open, Postmark Open
clicked       SendGrid click, Mailgun clicked, Resend email.clicked, SES Click, Postmark Click
unsubscribed  SendGrid unsubscribe and group_unsubscribe, Mailgun unsubscribed,
              SES Subscription with unsubscribeAll, Postmark SubscriptionChange that
              suppresses sending
rejected      SendGrid dropped, Mailgun rejected and suppress-* failures, SES Reject
failed        Resend email.failed, SES Rendering Failure, Postmark SMTPApiError and
              TemplateRenderingFailed bounces
============  ===========================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from enum import StrEnum
from typing import Any, Literal

from frontdesk.email.webhooks.errors import WebhookRejected
from frontdesk.email.webhooks.verify import load_json_body

BounceKind = Literal["hard", "soft"]
JsonBody = bytes | str | Mapping[str, Any] | list[Any]


class Provider(StrEnum):
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    RESEND = "resend"
    SES = "ses"
    POSTMARK = "postmark"


class EventType(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderEvent:
    """One delivery or engagement event of one recipient, in the shared vocabulary.

    ``event_id`` is unique per provider and stable across the provider's retries, so storing
    each (provider, event_id) once drops duplicates. It is the provider's event id (SendGrid
    ``sg_event_id``, Mailgun ``event-data.id``, the Svix message id of Resend, the SNS
    ``MessageId``). Postmark records have no event id, so theirs is the SHA-256 hex digest of
    the record serialized as JSON with sorted keys and no spaces. When one record names
    several recipients, as an SES bounce can, the events get ``<id>:<position>`` in the
    record's order.

    ``bounce_kind`` is set only for ``bounced``: ``hard`` when the address cannot receive
    mail, ``soft`` for a block or temporary failure that the provider gave up on, None when
    the provider does not say. ``machine_hint`` is the provider's own flag that an open came
    from a machine or privacy proxy (SendGrid ``sg_machine_open``), None where the provider
    has no such flag. ``message_id_header`` is the RFC 5322 Message-ID with angle brackets.
    """

    provider: Provider
    event_id: str
    type: EventType
    occurred_at: datetime
    # The provider's own name for the event, such as "spamreport" or "email.bounced".
    provider_event_type: str
    provider_message_id: str | None = None
    message_id_header: str | None = None
    # Fields that can hold personal data or tokens stay out of repr(), which ends up in logs.
    recipient: str | None = field(default=None, repr=False)
    bounce_kind: BounceKind | None = None
    reason: str | None = field(default=None, repr=False)
    url: str | None = field(default=None, repr=False)
    user_agent: str | None = field(default=None, repr=False)
    ip: str | None = field(default=None, repr=False)
    machine_hint: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)


# Reading fields


def _invalid(provider: str, path: str, problem: str) -> WebhookRejected:
    return WebhookRejected(
        "payload_invalid",
        f"The {provider} payload field {path} {problem}; check that the webhook URL is "
        "configured for this provider's event webhook.",
    )


def _object(value: object, provider: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(provider, path, "is missing or not an object")
    return value


def _text(record: Mapping[str, Any], key: str, provider: str, path: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(provider, path, "is missing or not text")
    return value.strip()


def _optional_text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _unix_time(value: object, provider: str, path: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(provider, path, "is missing or not a Unix time")
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise _invalid(provider, path, "is not a Unix time") from exc


def _iso_time(value: object, provider: str, path: str) -> datetime:
    """Parse an ISO 8601 time; one without an offset is read as UTC."""
    if not isinstance(value, str):
        raise _invalid(provider, path, "is missing or not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _invalid(provider, path, "is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _address(value: object) -> str | None:
    """Return the bare address of ``Name <address>`` or ``address``."""
    if not isinstance(value, str):
        return None
    _name, address = parseaddr(value)
    return address or None


def _message_id_header(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    inner = value.strip().removeprefix("<").removesuffix(">").strip()
    return f"<{inner}>" if inner else None


def _header_from_list(headers: object, name: str) -> str | None:
    """Find a header in a ``[{"name": ..., "value": ...}]`` list, as SES and Resend send."""
    if not isinstance(headers, list):
        return None
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == name.lower():
            return _optional_text(header.get("value"))
    return None


def _with_positions(events: list[ProviderEvent]) -> list[ProviderEvent]:
    """Give each event of a record that named several recipients its own event id."""
    if len(events) < 2:
        return events
    return [
        dataclasses.replace(event, event_id=f"{event.event_id}:{position}")
        for position, event in enumerate(events)
    ]


# SendGrid

_SENDGRID_TYPES = {
    "processed": EventType.QUEUED,
    "dropped": EventType.REJECTED,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "bounce": EventType.BOUNCED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
}

# Events caused by the recipient's client, whose ip and useragent fields describe it.
_SENDGRID_CLIENT_EVENTS = ("open", "click", "unsubscribe", "group_unsubscribe")


def parse_sendgrid(body: JsonBody) -> list[ProviderEvent]:
    """Parse a SendGrid Event Webhook body, a JSON array of event records.

    A bounce of ``type`` ``blocked`` is a soft bounce and any other bounce is hard.
    ``provider_message_id`` is ``sg_message_id``; the X-Message-Id that the send API returned
    is its first part, before ``.filter``.
    """
    records = load_json_body(body, "SendGrid")
    if not isinstance(records, list):
        raise _invalid("SendGrid", "(body)", "is not a JSON array of events")
    events: list[ProviderEvent] = []
    for index, item in enumerate(records):
        path = f"[{index}]"
        record = _object(item, "SendGrid", path)
        name = _text(record, "event", "SendGrid", f"{path}.event")
        event_type = _SENDGRID_TYPES.get(name)
        if event_type is None:
            continue
        bounce_kind: BounceKind | None = None
        reason: str | None = None
        if name == "bounce":
            bounce_kind = "soft" if record.get("type") == "blocked" else "hard"
            reason = _optional_text(record.get("reason"))
        elif name == "dropped":
            reason = _optional_text(record.get("reason"))
        elif name == "deferred":
            reason = _optional_text(record.get("response")) or _optional_text(record.get("reason"))
        machine_open = record.get("sg_machine_open")
        events.append(
            ProviderEvent(
                provider=Provider.SENDGRID,
                event_id=_text(record, "sg_event_id", "SendGrid", f"{path}.sg_event_id"),
                type=event_type,
                occurred_at=_unix_time(record.get("timestamp"), "SendGrid", f"{path}.timestamp"),
                provider_event_type=name,
                provider_message_id=_optional_text(record.get("sg_message_id")),
                message_id_header=_message_id_header(record.get("smtp-id")),
                recipient=_address(record.get("email")),
                bounce_kind=bounce_kind,
                reason=reason,
                url=_optional_text(record.get("url")) if name == "click" else None,
                user_agent=_optional_text(record.get("useragent")),
                # The ip of other events, such as delivered, is SendGrid's sending address.
                ip=_optional_text(record.get("ip")) if name in _SENDGRID_CLIENT_EVENTS else None,
                machine_hint=machine_open if isinstance(machine_open, bool) else None,
                raw=record,
            )
        )
    return events


# Mailgun

_MAILGUN_TYPES = {
    "accepted": EventType.QUEUED,
    "delivered": EventType.DELIVERED,
    "failed": EventType.BOUNCED,  # refined by severity and reason below
    "rejected": EventType.REJECTED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
    "unsubscribed": EventType.UNSUBSCRIBED,
    "complained": EventType.COMPLAINED,
}


def parse_mailgun(body: JsonBody) -> list[ProviderEvent]:
    """Parse a Mailgun webhook body: the ``signature`` object and one ``event-data`` record.

    A ``failed`` event with severity ``temporary`` is ``deferred``. With severity
    ``permanent`` it is ``rejected`` when the reason starts with ``suppress-`` (Mailgun did
    not try, as the address is on a suppression list) and a hard ``bounced`` otherwise.
    ``provider_message_id`` is the Message-ID without brackets, which is the id that Mailgun's
    send API returns.
    """
    payload = _object(load_json_body(body, "Mailgun"), "Mailgun", "(body)")
    record = _object(payload.get("event-data"), "Mailgun", "event-data")
    name = _text(record, "event", "Mailgun", "event-data.event")
    event_type = _MAILGUN_TYPES.get(name)
    if event_type is None:
        return []
    status = record.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    bounce_kind: BounceKind | None = None
    reason: str | None = None
    if name == "failed":
        severity = record.get("severity")
        failure_reason = _optional_text(record.get("reason")) or ""
        reason = (
            _optional_text(status.get("description"))
            or _optional_text(status.get("message"))
            or failure_reason
            or None
        )
        if severity == "temporary":
            event_type = EventType.DEFERRED
        elif severity == "permanent":
            if failure_reason.startswith("suppress-"):
                event_type = EventType.REJECTED
            else:
                bounce_kind = "hard"
        else:
            raise _invalid("Mailgun", "event-data.severity", "is not permanent or temporary")
    elif name == "rejected":
        reject = record.get("reject")
        reason = _optional_text(reject.get("reason")) if isinstance(reject, dict) else None

    message = record.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = _optional_text(headers.get("message-id")) if isinstance(headers, dict) else None
    client_info = record.get("client-info")
    user_agent = (
        _optional_text(client_info.get("user-agent")) if isinstance(client_info, dict) else None
    )
    return [
        ProviderEvent(
            provider=Provider.MAILGUN,
            event_id=_text(record, "id", "Mailgun", "event-data.id"),
            type=event_type,
            occurred_at=_unix_time(record.get("timestamp"), "Mailgun", "event-data.timestamp"),
            provider_event_type=name,
            provider_message_id=message_id.strip("<>") if message_id else None,
            message_id_header=_message_id_header(message_id),
            recipient=_address(record.get("recipient")),
            bounce_kind=bounce_kind,
            reason=reason,
            url=_optional_text(record.get("url")) if name == "clicked" else None,
            user_agent=user_agent,
            ip=_optional_text(record.get("ip")),
            raw=record,
        )
    ]


# Resend

_RESEND_TYPES = {
    "email.scheduled": EventType.QUEUED,
    "email.sent": EventType.SENT,
    "email.delivered": EventType.DELIVERED,
    "email.delivery_delayed": EventType.DEFERRED,
    "email.bounced": EventType.BOUNCED,
    "email.complained": EventType.COMPLAINED,
    "email.opened": EventType.OPENED,
    "email.clicked": EventType.CLICKED,
    "email.failed": EventType.FAILED,
}
_RESEND_BOUNCE_KINDS: dict[str, BounceKind | None] = {
    "Permanent": "hard",
    "Transient": "soft",
    "Undetermined": None,
}


def parse_resend(body: JsonBody, *, svix_id: str) -> list[ProviderEvent]:
    """Parse a Resend webhook body; ``svix_id`` is the delivery's ``svix-id`` header.

    Resend sends one event per email, so ``recipient`` is the first ``to`` address.
    ``email.bounced`` means a permanent rejection, so a bounce without ``bounce.type`` is
    hard. ``occurred_at`` is the click's own timestamp for clicks and the event's
    ``created_at`` otherwise.
    """
    if not svix_id:
        raise ValueError("svix_id must be the svix-id header of the delivery")
    payload = _object(load_json_body(body, "Resend"), "Resend", "(body)")
    name = _text(payload, "type", "Resend", "type")
    event_type = _RESEND_TYPES.get(name)
    if event_type is None:
        return []
    data = _object(payload.get("data"), "Resend", "data")
    occurred_at = _iso_time(payload.get("created_at"), "Resend", "created_at")
    recipients = data.get("to")
    first_recipient = recipients[0] if isinstance(recipients, list) and recipients else recipients

    bounce_kind: BounceKind | None = None
    reason: str | None = None
    url = user_agent = ip = None
    if name == "email.bounced":
        bounce = data.get("bounce")
        bounce = bounce if isinstance(bounce, dict) else {}
        bounce_kind = _RESEND_BOUNCE_KINDS.get(str(bounce.get("type")), "hard")
        reason = _optional_text(bounce.get("message"))
    elif name == "email.failed":
        failed = data.get("failed")
        reason = _optional_text(failed.get("reason")) if isinstance(failed, dict) else None
    elif name == "email.clicked":
        click = _object(data.get("click"), "Resend", "data.click")
        url = _text(click, "link", "Resend", "data.click.link")
        user_agent = _optional_text(click.get("userAgent"))
        ip = _optional_text(click.get("ipAddress"))
        if click.get("timestamp") is not None:
            occurred_at = _iso_time(click.get("timestamp"), "Resend", "data.click.timestamp")
    return [
        ProviderEvent(
            provider=Provider.RESEND,
            event_id=svix_id,
            type=event_type,
            occurred_at=occurred_at,
            provider_event_type=name,
            provider_message_id=_text(data, "email_id", "Resend", "data.email_id"),
            message_id_header=_message_id_header(
                _header_from_list(data.get("headers"), "Message-ID")
            ),
            recipient=_address(first_recipient),
            bounce_kind=bounce_kind,
            reason=reason,
            url=url,
            user_agent=user_agent,
            ip=ip,
            raw=payload,
        )
    ]


# Amazon SES through SNS

_SES_TYPES = {
    "Send": EventType.SENT,
    "Delivery": EventType.DELIVERED,
    "Bounce": EventType.BOUNCED,
    "Complaint": EventType.COMPLAINED,
    "Reject": EventType.REJECTED,
    "Open": EventType.OPENED,
    "Click": EventType.CLICKED,
    "DeliveryDelay": EventType.DEFERRED,
    # SES names the event "Rendering Failure" with a space; the other spelling is accepted.
    "Rendering Failure": EventType.FAILED,
    "RenderingFailure": EventType.FAILED,
    "Subscription": EventType.UNSUBSCRIBED,
}
_SES_BOUNCE_KINDS: dict[str, BounceKind | None] = {
    "Permanent": "hard",
    "Transient": "soft",
    "Undetermined": None,
}


@dataclass(frozen=True, slots=True)
class _SesRecipient:
    """One recipient of an SES record, with the reason that applies to that recipient only."""

    address: str | None
    reason: str | None = None


def parse_ses_sns(message: JsonBody) -> list[ProviderEvent]:
    """Parse an SNS message that carries an SES event.

    Both SES formats are read: event publishing (``eventType``) and the older notifications
    (``notificationType``). Only ``Notification`` messages carry events; subscription confirmations return no
    events. Bounce, Complaint, Delivery and DeliveryDelay yield one event per listed
    recipient. Open and Click name a recipient only when the message had a single one.
    ``occurred_at`` is the event's own timestamp, else the mail's, else the SNS Timestamp.
    """
    envelope = _object(load_json_body(message, "Amazon SNS"), "Amazon SNS", "(body)")
    if _text(envelope, "Type", "Amazon SNS", "Type") != "Notification":
        return []
    sns_id = _text(envelope, "MessageId", "Amazon SNS", "MessageId")
    try:
        record = json.loads(_text(envelope, "Message", "Amazon SNS", "Message"))
    except ValueError as exc:
        raise _invalid("Amazon SNS", "Message", "is not an SES event in JSON") from exc
    record = _object(record, "Amazon SNS", "Message")
    name = _optional_text(record.get("eventType")) or _optional_text(record.get("notificationType"))
    if name is None:
        raise _invalid("Amazon SES", "Message.eventType", "is missing")
    event_type = _SES_TYPES.get(name)
    if event_type is None:
        return []

    mail = _object(record.get("mail"), "Amazon SES", "Message.mail")
    ses_message_id = _text(mail, "messageId", "Amazon SES", "Message.mail.messageId")
    destination = [address for address in mail.get("destination") or [] if isinstance(address, str)]
    detail_key = _SES_DETAIL_KEYS[name]
    detail = record.get(detail_key)
    detail = detail if isinstance(detail, dict) else {}
    if name in ("Bounce", "Complaint", "Delivery", "DeliveryDelay", "Click") and not detail:
        raise _invalid("Amazon SES", f"Message.{detail_key}", "is missing or not an object")

    occurred_at = _ses_time(detail, detail_key, mail, envelope)
    recipients, shared = _ses_recipients(name, detail, destination)
    if recipients is None:
        return []
    common_headers = mail.get("commonHeaders")
    header_id = (
        common_headers.get("messageId") if isinstance(common_headers, dict) else None
    ) or _header_from_list(mail.get("headers"), "Message-ID")
    events = [
        ProviderEvent(
            provider=Provider.SES,
            event_id=sns_id,
            type=event_type,
            occurred_at=occurred_at,
            provider_event_type=name,
            provider_message_id=ses_message_id,
            message_id_header=_message_id_header(header_id),
            recipient=_address(recipient.address),
            reason=recipient.reason or shared.get("reason"),
            bounce_kind=shared.get("bounce_kind"),
            url=shared.get("url"),
            user_agent=shared.get("user_agent"),
            ip=shared.get("ip"),
            raw=record,
        )
        for recipient in recipients
    ]
    return _with_positions(events)


_SES_DETAIL_KEYS = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "DeliveryDelay": "deliveryDelay",
    "Rendering Failure": "failure",
    "RenderingFailure": "failure",
    "Subscription": "subscription",
}


def _ses_time(
    detail: Mapping[str, Any],
    detail_key: str,
    mail: Mapping[str, Any],
    envelope: Mapping[str, Any],
) -> datetime:
    if detail.get("timestamp") is not None:
        return _iso_time(detail["timestamp"], "Amazon SES", f"Message.{detail_key}.timestamp")
    if mail.get("timestamp") is not None:
        return _iso_time(mail["timestamp"], "Amazon SES", "Message.mail.timestamp")
    return _iso_time(envelope.get("Timestamp"), "Amazon SNS", "Timestamp")


def _listed_recipients(detail: Mapping[str, Any], key: str, name: str) -> list[_SesRecipient]:
    listed = detail.get(key)
    if not isinstance(listed, list) or not listed:
        raise _invalid("Amazon SES", f"Message.{name}.{key}", "is missing or empty")
    recipients = []
    for entry in listed:
        if isinstance(entry, str):
            recipients.append(_SesRecipient(entry))
        elif isinstance(entry, dict):
            recipients.append(
                _SesRecipient(
                    _optional_text(entry.get("emailAddress")),
                    _optional_text(entry.get("diagnosticCode")),
                )
            )
    return recipients


def _ses_recipients(
    name: str, detail: Mapping[str, Any], destination: list[str]
) -> tuple[list[_SesRecipient] | None, dict[str, Any]]:
    """Return the recipients of an SES record and the fields they share.

    Returns None for the recipients when the record is not an event of the vocabulary, as
    for a Subscription change that keeps the recipient subscribed.
    """
    everyone = [_SesRecipient(address) for address in destination] or [_SesRecipient(None)]
    single = [_SesRecipient(destination[0] if len(destination) == 1 else None)]
    if name == "Bounce":
        bounce_type = str(detail.get("bounceType"))
        sub_type = _optional_text(detail.get("bounceSubType"))
        shared = {
            "bounce_kind": _SES_BOUNCE_KINDS.get(bounce_type),
            "reason": f"{bounce_type}: {sub_type}" if sub_type else bounce_type,
        }
        return _listed_recipients(detail, "bouncedRecipients", "bounce"), shared
    if name == "Complaint":
        feedback = _optional_text(detail.get("complaintFeedbackType")) or _optional_text(
            detail.get("complaintSubType")
        )
        return _listed_recipients(detail, "complainedRecipients", "complaint"), {"reason": feedback}
    if name == "Delivery":
        return _listed_recipients(detail, "recipients", "delivery"), {}
    if name == "DeliveryDelay":
        return _listed_recipients(detail, "delayedRecipients", "deliveryDelay"), {
            "reason": _optional_text(detail.get("delayType"))
        }
    if name == "Reject":
        return everyone, {"reason": _optional_text(detail.get("reason"))}
    if name in ("Rendering Failure", "RenderingFailure"):
        return everyone, {"reason": _optional_text(detail.get("errorMessage"))}
    if name in ("Open", "Click"):
        shared = {
            "user_agent": _optional_text(detail.get("userAgent")),
            "ip": _optional_text(detail.get("ipAddress")),
        }
        if name == "Click":
            shared["url"] = _text(detail, "link", "Amazon SES", "Message.click.link")
        return single, shared
    if name == "Subscription":
        preferences = detail.get("newTopicPreferences")
        if isinstance(preferences, dict) and preferences.get("unsubscribeAll") is True:
            return single, {"reason": _optional_text(detail.get("source"))}
        return None, {}
    return everyone, {}  # Send


# Postmark

# Postmark bounce TypeCodes as listed by the BounceTypeCode enum of Postmark's Node.js client
# (postmark 4.0.2), each with its event type and bounce kind. None as the event type means
# that the record is not a delivery event, and codes not listed are bounces of unknown kind.
_POSTMARK_BOUNCES: dict[int, tuple[EventType | None, BounceKind | None]] = {
    1: (EventType.BOUNCED, "hard"),  # HardBounce
    2: (EventType.BOUNCED, "soft"),  # Transient
    16: (EventType.UNSUBSCRIBED, None),  # Unsubscribe
    32: (None, None),  # Subscribe
    64: (None, None),  # AutoResponder
    128: (None, None),  # AddressChange
    256: (EventType.BOUNCED, "soft"),  # DnsError
    512: (EventType.BOUNCED, "soft"),  # SpamNotification
    1024: (None, None),  # OpenRelayTest
    2048: (EventType.BOUNCED, None),  # Unknown
    4096: (EventType.BOUNCED, "soft"),  # SoftBounce
    8192: (EventType.BOUNCED, "soft"),  # VirusNotification
    16384: (None, None),  # ChallengeVerification
    100000: (EventType.BOUNCED, "hard"),  # BadEmailAddress
    100001: (EventType.COMPLAINED, None),  # SpamComplaint
    100002: (EventType.REJECTED, None),  # ManuallyDeactivated
    100003: (EventType.REJECTED, None),  # Unconfirmed
    100006: (EventType.BOUNCED, "soft"),  # Blocked
    100007: (EventType.FAILED, None),  # SMTPApiError
    100008: (None, None),  # InboundError
    100009: (EventType.BOUNCED, "soft"),  # DMARCPolicy
    100010: (EventType.FAILED, None),  # TemplateRenderingFailed
}


def postmark_event_id(record: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of the record as JSON with sorted keys and no spaces."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_postmark(body: JsonBody) -> list[ProviderEvent]:
    """Parse a Postmark webhook body, one record with a ``RecordType``.

    Bounce records map by ``TypeCode`` (``Type`` is the code's name). A SubscriptionChange
    that suppresses sending is ``unsubscribed``; one that lifts the suppression is skipped.
    """
    record = _object(load_json_body(body, "Postmark"), "Postmark", "(body)")
    record_type = _text(record, "RecordType", "Postmark", "RecordType")
    event_type: EventType | None
    bounce_kind: BounceKind | None = None
    reason: str | None = None
    recipient_key = "Recipient"
    if record_type == "Delivery":
        event_type, time_key = EventType.DELIVERED, "DeliveredAt"
    elif record_type in ("Bounce", "SpamComplaint"):
        time_key, recipient_key = "BouncedAt", "Email"
        code = record.get("TypeCode")
        if record_type == "SpamComplaint":
            event_type = EventType.COMPLAINED
        elif isinstance(code, int) and not isinstance(code, bool):
            event_type, bounce_kind = _POSTMARK_BOUNCES.get(code, (EventType.BOUNCED, None))
        else:
            raise _invalid("Postmark", "TypeCode", "is missing or not an integer")
        reason = _optional_text(record.get("Details")) or _optional_text(record.get("Description"))
    elif record_type in ("Open", "Click"):
        event_type = EventType.OPENED if record_type == "Open" else EventType.CLICKED
        time_key = "ReceivedAt"
    elif record_type == "SubscriptionChange":
        time_key = "ChangedAt"
        event_type = EventType.UNSUBSCRIBED if record.get("SuppressSending") is True else None
        reason = _optional_text(record.get("SuppressionReason"))
    else:
        return []
    if event_type is None:
        return []

    geo = record.get("Geo")
    return [
        ProviderEvent(
            provider=Provider.POSTMARK,
            event_id=postmark_event_id(record),
            type=event_type,
            occurred_at=_iso_time(record.get(time_key), "Postmark", time_key),
            provider_event_type=record_type,
            provider_message_id=_optional_text(record.get("MessageID")),
            recipient=_address(_text(record, recipient_key, "Postmark", recipient_key)),
            bounce_kind=bounce_kind if event_type == EventType.BOUNCED else None,
            reason=reason,
            url=_optional_text(record.get("OriginalLink")) if record_type == "Click" else None,
            user_agent=_optional_text(record.get("UserAgent")),
            ip=_optional_text(geo.get("IP")) if isinstance(geo, dict) else None,
            raw=record,
        )
    ]
