"""MIME building: structure, encoded file names and header values that round-trip exactly."""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import pickle
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.email.mime import (
    LINE_BREAKS,
    Attachment,
    OutgoingEmail,
    build_mime,
    format_address,
    parse_address,
)
from frontdesk.email.models import EmailMessage as StoredEmail
from frontdesk.email.transports import PermanentDeliveryError
from frontdesk.email.transports import build_mime as build_stored_mime

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def make_email(**overrides: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "from_address": '"Studio Nine" <hello@studio.example>',
        "to": ["Camille Martin <camille@example.org>"],
        "subject": "Your booking",
        "text": "Hello Camille,\nsee you on Monday.",
        "html": "<p>Hello Camille,</p><p>see you on Monday.</p>",
        "message_id": "<booking-42@studio.example>",
        "idempotency_key": "email-42",
    }
    values.update(overrides)
    return OutgoingEmail(**values)


def parse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_lines(data: bytes) -> list[bytes]:
    """The top-level header lines, unfolded, as they are on the wire."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n")


def text_content(part: EmailMessage) -> str:
    """The decoded text with the wire's CRLF line ends turned back into LF."""
    content: str = part.get_content()
    return content.replace("\r\n", "\n")


def structure(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


def test_text_and_html_only() -> None:
    parsed = parse(build_mime(make_email()))

    assert structure(parsed) == ["multipart/alternative", "text/plain", "text/html"]
    text_part, html_part = parsed.get_payload()
    assert text_content(text_part) == "Hello Camille,\nsee you on Monday.\n"
    assert text_content(html_part) == "<p>Hello Camille,</p><p>see you on Monday.</p>\n"
    assert text_part["Content-Transfer-Encoding"] == "quoted-printable"


def test_text_without_html() -> None:
    parsed = parse(build_mime(make_email(html="")))

    assert structure(parsed) == ["text/plain"]
    assert text_content(parsed) == "Hello Camille,\nsee you on Monday.\n"


def test_regular_attachment_adds_mixed() -> None:
    report = Attachment("report.pdf", "application/pdf", b"%PDF-1.7 data")
    parsed = parse(build_mime(make_email(attachments=[report])))

    assert structure(parsed) == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    part = parsed.get_payload()[1]
    assert part.get_content_disposition() == "attachment"
    assert part.get_filename() == "report.pdf"
    assert part.get_param("name") == "report.pdf"
    assert part.get_content() == b"%PDF-1.7 data"
    assert part["Content-ID"] is None


def test_inline_image_adds_related() -> None:
    logo = Attachment("logo.png", "image/png", PNG, content_id="logo@studio.example")
    html = '<p><img src="cid:logo@studio.example"></p>'
    parsed = parse(build_mime(make_email(html=html, attachments=[logo])))

    assert structure(parsed) == [
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
    ]
    assert parsed.get_param("type") == "multipart/alternative"
    image = parsed.get_payload()[1]
    assert image["Content-ID"] == "<logo@studio.example>"
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "logo.png"
    assert image.get_content() == PNG


def test_inline_and_regular_nest_in_order() -> None:
    logo = Attachment("logo.png", "image/png", PNG, content_id="logo")
    report = Attachment("report.pdf", "application/pdf", b"%PDF")
    parsed = parse(build_mime(make_email(attachments=[report, logo])))

    assert structure(parsed) == [
        "multipart/mixed",
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    related, attachment = parsed.get_payload()
    assert related.get_payload()[1]["Content-ID"] == "<logo>"
    assert attachment.get_filename() == "report.pdf"


def test_corpus_file_bytes_survive() -> None:
    data = (CORPUS / "cpython" / "msg_02.txt").read_bytes()
    attachment = Attachment("msg_02.txt", "text/plain", data)
    parsed = parse(build_mime(make_email(attachments=[attachment])))

    part = parsed.get_payload()[1]
    assert part.get_payload(decode=True) == data


@pytest.mark.parametrize(
    "filename",
    [
        "R\u00e9sum\u00e9 \u2013 \u65e5\u672c.pdf",
        "日本語のファイル名はとても長いので何行かに分けて書かれるはずのファイルです.pdf",
        'quote " and semicolon; name.pdf',
        "=?utf-8?q?looks_encoded?=.pdf",
        "back\\slash.txt",
        "a" * 150 + ".txt",
        "emoji 📎 file.txt",
    ],
)
def test_filename_round_trip(filename: str) -> None:
    attachment = Attachment(filename, "application/octet-stream", b"data")
    message = build_mime(make_email(attachments=[attachment]))
    data = message.as_bytes()

    parsed = email.message_from_bytes(data, policy=email.policy.default)
    part = next(iter(parsed.iter_attachments()))
    assert part.get_filename() == filename
    assert part.get_param("name") == filename
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert data.isascii()


def test_non_ascii_filename_uses_rfc2231() -> None:
    attachment = Attachment("Résumé.pdf", "application/pdf", b"%PDF")
    data = build_mime(make_email(attachments=[attachment])).as_bytes()

    assert b"filename*=utf-8''R%C3%A9sum%C3%A9.pdf" in data
    assert b"name*=utf-8''R%C3%A9sum%C3%A9.pdf" in data


def test_headers_in_order_with_values() -> None:
    headers = {
        "Date": "Mon, 07 Dec 2026 09:30:00 +0000",
        "In-Reply-To": "<enquiry-7@mail.example.org>",
        "References": "<enquiry-6@mail.example.org> <enquiry-7@mail.example.org>",
        "Auto-Submitted": "auto-replied",
        "List-Unsubscribe": "<https://studio.example/unsubscribe/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Frontdesk-Workspace": "studio-nine",
    }
    message = build_mime(
        make_email(
            cc=["Léa <lea@example.org>"],
            reply_to='"Front desk" <desk@studio.example>',
            headers=headers,
        )
    )
    parsed = parse(message)

    names = [line.split(b":", 1)[0].decode() for line in header_lines(message.as_bytes())]
    assert names == [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Message-ID",
        *headers,
        "MIME-Version",
        "Content-Type",
    ]
    assert parsed["From"].addresses[0].display_name == "Studio Nine"
    assert parsed["From"].addresses[0].addr_spec == "hello@studio.example"
    assert parsed["Cc"].addresses[0].display_name == "Léa"
    assert parsed["Reply-To"].addresses[0].addr_spec == "desk@studio.example"
    assert parsed["Message-ID"] == "<booking-42@studio.example>"
    for name, value in headers.items():
        assert parsed[name] == value


def test_message_survives_pickle_and_deepcopy() -> None:
    logo = Attachment("logo.png", "image/png", PNG, content_id="logo")
    message = build_mime(make_email(subject="Caf\u00e9 booking", attachments=[logo]))
    data = message.as_bytes()

    assert pickle.loads(pickle.dumps(message)).as_bytes() == data
    assert copy.deepcopy(message).as_bytes() == data


def test_date_added_when_missing() -> None:
    now = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
    parsed = parse(build_mime(make_email(), now=now))

    assert parsed["Date"].datetime == now


@pytest.mark.parametrize(
    ("display_name", "wire"),
    [
        ("Doe, Jane", b'"Doe, Jane" <jane@example.org>'),
        ('Jane "JD" Doe', b'"Jane \\"JD\\" Doe" <jane@example.org>'),
        (
            "Zoë Ça, <x@y.example>",
            b"=?utf-8?b?Wm/DqyDDh2EsIDx4QHkuZXhhbXBsZT4=?= <jane@example.org>",
        ),
    ],
)
def test_display_name_encoding(display_name: str, wire: bytes) -> None:
    sender = format_address(display_name, "jane@example.org")
    message = build_mime(make_email(from_address=sender))

    assert b"From: " + wire in message.as_bytes()
    parsed = parse(message)
    assert len(parsed["From"].addresses) == 1
    assert parsed["From"].addresses[0].display_name == display_name


def test_formataddr_input_is_decoded() -> None:
    sender = email.utils.formataddr(("Zoë", "zoe@example.org"))

    assert parse_address(sender).display_name == "Zoë"


def test_idn_domain_becomes_ascii() -> None:
    assert parse_address("Chloé <chloe@exämple.org>").address == "chloe@xn--exmple-cua.org"


def test_private_sender_host_accepted() -> None:
    message = build_mime(make_email(from_address="Frontdesk <frontdesk@LocalHost>"))

    assert parse(message)["From"].addresses[0].addr_spec == "frontdesk@localhost"


def test_private_recipient_host_rejected() -> None:
    with pytest.raises(PermanentDeliveryError, match="invalid To address"):
        build_mime(make_email(to=["someone@mail.localhost"]))


@pytest.mark.parametrize(
    "sender", ["frontdesk@-bad.local", "frontdesk@bad..local", "front desk@localhost", "@localhost"]
)
def test_invalid_private_sender_rejected(sender: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="invalid From address"):
        build_mime(make_email(from_address=sender))


@pytest.mark.parametrize("line_break", sorted(LINE_BREAKS))
def test_line_break_in_subject_raises(line_break: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="line break"):
        build_mime(make_email(subject=f"Hello{line_break}Bcc: victim@example.org"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"from_address": '"Studio\r\nBcc: x@example.org" <hello@studio.example>'},
        {"to": ["camille@example.org\nBcc: x@example.org"]},
        {"reply_to": "desk@studio.example\r\n"},
        {"headers": {"X-Note": "a\r\nBcc: x@example.org"}},
        {"headers": {"List-Unsubscribe": "<https://x.example>\n"}},
        {"attachments": [Attachment("a\r\n.pdf", "application/pdf", b"")]},
        {"attachments": [Attachment("a.png", "image/png", b"", content_id="a\nb")]},
        {"message_id": "<a@b>\r\nBcc: x@example.org"},
    ],
)
def test_line_break_in_any_header_raises(overrides: dict[str, Any]) -> None:
    with pytest.raises(PermanentDeliveryError, match="line break"):
        build_mime(make_email(**overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"to": []}, "no To recipient"),
        ({"to": ["not an address"]}, "invalid To address"),
        ({"from_address": "Studio <hello@>"}, "invalid From address"),
        ({"headers": {"Bcc": "x@example.org"}}, "not allowed"),
        ({"headers": {"Content-Type": "text/plain"}}, "not allowed"),
        ({"headers": {"Date": "yesterday"}}, "Date"),
        ({"headers": {"References": "not-an-id"}}, "References"),
        ({"headers": {"Message-ID": "<other@studio.example>"}}, "differs"),
        ({"headers": {"X-Note": "a", "x-note": "b"}}, "set twice"),
        ({"headers": {"List-Unsubscribe": "<https://exämple.org>"}}, "printable ASCII"),
        ({"message_id": "booking-42"}, "Message-ID"),
        ({"attachments": [Attachment("a.pdf", "pdf", b"")]}, "type/subtype"),
        ({"attachments": [Attachment("a.eml", "multipart/mixed", b"")]}, "multipart"),
        ({"attachments": [Attachment("  ", "application/pdf", b"")]}, "empty"),
        ({"attachments": [Attachment("a.png", "image/png", b"", content_id="a b")]}, "atext"),
        ({"subject": "null \x00 byte"}, "control character"),
    ],
)
def test_invalid_input_raises(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentDeliveryError, match=message):
        build_mime(make_email(**overrides))


