"""Inbound parsing units: MIME edge cases, limits, file names, auto-replies and reply splitting."""

from __future__ import annotations

import base64
import time
import unicodedata
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.email.inbound import (
    ParsedEmail,
    ParseLimits,
    html_to_text,
    is_automatic,
    parse_message,
    safe_filename,
    split_reply,
)
from frontdesk.email.inbound.decoding import clean_text

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email"
# Files up to 20 KB keep the mutation test fast; together they still cover every source.
SMALL_CORPUS_FILES = sorted(
    path for path in CORPUS.rglob("*") if path.is_file() and path.stat().st_size <= 20_000
)
FRAGMENTS = [
    b"\n",
    b"\r\n",
    b"\n\n",
    b"--",
    b"=?utf-8?B?",
    b"=?x-unknown?Q?=FF=FE?=",
    b"?=",
    b"Content-Type: multipart/mixed; boundary=x\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Disposition: attachment; filename*=utf-8''%2E%2E%2Fetc%2Fpasswd\n",
    b'charset="utf-16"',
    b"\xff\xfe\x00",
    b"=\n",
    b"==",
    b"\x00",
    b"<",
    b">",
    b'"',
]


def storable_strings(parsed: ParsedEmail) -> list[str]:
    """Return every string of ``parsed`` that would end up in a database row."""
    values = [parsed.subject, parsed.text, parsed.html or "", parsed.from_name]
    values += [name for name, _ in parsed.to + parsed.cc]
    values += [part for pair in parsed.headers for part in pair]
    values += parsed.defects
    values += [attachment.filename for attachment in parsed.attachments]
    return values


def assert_storable(parsed: ParsedEmail) -> None:
    for value in storable_strings(parsed):
        assert "\x00" not in value
        value.encode("utf-8")  # raises on a lone surrogate


