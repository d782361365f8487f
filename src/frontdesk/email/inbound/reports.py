"""Recognise bounces and spam complaints among inbound messages.

Standard reports are read field by field: delivery status notifications (RFC 3464) and
abuse feedback reports (ARF, RFC 5965). Bounces that mail servers write as prose, such as
older Gmail notices, are recognised only when the sender is a mail server account and the
subject or an X-Failed-Recipients header says that delivery failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from frontdesk.email.inbound.decoding import is_address, parse_message_id
from frontdesk.email.inbound.parse import InboundAttachment, ParsedEmail, parse_message

ReportKind = Literal["hard", "soft", "delayed", "complaint"]

_ENCLOSED_TYPES = {"message/rfc822", "message/global", "text/rfc822-headers"}
_SEVERITY: dict[str, int] = {"hard": 3, "soft": 2, "delayed": 1, "complaint": 0}
_MAX_GUESSED_RECIPIENTS = 10

_STATUS_CODE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
# Bounded repeats (RFC 5321 limits a local part to 64 octets and a label to 63) keep the
# scan linear on long runs of letters without an "@".
_ADDRESS_IN_TEXT = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
# Mail servers state the failed recipients in the first lines of their notice.
_MAX_NOTICE_CHARS = 20_000
_BOUNCE_SUBJECT = re.compile(
    r"delivery status notification \((failure|delay)\)|undeliverable|undelivered mail|"
    r"returned mail|mail delivery failed|delivery failure|failure notice|"
    r"delivery has failed|could not be delivered|delivery notification|non remis|"
    r"unzustellbar|nicht zustellbar",
    re.I,
)
_DELAY_WORDS = re.compile(
    r"\bdelay(ed)?\b|still being retried|will be retried|will retry|not yet been delivered",
    re.I,
)
_ORIGINAL_MARKER = re.compile(
    r"^.*(original message|message follows|returned message|undelivered message|"
    r"message headers follow).*$",
    re.I | re.M,
)
_MESSAGE_ID_LINE = re.compile(r"^\s*message-id:\s*(<[^>\s]+>)", re.I | re.M)
_DAEMON_LOCAL_PARTS = {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"}


@dataclass(frozen=True)
class ReportRecipient:
    """One recipient of a report with the reporting server's verdict."""

    address: str
    kind: ReportKind
    action: str | None = None
    status: str | None = None
    diagnostic: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """A bounce or complaint: who is affected, how, and which sent message it concerns.

    ``kind`` is the most severe kind among the recipients (hard, then soft, then delayed).
    ``source`` is ``dsn`` or ``arf`` for standard reports and ``heuristic`` for prose.
    """

    kind: ReportKind
    recipients: list[ReportRecipient]
    original_message_id: str | None
    source: Literal["dsn", "arf", "heuristic"]
    feedback_type: str | None = None

    @property
    def addresses(self) -> list[str]:
        return [recipient.address for recipient in self.recipients]


Fields = dict[str, list[str]]