# Any Unicode text except surrogates. Python strings from JSON or a database can contain
# them, but UTF-8 cannot encode them, so they have their own test below.
header_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def expected_or_raises(build: Any) -> tuple[EmailMessage, bytes] | None:
    try:
        message = build()
    except PermanentDeliveryError:
        return None
    return message, message.as_bytes()


def assert_only_expected_headers(data: bytes, expected: list[str]) -> None:
    names = [line.split(b":", 1)[0].decode() for line in header_lines(data)]
    assert names == expected
    assert data.isascii()


BASE_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]


def has_forbidden(value: str) -> bool:
    return (
        any(
            character in LINE_BREAKS or (ord(character) < 0x20 and character != "\t")
            for character in value
        )
        or "\x7f" in value
    )


@PROPERTY_SETTINGS
@given(subject=header_text)
def test_subject_round_trips(subject: str) -> None:
    built = expected_or_raises(lambda: build_mime(make_email(subject=subject)))
    if built is None:
        assert has_forbidden(subject)
        return
    _, data = built

    assert_only_expected_headers(data, BASE_HEADERS)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert str(parsed["Subject"]) == subject.strip()


@PROPERTY_SETTINGS
@given(name=header_text)
def test_display_name_round_trips(name: str) -> None:
    sender = format_address(name, "hello@studio.example")
    built = expected_or_raises(lambda: build_mime(make_email(from_address=sender)))
    if built is None:
        assert has_forbidden(name)
        return
    _, data = built

    assert_only_expected_headers(data, BASE_HEADERS)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    addresses = parsed["From"].addresses
    assert len(addresses) == 1
    assert addresses[0].display_name == re.sub(r"[ \t]+", " ", name.strip())
    assert addresses[0].addr_spec == "hello@studio.example"