def build(headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode("utf-8") + b"\r\n" + body


# parse_message ------------------------------------------------------------------------


def test_plain_message_fields() -> None:
    raw = build(
        {
            "From": '"Ann Lee" <ann@example.com>',
            "To": "Desk <desk@example.org>, bob@example.org",
            "Cc": "carol@example.org",
            "Reply-To": "replies@example.com",
            "Sender": "list@example.com",
            "Subject": "Booking for Friday",
            "Date": "Tue, 05 Mar 2024 10:01:00 +0100",
            "Message-ID": "<abc@example.com>",
            "In-Reply-To": "<one@example.org>",
            "References": "<zero@example.org> <one@example.org> <zero@example.org>",
            "Content-Type": "text/plain; charset=utf-8",
        },
        b"Hello,\r\ncan we move it?\r\n",
    )
    parsed = parse_message(raw)

    assert parsed.from_name == "Ann Lee"
    assert parsed.from_address == "ann@example.com"
    assert parsed.sender == "list@example.com"
    assert parsed.reply_to == ["replies@example.com"]
    assert parsed.to == [("Desk", "desk@example.org"), ("", "bob@example.org")]
    assert parsed.cc == [("", "carol@example.org")]
    assert parsed.subject == "Booking for Friday"
    assert parsed.date is not None
    assert parsed.date.isoformat() == "2024-03-05T10:01:00+01:00"
    assert parsed.message_id == "abc@example.com"
    assert parsed.in_reply_to == ["one@example.org"]
    assert parsed.references == ["zero@example.org", "one@example.org"]
    assert parsed.text == "Hello,\ncan we move it?"
    assert parsed.html is None
    assert parsed.attachments == []
    assert parsed.header("subject") == "Booking for Friday"
    assert parsed.defects == []


def test_unknown_charset_falls_back() -> None:
    raw = build(
        {"From": "a@example.com", "Date": "Tue, 05 Mar 2024 10:01:00 +0000"},
        b"",
    )
    raw = raw.replace(
        b"\r\n\r\n",
        b"\r\nContent-Type: text/plain; charset=x-martian\r\n\r\ncaf\xc3\xa9",
    )
    parsed = parse_message(raw)

    assert parsed.text == "café"
    assert "unknown charset 'x-martian' in text/plain part replaced" in parsed.defects


def test_wrong_charset_falls_back_to_cp1252() -> None:
    raw = (
        b"From: a@example.com\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nna\xefve \x93quote\x94"
    )
    parsed = parse_message(raw)

    assert parsed.text == "naïve \u201cquote\u201d"
    assert "text/plain part is not valid utf-8, decoded as cp1252" in parsed.defects


def test_bad_base64_recorded_not_raised() -> None:
    raw = (
        b"From: a@example.com\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"SGVsbG8gd29ybGQ!!!*"
    )
    parsed = parse_message(raw)

    assert parsed.text.startswith("Hello world")
    assert any("base64" in defect for defect in parsed.defects)


def test_unknown_transfer_encoding_recorded() -> None:
    raw = (
        b"From: a@example.com\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Content-Transfer-Encoding: x-rot13\r\n\r\nuryyb"
    )
    parsed = parse_message(raw)

    assert parsed.text == "uryyb"
    assert "unknown transfer encoding 'x-rot13' kept as is" in parsed.defects


def test_encoded_word_with_raw_latin1() -> None:
    raw = (
        b"From: a@example.com\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Subject: =?iso-8859-1?Q?Fr\xf6sche?= und =?utf-8?B?S8O2bmln?=\r\n\r\nx"
    )
    assert parse_message(raw).subject == "Frösche und König"


def test_html_only_message_gets_text() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["Subject"] = "HTML"
    message.set_content(
        "<html><head><style>p{color:red}</style></head><body><p>Hello <b>there</b></p>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>",
        subtype="html",
    )
    parsed = parse_message(message.as_bytes())

    assert parsed.text == "Hello there\n\n- one\n- two"
    assert parsed.html is not None


def test_alternative_prefers_plain_part() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("plain version")
    message.add_alternative("<p>html version</p>", subtype="html")
    parsed = parse_message(message.as_bytes())

    assert parsed.text == "plain version"
    assert parsed.html == "<p>html version</p>\n"
    assert parsed.part_count == 3


def test_flowed_text_is_joined() -> None:
    raw = (
        b"From: a@example.com\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"This line is \r\nflowed.\r\n> quoted \r\n> too\r\n-- \r\nSig\r\n"
    )
    parsed = parse_message(raw)

    assert parsed.text == "This line is flowed.\n> quoted too\n-- \nSig"


def test_attachment_names_made_safe() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("see files")
    message.add_attachment(b"one", maintype="application", subtype="pdf", filename="../../a.pdf")
    message.add_attachment(b"two", maintype="image", subtype="png")
    message.add_attachment(b"three", maintype="text", subtype="plain", filename=".htaccess")
    parsed = parse_message(message.as_bytes())

    assert [(item.filename, item.data) for item in parsed.attachments] == [
        ("a.pdf", b"one"),
        ("attachment-2.png", b"two"),
        ("htaccess", b"three"),
    ]


def test_inline_cid_image_marked_inline() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("text")
    message.add_alternative('<p><img src="cid:logo@example"></p>', subtype="html")
    alternatives = message.get_payload()
    assert isinstance(alternatives, list)
    html_part = alternatives[1]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<logo@example>")
    message.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    parsed = parse_message(message.as_bytes())

    assert [(item.filename, item.content_id, item.inline) for item in parsed.attachments] == [
        ("attachment-1.png", "logo@example", True),
        ("a.pdf", None, False),
    ]


def nested_message(depth: int) -> bytes:
    head = b"From: a@example.com\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n"
    body = b""
    for level in range(depth):
        body += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1)
    body += b"--b%d\nContent-Type: text/plain\n\ninnermost\n" % depth
    for level in range(depth, -1, -1):
        body += b"--b%d--\n" % level
    return head + body


def test_nesting_within_limit() -> None:
    parsed = parse_message(nested_message(5))

    assert parsed.text == "innermost"
    assert parsed.part_count == 7


def test_nesting_cut_is_recorded() -> None:
    parsed = parse_message(nested_message(12), limits=ParseLimits(max_depth=4))

    assert "nesting cut at depth 4" in parsed.defects
    assert parsed.text == ""


def test_pathological_nesting_does_not_raise() -> None:
    parsed = parse_message(nested_message(3000))

    assert parsed.subject == "deep"
    assert any("RecursionError" in defect for defect in parsed.defects)


