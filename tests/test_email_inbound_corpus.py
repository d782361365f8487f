"""The inbound parser on the third-party corpus: every file parses, known files parse right.

The corpus (tests/fixtures/corpus/email) contains real and deliberately broken messages from
CPython, Chatwoot, flanker and mail-mime-parser. The parametrized tests cover each file in
the directory, so a file added later is covered without a code change.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from frontdesk.email.inbound import (
    ParsedEmail,
    is_automatic,
    parse_message,
    parse_report,
    split_reply,
)

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email"
CORPUS_FILES = sorted(path for path in CORPUS.rglob("*") if path.is_file())


def load(relative: str) -> ParsedEmail:
    return parse_message((CORPUS / relative).read_bytes())


def test_corpus_is_present() -> None:
    # Four sources with 116 files in all; a missing checkout must not pass silently.
    assert len(CORPUS_FILES) >= 100
    assert {path.relative_to(CORPUS).parts[0] for path in CORPUS_FILES} == {
        "chatwoot",
        "cpython",
        "flanker",
        "mime-parser",
    }


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: str(path.relative_to(CORPUS)))
def test_corpus_file_parses_consistently(path: Path) -> None:
    raw = path.read_bytes()
    parsed = parse_message(raw)

    assert parsed.raw_size == len(raw)
    assert isinstance(parsed.text, str)
    assert parsed.html is None or isinstance(parsed.html, str)
    assert isinstance(parsed.subject, str)
    assert "\n" not in parsed.subject
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert parsed.message_id is None or "<" not in parsed.message_id
    assert len(parsed.references) == len(set(parsed.references))
    assert all(isinstance(defect, str) and defect for defect in parsed.defects)
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in parsed.headers)
    assert parsed.part_count >= 1
    for attachment in parsed.attachments:
        name = attachment.filename
        assert name
        assert "/" not in name
        assert "\\" not in name
        assert not name.startswith(".")
        assert len(name.encode("utf-8")) <= 255
        assert not any(unicodedata.category(character) == "Cc" for character in name)
        assert isinstance(attachment.data, bytes)
        assert attachment.content_type == attachment.content_type.lower()

    for value in [parsed.subject, parsed.text, parsed.from_name, *parsed.defects]:
        assert "\x00" not in value
        value.encode("utf-8")

    # The other entry points must accept whatever the parser produced.
    is_automatic(parsed, own_addresses=["support@example.com"])
    parse_report(parsed)
    parts = split_reply(parsed.text)
    if parsed.text.strip():
        assert parts.new_text


def test_non_utf8_charset_iso_8859_1() -> None:
    parsed = load("mime-parser/m0001.txt")

    assert parsed.text.startswith("Die Hasen und die Frösche\n")
    assert "mißliche Lage" in parsed.text
    # The raw 8-bit header is decoded with the body's charset after UTF-8 fails.
    assert parsed.subject == "Die Hasen und die Frösche (Microsoft Outlook 00)"
    assert parsed.to == [("Jürgen Schmürgen", "schmuergen@example.com")]
    assert "raw 8-bit bytes in header Subject decoded" in parsed.defects


def test_gb2312_headers_and_body() -> None:
    parsed = load("flanker/charset-gb2312.eml")

    assert parsed.from_name == "腾讯企业邮箱"
    assert parsed.from_address == "10000@qq.com"
    assert parsed.subject == "提示\uff1a您的企业成员暂时无法登录邮件客户端"
    assert parsed.text.startswith("尊敬的管理员\uff1a")
    assert parsed.html is not None
    assert parsed.date is None


def test_windows_1252_quoted_printable() -> None:
    parsed = load("mime-parser/m0010.txt")

    assert parsed.subject == "Die Hasen und die Frösche (Microsoft Outlook 00)"
    assert "über ihre mißliche Lage" in parsed.text
    assert parsed.to == [("Heinz Müller", "mueller@example.com")]
    assert parsed.defects == []


def test_utf7_encoded_subject_and_body() -> None:
    parsed = load("mime-parser/m0006.txt")

    assert parsed.subject == "Die Hasen und die Frösche (Microsoft Outlook 00)"
    assert parsed.text.startswith("Die Hasen und die Frösche")


def test_unknown_charset_recorded() -> None:
    parsed = load("mime-parser/invalid-charset.txt")

    assert "unknown charset 'invalid-charset' in text/plain part replaced" in parsed.defects
    assert parsed.text.startswith("The Hare and the Tortoise")


def test_encoded_words_in_arabic_headers() -> None:
    parsed = load("chatwoot/non_utf_encoded_mail.eml")

    assert parsed.subject == "أهلين عميلنا الكريم"
    assert parsed.from_name == "متجر سوق نت"
    assert parsed.from_address == "example@gmail.com"
    assert parsed.text == "أنظروا، أنا أحتاجها فقط لتقوم بالتدقيق في مقالتي الشخصية"
    # The same id twice in In-Reply-To is kept once.
    assert parsed.in_reply_to == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]
    assert is_automatic(parsed, own_addresses=[]) == "Auto-Submitted: auto-replied"


def test_encoded_display_name_with_comma() -> None:
    parsed = load("flanker/encoded-header.eml")

    assert parsed.from_name == "Foo, Bar"
    assert parsed.from_address == "foo.bar@example.com"
    assert parsed.message_id == "1234567890-1234-4567@example.com"


def test_nested_multiparts_with_related_images() -> None:
    parsed = load("mime-parser/m1005.txt")

    assert parsed.subject == "Die Hasen und die Frösche (Netscape Messenger 4.7)"
    assert parsed.from_address == "dwsauder@example.com"
    assert parsed.content_type == "multipart/mixed"
    assert parsed.part_count == 9
    assert [(item.filename, item.size, item.inline) for item in parsed.attachments] == [
        # Netscape wrote Windows paths ("C:\TEMP\nsmailEG.png"); only the base name is kept.
        ("nsmailEG.png", 1325, True),
        ("nsmail39.png", 1453, True),
        ("redball.png", 1453, False),
        ("greenball.png", 1298, False),
    ]
    assert parsed.attachments[0].content_id == "part1.39235FC5.E71D8178@example.com"
    assert parsed.attachments[0].data.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Die Hasen klagten einst" in parsed.text


def test_inline_cid_image_without_disposition() -> None:
    parsed = load("chatwoot/cid_inline_images_without_disposition.eml")

    assert parsed.text == "This is a plain text version of the message."
    assert parsed.html is not None
    assert parsed.part_count == 5
    [image] = parsed.attachments
    assert image.filename == "image001.jpg"
    assert image.content_type == "image/jpeg"
    assert image.content_id == "image001.jpg@test"
    assert image.inline is True
    # The fixture's base64 is cut short, so only the decodable prefix remains.
    assert image.data.startswith(b"\xff\xd8\xff\xe0")


def test_inline_images_empty_in_source() -> None:
    parsed = load("chatwoot/mail_with_plain_text_and_inline_image.eml")

    assert [item.filename for item in parsed.attachments] == [
        "poster (8).jpg",
        "poster (7).jpg",
        "poster (1).jpg",
    ]
    assert all(item.size == 0 for item in parsed.attachments)
    assert [item.content_id for item in parsed.attachments] == [
        "ii_lm7fuura0",
        "ii_lm7fuuvm1",
        "ii_lm7fuuwn2",
    ]
    # No HTML body references them, so they are listed as files.
    assert not any(item.inline for item in parsed.attachments)


def test_missing_date() -> None:
    parsed = load("chatwoot/mail_with_no_date.eml")

    assert parsed.date is None
    assert "missing date" in parsed.defects
    assert parsed.from_address == "testemail@gmail.com"
    assert parsed.text == "text only mail"


def test_invalid_date_hour() -> None:
    parsed = load("cpython/msg_47.txt")

    assert parsed.date is None
    assert "invalid date" in parsed.defects
    assert parsed.from_name == "123@abuse.net"


def test_valid_date_is_aware() -> None:
    parsed = load("chatwoot/only_text.eml")

    assert parsed.date == datetime(2022, 2, 23, 7, 44, 10, tzinfo=UTC)


def test_missing_header_body_separator() -> None:
    parsed = load("cpython/msg_35.txt")

    assert parsed.subject == "here's something interesting"
    assert parsed.text == "counter to RFC 5322, there's no separating newline here"
    assert "missing header body separator" in parsed.defects


def test_several_in_reply_to_ids() -> None:
    parsed = load("chatwoot/multiple_in_reply_to.eml")

    assert parsed.in_reply_to == [
        "4e6e35f5a38b4_479f13bb90078171@small-app-01.mail",
        "4e6e35f5a38b4_479f13bb90078131@small-app-01.mail",
    ]
    assert parsed.references == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]
    assert parsed.message_id == "0CB459E0-0336-41DA-BC88-E6E28C697DDB@chatwoot.com"


def test_references_in_order() -> None:
    parsed = load("chatwoot/references.eml")

    assert parsed.references == [
        "4e6e35f5a38b4_479f13bb90078178@small-app-01.mail",
        "test-in-reply-to",
    ]


def test_invalid_addresses_dropped() -> None:
    empty_from = load("chatwoot/mail_with_invalid_to.eml")
    host_in_to = load("chatwoot/mail_with_invalid_to_2.eml")
    empty_reply_to = load("chatwoot/malformed_reply_to.eml")

    assert empty_from.from_address is None
    assert "invalid address in header From" in empty_from.defects
    assert empty_from.to == [("", "vishnu@chatwoot.com")]
    assert host_in_to.to == [("", "vishnu@chatwoot.com")]
    assert empty_reply_to.reply_to == []
    assert "invalid address in header Reply-To" in empty_reply_to.defects


def test_cc_and_gmail_signature() -> None:
    parsed = load("chatwoot/reply_cc.eml")

    assert parsed.to == [("", "test123@example.com")]
    assert parsed.cc == [("Replies", "test@example.com")]
    parts = split_reply(parsed.text)
    assert parts.new_text == "Hello,\n\nFind the related inbox."
    assert parts.signature == "--\n*Sony Mathew*"


def test_gmail_reply_with_quote() -> None:
    parsed = load("chatwoot/mail_with_quote.eml")
    parts = split_reply(parsed.text)

    assert parts.new_text == "Yes, I am providing you step how to reproduce this issue"
    assert parts.quoted.startswith("On Thu, Aug 19, 2021 at 2:07 PM Tejaswini")
    assert "> Any update on this?" in parts.quoted
    assert parts.signature.startswith("--\n* Sony Mathew*")


def test_html_only_message() -> None:
    parsed = load("chatwoot/only_html.eml")

    assert parsed.html is not None
    assert "<h1>" in parsed.html
    assert parsed.text == "This is html only mail"


def test_attachments_without_text() -> None:
    parsed = load("chatwoot/attachments_without_text.eml")

    assert parsed.text == ""
    assert [(item.filename, item.content_type, item.size) for item in parsed.attachments] == [
        ("1kb.png", "image/png", 1049),
        ("1kb.png", "image/png", 1049),
    ]
    assert parsed.attachments[0].data.startswith(b"\x89PNG")


def test_rfc2231_file_name() -> None:
    parsed = load("mime-parser/m3004.txt")

    [attachment] = parsed.attachments
    assert attachment.filename == "HasenundFrösche.txt"
    assert attachment.size == 755


def test_encoded_word_file_name() -> None:
    parsed = load("mime-parser/m0024.txt")

    [attachment] = parsed.attachments
    assert attachment.filename == "Biodiversite de semaine en semaine.doc"
    assert attachment.content_type == "application/msword"
    assert attachment.size == 27648


def test_raw_latin1_file_name() -> None:
    parsed = load("mime-parser/m2011.txt")

    assert [item.filename for item in parsed.attachments] == [
        "blueball.png",
        "HasenundFrösche.txt",
    ]


def test_uuencoded_attachments() -> None:
    parsed = load("mime-parser/m3007.txt")

    assert [(item.filename, item.size) for item in parsed.attachments] == [
        ("greenball.png", 1298),
        ("blueball.png", 1325),
        ("HasenundFrösche.txt", 747),
    ]
    assert parsed.attachments[0].data.startswith(b"\x89PNG")


def test_outlook_message_with_three_pngs() -> None:
    parsed = load("mime-parser/m0011.txt")

    assert parsed.subject == "Test message from Microsoft Outlook 00"
    assert parsed.part_count == 5
    assert [(item.filename, item.size) for item in parsed.attachments] == [
        ("blueball.png", 1325),
        ("greenball.png", 1298),
        ("redball.png", 1453),
    ]


def test_base64_png_attachment_intact() -> None:
    parsed = load("flanker/mailgun-pic.eml")

    assert parsed.subject == "Mailgun rocks!"
    assert parsed.from_name == "Bob Smith"
    [picture] = parsed.attachments
    assert picture.filename == "mailgun.png"
    assert picture.size == 60168
    assert picture.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert picture.data.endswith(b"IEND\xaeB`\x82")


def test_enclosed_message_is_attachment() -> None:
    parsed = load("flanker/enclosed.eml")

    assert parsed.text == "Hello"
    [enclosed] = parsed.attachments
    assert enclosed.filename == "thanks.eml"
    assert enclosed.content_type == "message/rfc822"
    inner = parse_message(enclosed.data)
    assert inner.subject == "Thanks!"
    assert inner.from_address == "dan@example.com"


def test_forwarded_message_only_gives_its_text() -> None:
    parsed = load("cpython/msg_46.txt")

    assert parsed.text == "Testing email forwarding with Groupwise 1.2.2010"
    assert [item.content_type for item in parsed.attachments] == ["message/rfc822"]


def test_mbox_envelope_line_ignored() -> None:
    parsed = load("cpython/mailbox_01.mbox")

    assert parsed.subject == "unquoted From in body; extra info on From line"
    assert "From time to time" in parsed.text


def test_8bit_utf8_body() -> None:
    parsed = load("flanker/8bitmime.eml")

    assert parsed.text == "Превел\n\n123"
    assert parsed.to == [("", "xxx@example.net"), ("", "yyy@example.net")]


def test_bounce_gmail_dsn_without_fields() -> None:
    parsed = load("chatwoot/bounced_gmail.eml")
    report = parse_report(parsed)

    assert report is not None
    assert report.kind == "hard"
    assert report.addresses == ["alex.jones@fictionalcorp.com"]
    assert report.recipients[0].status == "5.1.1"
    assert report.original_message_id == (
        "conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com"
    )
    assert is_automatic(parsed, own_addresses=[]) == "Auto-Submitted: auto-replied"


def test_bounce_postfix_dsn() -> None:
    report = parse_report(load("chatwoot/bounced_with_no_from.eml"))

    assert report is not None
    assert report.source == "dsn"
    assert report.kind == "hard"
    [recipient] = report.recipients
    assert recipient.address == "noreply@example-service.com"
    assert recipient.action == "failed"
    assert recipient.status == "5.7.1"
    assert recipient.diagnostic is not None
    assert recipient.diagnostic.startswith("554 5.7.1")


def test_bounce_office365() -> None:
    report = parse_report(load("flanker/bounce/office365.eml"))

    assert report is not None
    assert report.kind == "hard"
    assert report.addresses == ["noname@example.com"]
    assert report.recipients[0].status == "5.1.10"
    assert report.original_message_id == "20171013111011.20866.254C2F3A4D7AA526@ninomail.com"


def test_bounce_gmail_prose() -> None:
    report = parse_report(load("flanker/bounce/gmail-invalid-address.eml"))

    assert report is not None
    assert report.source == "heuristic"
    assert report.kind == "hard"
    assert report.addresses == ["awfawfawfawfawfaw@someserverhere.com"]
    assert report.original_message_id == (
        "CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com"
    )


def test_bounce_mailbox_full() -> None:
    report = parse_report(load("flanker/bounce/mailbox-full.eml"))

    assert report is not None
    # A full mailbox may take mail again later: soft, so the address is not suppressed.
    assert report.kind == "soft"
    assert report.addresses == ["user@aol.com"]
    assert report.recipients[0].status == "5.2.2"
    assert report.original_message_id == "4E326A95.3010907@example.com"


def test_bounce_soft_and_delayed() -> None:
    soft = parse_report(load("flanker/bounce/delayed.eml"))
    delayed = parse_report(load("flanker/bounce/no-mx.eml"))
    broken = parse_report(load("flanker/bounce/delayed-broken.eml"))

    assert soft is not None
    assert soft.kind == "soft"
    assert soft.addresses == ["foo@example.com"]
    assert delayed is not None
    assert delayed.kind == "delayed"
    assert delayed.addresses == ["user@example.com"]
    assert broken is not None
    assert broken.kind == "soft"
    assert broken.addresses == ["demo@example.com"]


def test_complaint_aol() -> None:
    report = parse_report(load("flanker/complaints/aol.eml"))

    assert report is not None
    assert report.kind == "complaint"
    assert report.source == "arf"
    assert report.feedback_type == "abuse"
    # AOL redacts Original-Rcpt-To; the enclosed message's To is the only recipient left.
    assert report.addresses == ["redacted@aol.com"]
    assert report.original_message_id == "20101117174130.28884.55421@luna"


def test_complaint_yahoo() -> None:
    report = parse_report(load("flanker/complaints/yahoo.eml"))

    assert report is not None
    assert report.kind == "complaint"
    assert report.feedback_type == "abuse"
    assert report.addresses == ["user@yahoo.com"]
    assert report.original_message_id == "20120711015015.4A8BE2E088E@www.example.com"


def test_ordinary_messages_are_not_reports() -> None:
    for relative in (
        "chatwoot/mail_with_quote.eml",
        "flanker/disposition-notification.eml",
        "flanker/long-links.eml",
        "mime-parser/m1005.txt",
    ):
        assert parse_report(load(relative)) is None, relative