def parse_fields(data: bytes) -> list[Fields]:
    """Read blocks of ``Name: value`` fields separated by blank lines, unfolding values.

    Names are lower-cased. Lines without a colon are ignored, so broken reports still give
    the fields they have.
    """
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[Fields] = []
    current: Fields = {}
    last_name: str | None = None
    for line in text.split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last_name = {}, None
            continue
        if line[0] in " \t" and last_name is not None:
            current[last_name][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            last_name = None
            continue
        last_name = name.strip().lower()
        current.setdefault(last_name, []).append(value.strip())
    if current:
        blocks.append(current)
    return blocks


def _first(fields: Fields, name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _typed_value(value: str | None) -> str | None:
    """Return the value of a typed DSN field such as ``rfc822; ann@example.com``."""
    if value is None:
        return None
    _, semicolon, rest = value.partition(";")
    result = (rest if semicolon else value).strip().strip("<>").strip()
    return result or None


# Mailbox full (X.2.2, RFC 3463): the address exists and may take mail again later, so it
# is a soft bounce even with a 5 class, and does not suppress the address for good.
_TRANSIENT_DETAILS = frozenset({"2.2"})


def _kind_for(action: str | None, status: str | None) -> ReportKind | None:
    status_class = status[:1] if status else ""
    if action == "delayed":
        return "delayed"
    if action in ("delivered", "relayed", "expanded"):
        return None
    if status and status[2:] in _TRANSIENT_DETAILS:
        return "soft"
    if action == "failed":
        return "soft" if status_class == "4" else "hard"
    if status_class == "5":
        return "hard"
    if status_class == "4":
        return "soft"
    return None


def _worst(recipients: list[ReportRecipient]) -> ReportKind:
    return max((recipient.kind for recipient in recipients), key=lambda kind: _SEVERITY[kind])


def _attachments_of(parsed: ParsedEmail, content_type: str) -> list[InboundAttachment]:
    return [item for item in parsed.attachments if item.content_type == content_type]


def _enclosed_message(parsed: ParsedEmail) -> ParsedEmail | None:
    for attachment in parsed.attachments:
        if attachment.content_type in _ENCLOSED_TYPES and attachment.data.strip():
            return parse_message(attachment.data)
    return None


def _original_message_id(parsed: ParsedEmail, *, body: str = "") -> str | None:
    enclosed = _enclosed_message(parsed)
    if enclosed is not None and enclosed.message_id:
        return enclosed.message_id
    marker = _ORIGINAL_MARKER.search(body)
    if marker is not None:
        found = _MESSAGE_ID_LINE.search(body, marker.end())
        if found is not None:
            return parse_message_id(found.group(1))
    # Exchange and Office 365 set In-Reply-To of a bounce to the bounced message's id.
    return parsed.in_reply_to[0] if parsed.in_reply_to else None


def _from_dsn(parsed: ParsedEmail) -> tuple[list[ReportRecipient], int]:
    """Return the failed recipients and the number of recipient blocks of all DSN parts."""
    recipients: list[ReportRecipient] = []
    blocks = 0
    for attachment in _attachments_of(parsed, "message/delivery-status"):
        for block in parse_fields(attachment.data):
            address = _typed_value(_first(block, "final-recipient")) or _typed_value(
                _first(block, "original-recipient")
            )
            if address is None or not is_address(address):
                continue
            blocks += 1
            action = (_first(block, "action") or "").strip().lower() or None
            status_match = _STATUS_CODE.search(_first(block, "status") or "")
            status = status_match.group(0) if status_match else None
            kind = _kind_for(action, status)
            if kind is None:
                continue
            recipients.append(
                ReportRecipient(
                    address=address,
                    kind=kind,
                    action=action,
                    status=status,
                    diagnostic=_typed_value(_first(block, "diagnostic-code")),
                )
            )
    return recipients, blocks


def _from_arf(parsed: ParsedEmail) -> DeliveryReport | None:
    reports = _attachments_of(parsed, "message/feedback-report")
    if not reports:
        return None
    fields: Fields = {}
    for block in parse_fields(reports[0].data):
        for name, values in block.items():
            fields.setdefault(name, []).extend(values)
    addresses = [
        address
        for value in fields.get("original-rcpt-to", []) + fields.get("removal-recipient", [])
        for address in _ADDRESS_IN_TEXT.findall(value)
    ]
    enclosed = _enclosed_message(parsed)
    if not addresses and enclosed is not None:
        addresses = [address for _, address in enclosed.to]
    feedback_type = (_first(fields, "feedback-type") or "abuse").strip().lower()
    recipients = [
        ReportRecipient(address=address, kind="complaint") for address in dict.fromkeys(addresses)
    ]
    original_id = enclosed.message_id if enclosed is not None else None
    return DeliveryReport(
        kind="complaint",
        recipients=recipients,
        original_message_id=original_id,
        source="arf",
        feedback_type=feedback_type,
    )


def _is_from_mail_server(parsed: ParsedEmail) -> bool:
    if parsed.from_address is None:
        return (parsed.header("Return-Path") or "").replace(" ", "") == "<>"
    return parsed.from_address.rsplit("@", 1)[0].lower() in _DAEMON_LOCAL_PARTS


def _from_prose(parsed: ParsedEmail, *, is_dsn: bool) -> DeliveryReport | None:
    failed_header = " ".join(parsed.header_values("X-Failed-Recipients"))
    looks_like_bounce = _BOUNCE_SUBJECT.search(parsed.subject) is not None or bool(failed_header)
    if not is_dsn and not (_is_from_mail_server(parsed) and looks_like_bounce):
        return None

    text = parsed.text[:_MAX_NOTICE_CHARS]
    marker = _ORIGINAL_MARKER.search(text)
    notice = text[: marker.start()] if marker is not None else text
    addresses = _ADDRESS_IN_TEXT.findall(failed_header)
    if not addresses:
        own = {parsed.from_address or ""} | {address for _, address in parsed.to}
        own_lower = {address.lower() for address in own}
        addresses = [
            address
            for address in _ADDRESS_IN_TEXT.findall(notice)
            if address.lower() not in own_lower
            and address.rsplit("@", 1)[0].lower() not in _DAEMON_LOCAL_PARTS
        ]
    addresses = list(dict.fromkeys(address.strip(".") for address in addresses))
    if not addresses:
        return None

    status_match = _STATUS_CODE.search(notice)
    status = status_match.group(0) if status_match else None
    kind: ReportKind
    if _DELAY_WORDS.search(parsed.subject) or _DELAY_WORDS.search(notice[:2000]):
        kind = "delayed"
    elif status is not None and status.startswith("4"):
        kind = "soft"
    else:
        kind = "hard"
    recipients = [
        ReportRecipient(address=address, kind=kind, status=status)
        for address in addresses[:_MAX_GUESSED_RECIPIENTS]
    ]
    return DeliveryReport(
        kind=kind,
        recipients=recipients,
        original_message_id=_original_message_id(parsed, body=text),
        source="heuristic",
    )


def parse_report(parsed: ParsedEmail) -> DeliveryReport | None:
    """Return the bounce or complaint that ``parsed`` reports, or None for other messages.

    Reports of successful delivery and read receipts return None, because they affect no
    recipient.
    """
    complaint = _from_arf(parsed)
    if complaint is not None:
        return complaint

    is_dsn = bool(_attachments_of(parsed, "message/delivery-status"))
    recipients, recipient_blocks = _from_dsn(parsed)
    if recipients:
        return DeliveryReport(
            kind=_worst(recipients),
            recipients=recipients,
            original_message_id=_original_message_id(parsed),
            source="dsn",
        )
    if recipient_blocks:
        # A well-formed DSN whose recipients were all delivered, relayed or expanded.
        return None
    # Some servers (Gmail among them) send an empty delivery-status part; the notice text
    # and X-Failed-Recipients then carry the verdict.
    return _from_prose(parsed, is_dsn=is_dsn)