def test_part_count_cut_is_recorded() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("body")
    for index in range(20):
        message.add_attachment(
            b"x", maintype="application", subtype="octet-stream", filename=f"f{index}.bin"
        )
    parsed = parse_message(message.as_bytes(), limits=ParseLimits(max_parts=6))

    assert "parts cut after 6" in parsed.defects
    assert len(parsed.attachments) == 4
    assert parsed.part_count == 6


def test_decoded_size_cut_is_recorded() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("body")
    message.add_attachment(
        b"x" * 5000, maintype="application", subtype="octet-stream", filename="big.bin"
    )
    message.add_attachment(
        b"y" * 10, maintype="application", subtype="octet-stream", filename="small.bin"
    )
    parsed = parse_message(message.as_bytes(), limits=ParseLimits(max_decoded_bytes=1000))

    assert [item.filename for item in parsed.attachments] == ["small.bin"]
    assert "attachment dropped: decoded size limit of 1000 bytes reached" in parsed.defects


def test_message_size_cut_is_recorded() -> None:
    raw = b"From: a@example.com\r\nSubject: long\r\n\r\n" + b"a" * 5000
    parsed = parse_message(raw, limits=ParseLimits(max_message_bytes=1000))

    assert "message cut at 1000 bytes" in parsed.defects
    assert parsed.raw_size == len(raw)
    assert len(parsed.text) < 1000


def test_nul_and_surrogates_removed() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: a\x00b\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nx\x00y"
    )
    parsed = parse_message(raw)

    assert parsed.subject == "ab"
    assert parsed.text == "xy"
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert_storable(parsed)


def test_malformed_header_recorded() -> None:
    raw = (
        b'From: "Ann Lee" <>\r\nMessage-ID: 12345\r\nDate: Tue, 05 Mar 2024 10:01:00 +0000\r\n\r\nx'
    )
    parsed = parse_message(raw)

    assert parsed.from_address is None
    assert parsed.from_name == "Ann Lee"
    assert "malformed header Message-ID" in parsed.defects
    assert parsed.message_id == "12345"


def test_long_headers_stay_fast() -> None:
    # The standard header parser slows down faster than linearly on such headers; the
    # parser must switch to its linear fallback. The bound is 20 times the time measured
    # on a 2-core VM, so that only a quadratic regression fails it.
    references = b" ".join(b"<%d@example.com>" % number for number in range(50_000))
    recipients = b", ".join(
        b'"N %d" <n%d@example.com>' % (number, number) for number in range(10_000)
    )
    subject = b" ".join(b"=?utf-8?B?w6k=?=" for _ in range(20_000))
    raw = b"From: a@example.com\nReferences: %s\nTo: %s\nSubject: %s\n\nx" % (
        references,
        recipients,
        subject,
    )

    started = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = time.perf_counter() - started

    assert len(parsed.references) == 50_000
    assert len(parsed.to) == 10_000
    assert parsed.to[-1] == ("N 9999", "n9999@example.com")
    assert parsed.subject == "é" * 20_000
    assert elapsed < 10


def test_extra_address_headers_cut() -> None:
    raw = b"From: a@example.com\n" + b"To: b@example.com\n" * 40 + b"\nx"
    parsed = parse_message(raw)

    assert len(parsed.to) == 32
    assert "To headers cut after 32" in parsed.defects


def test_empty_input() -> None:
    parsed = parse_message(b"")

    assert parsed.text == ""
    assert parsed.from_address is None
    assert "missing From" in parsed.defects


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    parsed = parse_message(raw)

    assert isinstance(parsed.text, str)
    assert parsed.raw_size == len(raw)
    assert_storable(parsed)
    for attachment in parsed.attachments:
        assert "/" not in attachment.filename


@st.composite
def mutated_corpus_message(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(SMALL_CORPUS_FILES))
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif operation == "insert":
            data[position:position] = draw(st.sampled_from(FRAGMENTS))
        elif operation == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=64))]
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus_message())
def test_mutated_corpus_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)

    assert isinstance(parsed.text, str)
    assert isinstance(parsed.subject, str)
    assert_storable(parsed)
    for attachment in parsed.attachments:
        assert "/" not in attachment.filename
        assert "\\" not in attachment.filename
    split_reply(parsed.text)
    is_automatic(parsed, own_addresses=())