@PROPERTY_SETTINGS
@given(value=header_text)
def test_custom_header_round_trips(value: str) -> None:
    built = expected_or_raises(lambda: build_mime(make_email(headers={"X-Note": value})))
    if built is None:
        assert has_forbidden(value)
        return
    _, data = built

    assert_only_expected_headers(data, [*BASE_HEADERS[:5], "X-Note", *BASE_HEADERS[5:]])
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert str(parsed["X-Note"]) == value.strip()


@PROPERTY_SETTINGS
@given(filename=header_text)
def test_filename_property_round_trips(filename: str) -> None:
    attachment = Attachment(filename, "application/octet-stream", b"data")
    built = expected_or_raises(lambda: build_mime(make_email(attachments=[attachment])))
    if built is None:
        assert has_forbidden(filename) or not filename.strip()
        return
    _, data = built

    assert_only_expected_headers(data, BASE_HEADERS)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    parts = list(parsed.iter_attachments())
    assert len(parts) == 1
    expected = filename.strip()
    parsed_filename = expected
    if len(expected) > 1 and expected.startswith("<") and expected.endswith(">"):
        # get_filename() unquotes the value twice, and the second email.utils.unquote also
        # removes a pair of angle brackets, so "<a>" reads as "a" whatever the header contains.
        parsed_filename = expected[1:-1].strip()
    assert parts[0].get_filename() == parsed_filename
    assert parts[0].get_param("name") == expected
    assert parts[0].get_content() == b"data"


@pytest.mark.parametrize("field", ["subject", "filename", "display name"])
def test_surrogate_raises(field: str) -> None:
    value = "broken \udc80 text"
    overrides: dict[str, Any] = {
        "subject": {"subject": value},
        "filename": {"attachments": [Attachment(value, "application/pdf", b"")]},
        "display name": {"from_address": format_address(value, "hello@studio.example")},
    }[field]

    with pytest.raises(PermanentDeliveryError, match="surrogate"):
        build_mime(make_email(**overrides))


def test_stored_message_without_html_is_text_only() -> None:
    stored = StoredEmail(
        to_address="camille@example.org",
        reply_to=None,
        headers={"From": "studio@example.com", "To": "camille@example.org", "Subject": "Hi"},
        text_body="Hello Camille\n",
        html_body="",
    )

    parsed = parse(build_stored_mime(stored))

    assert structure(parsed) == ["text/plain"]
    assert text_content(parsed) == "Hello Camille\n"
