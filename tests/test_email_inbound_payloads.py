"""Provider inbound payloads (Postmark, SendGrid, Mailgun, SES) to ParsedEmail.

Postmark and SendGrid payloads come from the corpus in tests/fixtures/corpus/email-webhooks.
The corpus has no Mailgun or SES inbound sample, so those payloads are built here in the
documented shape around the corpus's sample message.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from frontdesk.email.inbound import (
    InboundPayloadError,
    from_mailgun_route,
    from_postmark_inbound,
    from_sendgrid_inbound,
    from_sns_ses,
    is_automatic,
)

WEBHOOKS = Path(__file__).parent / "fixtures" / "corpus" / "email-webhooks"
SAMPLE_EMAIL = (WEBHOOKS / "anymail" / "sample_email.txt").read_bytes()


def postmark_payload(name: str) -> dict[str, Any]:
    return json.loads((WEBHOOKS / "anymail" / name).read_text(encoding="utf-8"))


def sendgrid_form(
    name: str,
) -> tuple[dict[str, str | bytes], dict[str, tuple[str, str, bytes]]]:
    """Split a stored multipart/form-data body (boundary ``xYzZY``) into fields and files."""
    body = (WEBHOOKS / "sendgrid" / name).read_bytes()
    form = email.message_from_bytes(
        b"Content-Type: multipart/form-data; boundary=xYzZY\r\n\r\n" + body,
        policy=email.policy.compat32,
    )
    fields: dict[str, str | bytes] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    parts = form.get_payload()
    assert isinstance(parts, list)
    for part in parts:
        assert isinstance(part, Message)
        field_name = str(part.get_param("name", header="content-disposition"))
        filename = part.get_param("filename", header="content-disposition")
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        if filename:
            files[field_name] = (str(filename), part.get_content_type(), data)
        else:
            fields[field_name] = data
    return fields, files


# Postmark -----------------------------------------------------------------------------


def test_postmark_json_fields() -> None:
    parsed = from_postmark_inbound(postmark_payload("postmark-inbound-test-payload.json"))

    assert parsed.from_name == "Postmarkapp Support"
    assert parsed.from_address == "support@postmarkapp.com"
    assert parsed.to == [("Firstname Lastname", "mailbox+SampleHash@inbound.postmarkapp.com")]
    assert parsed.cc == [("First Cc", "firstcc@postmarkapp.com"), ("", "secondCc@postmarkapp.com")]
    assert parsed.reply_to == ["replyto@example.com"]
    assert parsed.subject == "Test subject"
    assert parsed.message_id == "00000000-0000-0000-0000-000000000000"
    assert parsed.date is not None
    assert parsed.date.isoformat() == "2023-05-05T17:44:33-04:00"
    assert parsed.text == "This is a test text body."
    assert parsed.html == "<html><body><p>This is a test html body.</p></body></html>"
    assert parsed.header("X-Header-Test") == ""
    [attachment] = parsed.attachments
    assert attachment.filename == "test.txt"
    assert attachment.content_type == "text/plain"
    assert attachment.data == b"This is attachment contents, base-64 encoded."
    assert attachment.size == 45
    assert parsed.content_type == "multipart/mixed"
    assert parsed.part_count == 5


def test_postmark_raw_email_preferred() -> None:
    parsed = from_postmark_inbound(postmark_payload("postmark-inbound-test-payload-with-raw.json"))

    # RawEmail has no Cc, Date or attachment, unlike the JSON fields next to it.
    assert parsed.subject == "Test subject"
    assert parsed.from_address == "support@postmarkapp.com"
    assert parsed.to == [("Firstname Lastname", "mailbox+SampleHash@inbound.postmarkapp.com")]
    assert parsed.cc == []
    assert parsed.date is None
    assert parsed.attachments == []
    assert parsed.text == "This is a test text body."


def test_postmark_message_id_header_wins() -> None:
    payload = postmark_payload("postmark-inbound-test-payload.json")
    payload["Headers"] = [
        {"Name": "Message-ID", "Value": "<real@mail.example.com>"},
        {"Name": "In-Reply-To", "Value": "<ours@frontdesk.example>"},
    ]
    payload["HtmlBody"] = '<p><img src="cid:logo@x"></p>'
    payload["Attachments"] = [
        {
            "Name": "logo.png",
            "Content": base64.b64encode(b"\x89PNG").decode(),
            "ContentType": "image/png",
            "ContentID": "logo@x",
        }
    ]
    parsed = from_postmark_inbound(payload)

    assert parsed.message_id == "real@mail.example.com"
    assert parsed.in_reply_to == ["ours@frontdesk.example"]
    [logo] = parsed.attachments
    assert logo.content_id == "logo@x"
    assert logo.inline is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"FromFull": None, "From": None}, "FromFull"),
        ({"FromFull": "someone"}, "FromFull"),
        ({"Headers": {"Name": "X"}}, "Headers"),
        ({"Headers": [{"Value": "x"}]}, "Headers[0].Name"),
        ({"Subject": 42}, "Subject"),
        ({"Attachments": [{"Name": "a.txt", "Data": "not base64!"}]}, "Attachments[0].Content"),
        ({"Attachments": [{"Name": "a.txt"}]}, "Attachments[0].Content"),
        ({"ToFull": [{"Email": 7}]}, "ToFull[0].Email"),
    ],
)
def test_postmark_malformed_names_field(change: dict[str, Any], field: str) -> None:
    payload = postmark_payload("postmark-inbound-test-payload.json")
    payload.update(change)

    with pytest.raises(InboundPayloadError) as caught:
        from_postmark_inbound(payload)
    assert caught.value.field == field
    assert field in str(caught.value)


# SendGrid -----------------------------------------------------------------------------


def test_sendgrid_parsed_mode() -> None:
    fields, files = sendgrid_form("default_data.txt")
    parsed = from_sendgrid_inbound(fields, files)

    assert parsed.from_name == "Example User"
    assert parsed.from_address == "test@example.com"
    assert parsed.to == [("", "inbound@inbound.example.com")]
    # The subject field wins over the Subject in the headers field.
    assert parsed.subject == "Testing non-raw"
    assert parsed.header("Subject") == "Inbound Parse Test Data"
    assert parsed.date is not None
    assert parsed.date.isoformat() == "2016-08-10T18:10:13-07:00"
    assert parsed.text == "Hello Twilio SendGrid!\n"
    assert parsed.html == "<html><body><strong>Hello Twilio SendGrid!</body></html>\n"
    assert parsed.attachments == []
    assert parsed.defects == []


def test_sendgrid_raw_mode() -> None:
    fields, files = sendgrid_form("raw_data.txt")
    parsed = from_sendgrid_inbound(fields, files)

    assert parsed.subject == "Inbound Parse Test Raw Data"
    assert parsed.from_address == "test@example.com"
    assert parsed.to == [("", "inbound@inbound.inbound.com")]
    assert parsed.text == "Hello Twilio SendGrid!"
    assert parsed.content_type == "multipart/alternative"
    assert parsed.part_count == 3


def test_sendgrid_raw_mode_with_attachment() -> None:
    fields, files = sendgrid_form("raw_data_with_attachments.txt")
    parsed = from_sendgrid_inbound(fields, files)

    assert parsed.subject == "Inbound Parse Test Raw Data with Attachment"
    assert parsed.text == "Hello Twilio SendGrid!"
    [image] = parsed.attachments
    assert image.filename == "SendGrid.jpg"
    assert image.content_type == "image/jpeg"
    assert image.data.startswith(b"\xff\xd8\xff\xe0")
    assert image.data.endswith(b"\xff\xd9")
    assert image.size == 10295


def test_sendgrid_fields_decoded_with_charsets() -> None:
    fields: dict[str, str | bytes] = {
        "from": "René Dupont <rene@example.fr>".encode("iso-8859-1"),
        "to": b"desk@frontdesk.example",
        "subject": "Réservation".encode("iso-8859-1"),
        "text": "Bonjour, à vendredi".encode("iso-8859-1"),
        "charsets": json.dumps(
            {"from": "iso-8859-1", "subject": "iso-8859-1", "text": "iso-8859-1", "to": "UTF-8"}
        ),
        "attachments": "1",
        "attachment-info": json.dumps(
            {"attachment1": {"filename": "plan.pdf", "type": "application/pdf"}}
        ),
        "content-ids": json.dumps({"ii_123": "attachment1"}),
    }
    files = {"attachment1": ("plan.pdf", "application/pdf", b"%PDF-1.4")}
    parsed = from_sendgrid_inbound(fields, files)

    assert parsed.from_name == "René Dupont"
    assert parsed.subject == "Réservation"
    assert parsed.text == "Bonjour, à vendredi"
    [plan] = parsed.attachments
    assert plan.filename == "plan.pdf"
    assert plan.content_id == "ii_123"
    assert plan.data == b"%PDF-1.4"


@pytest.mark.parametrize(
    ("fields", "files", "field"),
    [
        ({"from": "a@example.com", "charsets": "{not json"}, {}, "charsets"),
        ({"from": "a@example.com", "charsets": "[1]"}, {}, "charsets"),
        ({"subject": "no sender"}, {}, "from"),
        ({"from": "a@example.com", "attachments": "two"}, {}, "attachments"),
        ({"from": "a@example.com", "attachments": "1"}, {}, "attachment1"),
        ({"from": "a@example.com", "attachment-info": "{"}, {}, "attachment-info"),
    ],
)
def test_sendgrid_malformed_names_field(
    fields: dict[str, str | bytes], files: dict[str, tuple[str, str, bytes]], field: str
) -> None:
    with pytest.raises(InboundPayloadError) as caught:
        from_sendgrid_inbound(fields, files)
    assert caught.value.field == field


# Mailgun ------------------------------------------------------------------------------


def test_mailgun_body_mime() -> None:
    parsed = from_mailgun_route({"body-mime": SAMPLE_EMAIL.decode("ascii")}, {})

    assert parsed.subject == "Test email"
    assert parsed.from_name == "Someone"
    assert parsed.from_address == "someone@example.com"
    assert parsed.message_id == "20130503182626.18666.16540@example.com"
    assert parsed.text == "Hi Bob, This is a message. Thanks!"
    assert is_automatic(parsed, own_addresses=[]) == "List-Unsubscribe present"


def test_mailgun_parsed_fields() -> None:
    headers = [
        ["From", "Someone <someone@example.com>"],
        ["To", "desk@frontdesk.example"],
        ["Subject", "=?utf-8?q?Caf=C3=A9?="],
        ["Date", "Fri, 03 May 2013 18:26:27 +0000"],
        ["Message-Id", "<20130503182626.18666.16540@example.com>"],
        ["In-Reply-To", "<ours@frontdesk.example>"],
    ]
    fields: dict[str, str | bytes] = {
        "from": "Someone <someone@example.com>",
        "subject": "Café",
        "body-plain": "Hi Bob\n\n> quoted",
        "stripped-text": "Hi Bob",
        "body-html": '<p>Hi Bob <img src="cid:ii_1"></p>',
        "message-headers": json.dumps(headers),
        "attachment-count": "2",
        "content-id-map": json.dumps({"<ii_1>": "attachment-1"}),
    }
    files = {
        "attachment-1": ("photo.jpg", "image/jpeg", b"\xff\xd8jpeg"),
        "attachment-2": ("../notes.txt", "text/plain", b"notes"),
    }
    parsed = from_mailgun_route(fields, files)

    assert parsed.subject == "Café"
    assert parsed.from_address == "someone@example.com"
    assert parsed.to == [("", "desk@frontdesk.example")]
    assert parsed.message_id == "20130503182626.18666.16540@example.com"
    assert parsed.in_reply_to == ["ours@frontdesk.example"]
    assert parsed.date is not None
    assert parsed.text == "Hi Bob\n\n> quoted"
    assert [(item.filename, item.content_id, item.inline) for item in parsed.attachments] == [
        ("photo.jpg", "ii_1", True),
        ("notes.txt", None, False),
    ]


def test_mailgun_stripped_text_fallback() -> None:
    fields: dict[str, str | bytes] = {"from": "a@example.com", "stripped-text": "Short reply"}
    parsed = from_mailgun_route(fields, {})

    assert parsed.text == "Short reply"
    assert parsed.content_type == "text/plain"
    assert parsed.part_count == 1


def test_mailgun_html_only_gets_text() -> None:
    fields: dict[str, str | bytes] = {"from": "a@example.com", "body-html": "<p>Hi <b>Ann</b></p>"}
    parsed = from_mailgun_route(fields, {})

    assert parsed.text == "Hi Ann"
    assert parsed.content_type == "text/html"
    assert parsed.part_count == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": "no sender"}, "from"),
        ({"from": "a@example.com", "message-headers": "{}"}, "message-headers"),
        ({"from": "a@example.com", "message-headers": '[["To"]]'}, "message-headers[0]"),
        ({"from": "a@example.com", "attachment-count": "1"}, "attachment-1"),
        ({"from": "a@example.com", "content-id-map": "oops"}, "content-id-map"),
    ],
)
def test_mailgun_malformed_names_field(fields: dict[str, str | bytes], field: str) -> None:
    with pytest.raises(InboundPayloadError) as caught:
        from_mailgun_route(fields, {})
    assert caught.value.field == field


# Amazon SES through SNS ---------------------------------------------------------------


def ses_notification(content: str | None, *, encoding: str = "BASE64") -> dict[str, Any]:
    message: dict[str, Any] = {
        "notificationType": "Received",
        "mail": {"source": "someone@example.com", "messageId": "o3vrnil0e2ic28tr"},
        "receipt": {"action": {"type": "SNS", "topicArn": "arn:aws:sns:x", "encoding": encoding}},
    }
    if content is not None:
        message["content"] = content
    return {"Type": "Notification", "MessageId": "1", "Message": json.dumps(message)}


def test_ses_base64_content() -> None:
    notification = ses_notification(base64.b64encode(SAMPLE_EMAIL).decode())
    parsed = from_sns_ses(notification)

    assert parsed.subject == "Test email"
    assert parsed.from_address == "someone@example.com"
    assert parsed.raw_size == len(SAMPLE_EMAIL)


def test_ses_utf8_content_and_bare_message() -> None:
    envelope = ses_notification(SAMPLE_EMAIL.decode("ascii"), encoding="UTF8")
    inner = json.loads(envelope["Message"])

    assert from_sns_ses(envelope).subject == "Test email"
    assert from_sns_ses(inner).subject == "Test email"


@pytest.mark.parametrize(
    ("notification", "field"),
    [
        (ses_notification(None), "content"),
        (ses_notification("%%%not base64%%%"), "content"),
        ({"Type": "Notification", "Message": "{broken"}, "Message"),
        ({"notificationType": "Bounce", "content": "x"}, "notificationType"),
    ],
)
def test_ses_malformed_names_field(notification: dict[str, Any], field: str) -> None:
    with pytest.raises(InboundPayloadError) as caught:
        from_sns_ses(notification)
    assert caught.value.field == field