# safe_filename ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=400)), st.integers(min_value=1, max_value=99))
def test_safe_filename_properties(name: str | None, index: int) -> None:
    result = safe_filename(name, content_type="application/pdf", index=index)

    assert result
    assert "/" not in result
    assert "\\" not in result
    assert not result.startswith(".")
    assert len(result.encode("utf-8")) <= 255
    assert not any(unicodedata.category(character) in ("Cc", "Cf") for character in result)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\ann\\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("...hidden", "hidden"),
        ("evil\u202efdp.exe", "evilfdp.exe"),
        ("line\r\nbreak.txt", "linebreak.txt"),
        ("CON.txt", "_CON.txt"),
        ("  spaced   name .pdf ", "spaced name .pdf"),
        ("", "attachment-3.pdf"),
        (None, "attachment-3.pdf"),
        ("../", "attachment-3.pdf"),
    ],
)
def test_safe_filename_cases(name: str | None, expected: str) -> None:
    assert safe_filename(name, content_type="application/pdf", index=3) == expected


def test_safe_filename_keeps_extension_when_cut() -> None:
    result = safe_filename("é" * 300 + ".pdf", content_type="application/pdf", index=1)

    assert result.endswith(".pdf")
    assert len(result.encode("utf-8")) <= 255
    assert result.startswith("é")


def test_fallback_extension_by_type() -> None:
    assert safe_filename(None, content_type="message/rfc822", index=2) == "attachment-2.eml"
    assert safe_filename(None, content_type="x-unknown/thing", index=5) == "attachment-5.bin"


# html_to_text -------------------------------------------------------------------------


def test_html_blockquote_becomes_quote() -> None:
    html = (
        '<div dir="ltr">Thanks!</div><div class="gmail_quote">On Mon, Ann wrote:<br>'
        "<blockquote><p>Is it open?</p></blockquote></div>"
    )
    assert html_to_text(html) == "Thanks!\nOn Mon, Ann wrote:\n>\n> Is it open?"


def test_html_entities_and_breaks() -> None:
    assert html_to_text("a&amp;b<br><br>c&nbsp;d") == "a&b\n\nc\xa0d"


def test_html_unclosed_head_ends_at_body() -> None:
    html = "<html><head><title>Offer</title><style>p{}</style><body><p>Hello</p></body>"

    assert html_to_text(html) == "Hello"


def test_html_comments_removed() -> None:
    html = "<p>a < b</p><!-- note < x --><p>ok</p><!--[if mso]><p>outlook</p><![endif]-->"

    assert html_to_text(html) == "a < b\n\nok"
    assert html_to_text("<p>before</p><!-- never closed <p>after</p>") == "before"


@pytest.mark.parametrize(
    "html",
    ["<a" * 100_000, "<!--" * 50_000, "<?" * 100_000, '<a title=">' * 50_000, "<!x" * 70_000],
    ids=["open-tags", "open-comments", "processing", "quoted", "declarations"],
)
def test_html_unclosed_constructs_fast(html: str) -> None:
    # HTMLParser alone takes tens of seconds on these (quadratic rescans); the bound is
    # far above the linear time of the escaped input.
    started = time.perf_counter()
    html_to_text(html)

    assert time.perf_counter() - started < 5


# is_automatic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated; owner-email=x@y"}, "Auto-Submitted: auto-generated"),
        ({"Auto-Submitted": "no"}, None),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "List"}, "Precedence: list"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"Precedence": "first-class"}, None),
        ({"Return-Path": "<>"}, "empty Return-Path"),
        ({"Return-Path": "<ann@example.com>"}, None),
        ({"X-Autoreply": "yes"}, "X-Autoreply present"),
        ({"X-Autorespond": "Out of office"}, "X-Autorespond present"),
        ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress: all"),
        ({"X-Auto-Response-Suppress": "DR, OOF, AutoReply"}, "X-Auto-Response-Suppress: autoreply"),
        ({"X-Auto-Response-Suppress": "DR"}, None),
        ({"List-Id": "Team <team.example.com>"}, "List-Id present"),
        ({"List-Unsubscribe": "<mailto:u@example.com>"}, "List-Unsubscribe present"),
        ({"From": "MAILER-DAEMON@example.com"}, "sent by mailer-daemon"),
        ({"From": "Mail System <postmaster@example.com>"}, "sent by postmaster"),
        ({"From": "Desk <DESK@frontdesk.example>"}, "sent from one of our own addresses"),
        ({"From": "Ann <ann@example.com>", "Subject": "Re: booking"}, None),
    ],
)
def test_is_automatic_table(headers: dict[str, str], expected: str | None) -> None:
    assert is_automatic(headers, own_addresses=["desk@frontdesk.example"]) == expected


def test_is_automatic_on_parsed_and_pairs() -> None:
    raw = build(
        {"From": "Ann <ann@example.com>", "Auto-Submitted": "auto-replied", "Subject": "Away"},
        b"I am away.",
    )
    parsed = parse_message(raw)

    assert is_automatic(parsed, own_addresses=[]) == "Auto-Submitted: auto-replied"
    assert is_automatic([("From", "ann@example.com")], own_addresses=["ann@example.com"]) == (
        "sent from one of our own addresses"
    )
    person = parse_message(build({"From": "Ann <ann@example.com>"}, b"Hello"))
    assert is_automatic(person, own_addresses=["desk@example.com"]) is None


# split_reply --------------------------------------------------------------------------

GMAIL_EN = """Friday at 10 works for me.

Thanks,
Ann

On Tue, Mar 5, 2024 at 10:01 AM Frontdesk Studio <desk@studio.example> wrote:

> Hello Ann,
>
> Would Friday suit you?
>
"""

OUTLOOK_EN = """Please send the invoice to our accounts team.

Kind regards
Bob

________________________________
From: Studio Desk <desk@studio.example>
Sent: Tuesday, March 5, 2024 10:01 AM
To: Bob <bob@example.com>
Subject: Your booking

Hello Bob, your booking is confirmed.
"""

OUTLOOK_ORIGINAL = """Yes, that is fine.

-----Original Message-----
From: Studio Desk [mailto:desk@studio.example]
Sent: Tuesday, March 5, 2024 10:01 AM
Subject: Your booking

Can you confirm?
"""

APPLE_EN = """Perfect, see you then.

Sent from my iPhone

> On 5 Mar 2024, at 10:01, Studio Desk <desk@studio.example> wrote:
>
> See you on Friday?
"""

GMAIL_FR = """Oui, vendredi me convient.

Le mar. 5 mars 2024 à 10:01, Studio Desk <desk@studio.example> a écrit :

> Bonjour,
> vendredi vous convient-il ?
"""

APPLE_FR = """Merci beaucoup !

Envoyé de mon iPhone

> Le 5 mars 2024 à 10:01, Studio Desk <desk@studio.example> a écrit :
>
> Votre réservation est confirmée.
"""

OUTLOOK_FR = """Bien reçu, merci.

De : Studio Desk <desk@studio.example>
Envoyé : mardi 5 mars 2024 10:01
À : Claire <claire@example.fr>
Objet : Réservation

Bonjour Claire,
"""

GMAIL_DE = """Freitag passt gut.

Viele Grüße
Jonas

Am Di., 5. März 2024 um 10:01 Uhr schrieb Studio Desk <
desk@studio.example>:

> Hallo Jonas,
> passt Ihnen Freitag?
"""

APPLE_DE = """Danke, bis dann!

> Am 05.03.2024 um 10:01 schrieb Studio Desk <desk@studio.example>:
>
> Bis Freitag?

Von meinem iPhone gesendet
"""

OUTLOOK_DE = """Bitte um Rückruf.

-----Ursprüngliche Nachricht-----
Von: Studio Desk <desk@studio.example>
Gesendet: Dienstag, 5. März 2024 10:01
An: Jonas <jonas@example.de>
Betreff: Termin

Hallo Jonas,
"""

PLAIN_TOP = "That works, thanks.\n-- \nAnn Lee\nLee & Co\n\n> Can you come on Friday?\n> -- Desk\n"

PLAIN_BOTTOM = """> Can you come on Friday?

Yes, Friday is fine.
"""

INLINE = """> Which day?
Friday.
> Which time?
Ten.
"""


@pytest.mark.parametrize(
    ("text", "new_text", "quoted_start", "signature"),
    [
        (GMAIL_EN, "Friday at 10 works for me.\n\nThanks,\nAnn", "On Tue, Mar 5, 2024", ""),
        (
            OUTLOOK_EN,
            "Please send the invoice to our accounts team.\n\nKind regards\nBob",
            "________________________________\nFrom: Studio Desk",
            "",
        ),
        (OUTLOOK_ORIGINAL, "Yes, that is fine.", "-----Original Message-----", ""),
        (APPLE_EN, "Perfect, see you then.", "> On 5 Mar 2024, at 10:01", "Sent from my iPhone"),
        (GMAIL_FR, "Oui, vendredi me convient.", "Le mar. 5 mars 2024 à 10:01", ""),
        (APPLE_FR, "Merci beaucoup !", "> Le 5 mars 2024 à 10:01", "Envoyé de mon iPhone"),
        (OUTLOOK_FR, "Bien reçu, merci.", "De : Studio Desk", ""),
        (GMAIL_DE, "Freitag passt gut.\n\nViele Grüße\nJonas", "Am Di., 5. März 2024", ""),
        (APPLE_DE, "Danke, bis dann!", "> Am 05.03.2024 um 10:01", "Von meinem iPhone gesendet"),
        (OUTLOOK_DE, "Bitte um Rückruf.", "-----Ursprüngliche Nachricht-----", ""),
        (PLAIN_TOP, "That works, thanks.", "> Can you come on Friday?", "--\nAnn Lee\nLee & Co"),
        (PLAIN_BOTTOM, "Yes, Friday is fine.", "> Can you come on Friday?", ""),
    ],
    ids=[
        "gmail-en",
        "outlook-en",
        "outlook-original-message",
        "apple-en",
        "gmail-fr",
        "apple-fr",
        "outlook-fr",
        "gmail-de",
        "apple-de",
        "outlook-de",
        "plain-top-posted",
        "plain-bottom-posted",
    ],
)
def test_split_reply_styles(text: str, new_text: str, quoted_start: str, signature: str) -> None:
    parts = split_reply(text)

    assert parts.new_text == new_text
    assert parts.quoted.startswith(quoted_start)
    assert parts.signature == signature.rstrip()


def test_split_reply_keeps_inline_answers() -> None:
    parts = split_reply(INLINE)

    assert parts.new_text == "Friday.\n> Which time?\nTen."
    assert parts.quoted == "> Which day?"


def test_split_reply_quote_only_kept_as_new_text() -> None:
    parts = split_reply("> only a quote\n> nothing else")

    assert parts.new_text == "> only a quote\n> nothing else"


def test_split_reply_signature_only_kept() -> None:
    parts = split_reply("-- \nAnn Lee")

    assert parts.new_text == "--\nAnn Lee"
    assert parts.signature == ""


def test_split_reply_bare_dashes_as_separator() -> None:
    text = "Menu:\n--\n" + "\n".join(f"dish {number}" for number in range(12))
    parts = split_reply(text)

    assert parts.new_text == text
    assert parts.signature == ""


@pytest.mark.parametrize(
    "text",
    [("--\n" + "line\n" * 11) * 15_000, ("> q\n" + "a\n") * 50_000, "From: a\n" * 50_000],
    ids=["bare-dashes", "alternating-quotes", "header-like"],
)
def test_split_reply_long_text_fast(text: str) -> None:
    # Linear scans take well under a second here; a quadratic one takes minutes.
    started = time.perf_counter()
    split_reply(text)

    assert time.perf_counter() - started < 10


def test_split_reply_forward_is_content() -> None:
    text = (
        "See below.\n\n---------- Forwarded message ---------\n"
        "From: Ann <ann@example.com>\nDate: Tue, Mar 5, 2024\nSubject: Booking\n\nHello"
    )
    parts = split_reply(text)

    assert parts.new_text == text
    assert parts.quoted == ""


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_split_reply_never_empties_content(text: str) -> None:
    parts = split_reply(text)

    if text.strip():
        assert parts.new_text


def test_base64_helper_round_trip() -> None:
    # Guards the test helper itself: build() must produce parseable CRLF messages.
    raw = build(
        {"From": "a@example.com", "Content-Transfer-Encoding": "base64"},
        base64.b64encode("grüße".encode()),
    )
    assert parse_message(raw).text == "grüße"
