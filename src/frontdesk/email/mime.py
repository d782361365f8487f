"""Build an outgoing email as MIME, checking and encoding every header value here.

This module writes the header lines itself instead of leaving them to the folder of Python's
email package. Python 3.11's folder writes a literal ``=?utf-8?q?...?=`` in a subject or file
name unencoded, so readers decode it, and splits long non-ASCII display names into several
encoded words, which Python's own parser then joins with extra spaces. Bodies and the
multipart structure still come from ``email.message.EmailMessage``.

Every value built from user data goes through ``_clean``: a CR, LF or any other line break
raises ``PermanentDeliveryError``, so user data can never start a header line of its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, Policy
from email.utils import format_datetime, parsedate_to_datetime

from email_validator import EmailNotValidError, validate_email

from frontdesk.email.transports import PermanentDeliveryError

# Line breaks as ``str.splitlines`` recognizes them. A header value with any of them is rejected.
LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# RFC 5322 recommends lines of at most 78 characters and forbids lines over 998.
_FOLD_WIDTH = 78
_MAX_LINE = 998
# 45 bytes of UTF-8 make 60 base64 characters and a 72-character encoded word, within the
# 75 characters that RFC 2047 allows.
_ENCODED_WORD_BYTES = 45
# Maximum length of one percent-encoded piece of an RFC 2231 parameter value.
_PARAMETER_PIECE = 50

_ASCII_TEXT = re.compile(r"[\x20-\x7e\t]*")
_QUOTABLE = re.compile(r"[\x20-\x7e]*")
_WHITESPACE_OR_WORD = re.compile(r"[ \t]+|[^ \t]+")
# An ASCII host name: dot-separated labels of letters, digits and inner hyphens (RFC 1123).
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_BLANKS = re.compile(r"[ \t]+")
_HEADER_NAME = re.compile(r"X-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,60}", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[!#-;=?A-\[\]-~]+@[!#-;=?A-Z^-~]+>")
_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}")
_MEDIA_TYPE = re.compile(
    r"([a-z0-9][a-z0-9!#$&^_.+-]{0,126})/([a-z0-9][a-z0-9!#$&^_.+-]{0,126})", re.IGNORECASE
)
_NAME_AND_ADDRESS = re.compile(r"(?P<name>.*?)\s*<(?P<address>[^<>]*)>", re.DOTALL)
# RFC 2231 attribute-char: what may stay unescaped in an extended parameter value.
_PARAMETER_SAFE = "!#$&+-.^_`|~"

# Headers that ``OutgoingEmail.headers`` may set besides ``X-`` headers, by lowercase name.
_KNOWN_HEADERS = {
    name.lower(): name
    for name in (
        "Message-ID",
        "Date",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
}
_MESSAGE_ID_HEADERS = frozenset({"Message-ID", "In-Reply-To", "References"})


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    # Set for an inline image that the HTML part shows as ``cid:<content_id>``.
    content_id: str | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    """One message to send, independent of the provider that sends it.

    Addresses are formatted as ``"Display Name" <local@domain>`` or a bare address. The
    display name is plain Unicode, in double quotes with backslash escapes when it contains
    special characters, which is the form that ``format_address`` writes.
    """

    from_address: str
    to: list[str]
    subject: str
    text: str
    html: str
    # The Message-ID header value, with its angle brackets.
    message_id: str
    # The same for every attempt to send this message; providers that support it drop
    # repeated requests with the same key.
    idempotency_key: str
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True)
class MailAddress:
    display_name: str
    # The addr-spec with an ASCII (IDNA) domain.
    address: str

    def formatted(self) -> str:
        """Return ``"Display Name" <address>`` in Unicode, or the bare address."""
        return format_address(self.display_name, self.address)


def format_address(display_name: str, address: str) -> str:
    """Format a display name and an address the way ``parse_address`` reads them back."""
    if not display_name:
        return address
    escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{address}>'


def _clean(value: str, what: str) -> str:
    """Return ``value`` without surrounding whitespace; raise for line breaks and controls."""
    for character in value:
        if character in LINE_BREAKS:
            raise PermanentDeliveryError(f"{what} contains a line break")
        code = ord(character)
        if (code < 0x20 and character != "\t") or code == 0x7F:
            raise PermanentDeliveryError(f"{what} contains the control character U+{code:04X}")
        if 0xD800 <= code <= 0xDFFF:
            raise PermanentDeliveryError(f"{what} contains an unpaired surrogate U+{code:04X}")
    return value.strip()


def _unquote_display_name(raw: str) -> str:
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        return re.sub(r"\\(.)", r"\1", raw[1:-1], flags=re.DOTALL)
    if "=?" in raw:
        # An unquoted name may carry RFC 2047 encoded words, as email.utils.formataddr writes.
        try:
            return str(make_header(decode_header(raw)))
        except (ValueError, LookupError, UnicodeDecodeError):
            return raw
    return raw


def parse_address(
    value: str, what: str = "address", *, globally_deliverable: bool = True
) -> MailAddress:
    """Split a formatted address into display name and address; raise when invalid.

    ``globally_deliverable=False`` also admits private host names such as ``localhost``,
    which email-validator 2.4 rejects as special-use, because a relay on a private network
    can deliver from them.
    """
    value = _clean(value, f"the {what}")
    match = _NAME_AND_ADDRESS.fullmatch(value)
    if match:
        display_name = _clean(_unquote_display_name(match["name"]), f"the {what} display name")
        # Python's address parser reads a run of spaces and tabs inside an encoded display
        # name back as one space, so names are normalized that way for every provider.
        display_name = _BLANKS.sub(" ", display_name)
        address = match["address"].strip()
    else:
        display_name, address = "", value
    local_part, _, domain = address.rpartition("@")
    private_host = not globally_deliverable and _HOST_NAME.fullmatch(domain) is not None
    try:
        # A private host name is checked by the pattern above; the local part still goes
        # through email-validator, under a stand-in domain.
        validated = validate_email(
            f"{local_part}@example.com" if private_host else address,
            check_deliverability=False,
            allow_smtputf8=False,
        )
    except EmailNotValidError as exc:
        raise PermanentDeliveryError(f"invalid {what}: {exc}") from exc
    if private_host:
        return MailAddress(display_name=display_name, address=f"{local_part}@{domain.lower()}")
    return MailAddress(display_name=display_name, address=validated.ascii_email or address)


@dataclass(frozen=True)
class Recipients:
    to: list[MailAddress]
    cc: list[MailAddress]
    reply_to: MailAddress | None

    @property
    def envelope(self) -> list[str]:
        """Every recipient address once, in order: the SMTP envelope's RCPT TO list."""
        addresses: list[str] = []
        seen: set[str] = set()
        for item in (*self.to, *self.cc):
            if item.address.lower() not in seen:
                seen.add(item.address.lower())
                addresses.append(item.address)
        return addresses


def parse_recipients(email: OutgoingEmail) -> Recipients:
    """Parse To, Cc and Reply-To; raise ``PermanentDeliveryError`` when one is invalid."""
    if not email.to:
        raise PermanentDeliveryError("the message has no To recipient")
    return Recipients(
        to=[parse_address(value, "To address") for value in email.to],
        cc=[parse_address(value, "Cc address") for value in email.cc],
        reply_to=parse_address(email.reply_to, "Reply-To address") if email.reply_to else None,
    )


def extra_headers(email: OutgoingEmail) -> list[tuple[str, str]]:
    """Return the checked ``email.headers`` plus Message-ID, with canonical names.

    Raises ``PermanentDeliveryError`` for a header name outside the known set and ``X-``
    headers, a name given twice in different case, a line break or control character, or an
    invalid Message-ID, Date or list of message ids. Values are stripped of surrounding
    whitespace.
    """
    message_id = _clean(email.message_id, "the Message-ID")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise PermanentDeliveryError("the Message-ID is not of the form <id@domain>")
    checked: list[tuple[str, str]] = [("Message-ID", message_id)]
    seen: set[str] = set()
    for raw_name, raw_value in email.headers.items():
        if raw_name.lower() in seen:
            raise PermanentDeliveryError(f"the header {raw_name!r} is set twice")
        seen.add(raw_name.lower())
        name = _KNOWN_HEADERS.get(raw_name.lower())
        if name is None:
            if not _HEADER_NAME.fullmatch(raw_name):
                raise PermanentDeliveryError(
                    f"the header name {raw_name!r} is not allowed; use a known header or X-"
                )
            name = raw_name
        value = _clean(raw_value, f"the {name} header")
        if name == "Message-ID":
            if value != message_id:
                raise PermanentDeliveryError("the Message-ID header differs from message_id")
            continue
        _check_structured(name, value)
        checked.append((name, value))
    return checked


def _check_structured(name: str, value: str) -> None:
    if name in _MESSAGE_ID_HEADERS:
        ids = value.split()
        if not ids or not all(_MESSAGE_ID.fullmatch(item) for item in ids):
            raise PermanentDeliveryError(f"the {name} header must list ids of the form <id@domain>")
    elif name == "Date":
        try:
            parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise PermanentDeliveryError("the Date header is not an RFC 5322 date") from exc
    elif not name.upper().startswith("X-") and not _QUOTABLE.fullmatch(value):
        raise PermanentDeliveryError(f"the {name} header must be printable ASCII")


class _PreparedHeader(str):
    """A header value that this module encoded and folded; the generator writes it as is.

    The ``str`` value is the unfolded header text, which the ``email.message`` accessors
    read. ``EmailPolicy`` calls ``fold`` for any value that has a ``name`` attribute.
    """

    name: str
    lines: tuple[str, ...]

    def __new__(cls, name: str, lines: Sequence[str]) -> _PreparedHeader:
        self = super().__new__(cls, "".join(lines))
        self.name = name
        self.lines = tuple(lines)
        return self

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: " + policy.linesep.join(self.lines) + policy.linesep

    def __reduce__(self) -> tuple[type[_PreparedHeader], tuple[str, tuple[str, ...]]]:
        # copy.deepcopy and pickle would otherwise call __new__ with the str value alone.
        return (type(self), (self.name, self.lines))


def _prepared(name: str, lines: Sequence[str]) -> _PreparedHeader:
    first = len(name) + 2 + len(lines[0])
    if first > _MAX_LINE or any(len(line) > _MAX_LINE for line in lines[1:]):
        raise PermanentDeliveryError(f"the {name} header has a line over {_MAX_LINE} characters")
    return _PreparedHeader(name, lines)


def _fold_tokens(name: str, tokens: Iterable[str], separator: str) -> list[str]:
    """Join tokens with ``separator``, breaking lines before a token to stay near 78."""
    lines: list[str] = []
    current = ""
    width = _FOLD_WIDTH - len(name) - 2
    for token in tokens:
        if not current and not lines:
            current = token
        elif len(current) + len(separator) + len(token) <= width:
            current += separator + token
        else:
            lines.append(current + separator.rstrip())
            current = " " + token
            width = _FOLD_WIDTH
    lines.append(current)
    return lines


def _fold_text(name: str, value: str) -> list[str] | None:
    """Fold printable ASCII at its whitespace so that unfolding restores it exactly.

    Returns None when a word does not fit in one line.
    """
    lines: list[str] = []
    current = ""
    width = _FOLD_WIDTH - len(name) - 2
    pending_space = ""
    for piece in _WHITESPACE_OR_WORD.findall(value):
        if piece[0] in " \t":
            pending_space = piece
            continue
        if current and len(current) + len(pending_space) + len(piece) > width:
            # The continuation line starts with the run's last blank, so unfolding (which
            # only removes the CRLF) gives back the same run.
            lines.append(current + pending_space[:-1])
            current = pending_space[-1] + piece
            width = _FOLD_WIDTH
        else:
            current += pending_space + piece
        pending_space = ""
    lines.append(current)
    if any(len(line) > _MAX_LINE - len(name) - 2 for line in lines):
        return None
    return lines


def _encoded_words(value: str, first_budget: int = _ENCODED_WORD_BYTES) -> list[str]:
    """Encode ``value`` as RFC 2047 base64 encoded words, splitting only between characters."""
    words: list[str] = []
    chunk = b""
    budget = max(first_budget, 4)
    for character in value:
        encoded = character.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > budget:
            words.append("=?utf-8?b?" + base64.b64encode(chunk).decode("ascii") + "?=")
            chunk = b""
            budget = _ENCODED_WORD_BYTES
        chunk += encoded
    words.append("=?utf-8?b?" + base64.b64encode(chunk).decode("ascii") + "?=")
    return words


def _unstructured(name: str, value: str) -> _PreparedHeader:
    """Subject and ``X-`` headers: plain folded ASCII when that is safe, else encoded words."""
    if _ASCII_TEXT.fullmatch(value) and "=?" not in value:
        lines = _fold_text(name, value)
        if lines is not None:
            return _prepared(name, lines)
    # Readers ignore the folding whitespace between adjacent encoded words (RFC 2047, 6.2).
    first_budget = (_FOLD_WIDTH - len(name) - 2 - 12) // 4 * 3
    words = _encoded_words(value, first_budget)
    return _prepared(name, [words[0], *(" " + word for word in words[1:])])


def _phrase(display_name: str) -> str:
    """Encode a display name as a quoted string, or as one encoded word when not ASCII.

    NOTE: a long non-ASCII name becomes one encoded word longer than the 75 characters of
    RFC 2047. Splitting it cannot satisfy every reader: Python's parser keeps the whitespace
    between encoded words in a display name, while RFC 2047 readers drop it.
    """
    if _QUOTABLE.fullmatch(display_name) and "=?" not in display_name:
        escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return "=?utf-8?b?" + base64.b64encode(display_name.encode("utf-8")).decode("ascii") + "?="


def _address_token(item: MailAddress) -> str:
    if not item.display_name:
        return item.address
    return f"{_phrase(item.display_name)} <{item.address}>"


def _address_header(name: str, items: Sequence[MailAddress]) -> _PreparedHeader:
    return _prepared(name, _fold_tokens(name, [_address_token(item) for item in items], ", "))


def _plain_header(name: str, value: str) -> _PreparedHeader:
    lines = _fold_text(name, value)
    if lines is None:
        raise PermanentDeliveryError(f"the {name} header has a word over {_MAX_LINE} characters")
    return _prepared(name, lines)


def _parameter(name: str, value: str) -> list[str]:
    """Encode one MIME parameter: a quoted string for short ASCII, else RFC 2231 pieces.

    RFC 2231 pieces look like ``filename*0*=utf-8''R%C3%A9sum%C3%A9;`` and are split only
    between characters, so each piece is valid on its own.
    """
    if _QUOTABLE.fullmatch(value) and "=?" not in value and len(value) <= _PARAMETER_PIECE:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return [f'{name}="{escaped}"']
    pieces: list[str] = []
    current = ""
    for character in value:
        encoded = urllib.parse.quote(character, safe=_PARAMETER_SAFE)
        if current and len(current) + len(encoded) > _PARAMETER_PIECE:
            pieces.append(current)
            current = ""
        current += encoded
    pieces.append(current)
    if len(pieces) == 1:
        return [f"{name}*=utf-8''{pieces[0]}"]
    return [
        f"{name}*{index}*=" + ("utf-8''" if index == 0 else "") + piece
        for index, piece in enumerate(pieces)
    ]


def _with_parameters(name: str, value: str, parameters: list[str]) -> _PreparedHeader:
    return _prepared(name, _fold_tokens(name, [value, *parameters], "; "))


def _attachment_part(attachment: Attachment, index: int) -> MIMEPart:
    what = f"attachment {index + 1}"
    filename = _clean(attachment.filename, f"the file name of {what}")
    if not filename:
        raise PermanentDeliveryError(f"the file name of {what} is empty")
    media_type = _clean(attachment.content_type, f"the content type of {what}").lower()
    match = _MEDIA_TYPE.fullmatch(media_type)
    if not match:
        raise PermanentDeliveryError(f"the content type of {what} is not of the form type/subtype")
    if match[1] == "multipart":
        raise PermanentDeliveryError(f"the content type of {what} cannot be multipart/*")
    # NOTE: message/* attachments are base64-encoded too, which RFC 2046 forbids for
    # message/rfc822; common readers still open them.
    part = MIMEPart(policy=SMTP)
    part.set_content(attachment.data, match[1], match[2], cte="base64")
    del part["Content-Type"]
    part.set_raw(
        "Content-Type", _with_parameters("Content-Type", media_type, _parameter("name", filename))
    )
    disposition = "attachment"
    if attachment.content_id is not None:
        content_id = _clean(attachment.content_id, f"the Content-ID of {what}")
        if not _CONTENT_ID.fullmatch(content_id):
            raise PermanentDeliveryError(f"the Content-ID of {what} has characters outside atext")
        part.set_raw("Content-ID", _prepared("Content-ID", [f"<{content_id}>"]))
        disposition = "inline"
    part.set_raw(
        "Content-Disposition",
        _with_parameters("Content-Disposition", disposition, _parameter("filename", filename)),
    )
    return part


def _multipart(subtype: str, parts: list[MIMEPart], parameters: str = "") -> MIMEPart:
    container = MIMEPart(policy=SMTP)
    # The generator adds the boundary parameter when it writes the message.
    container["Content-Type"] = f"multipart/{subtype}{parameters}"
    container.set_payload(list(parts))
    return container


def _build_body(email: OutgoingEmail) -> MIMEPart:
    body = MIMEPart(policy=SMTP)
    try:
        # Quoted-printable keeps the body 7-bit, which SMTP servers without 8BITMIME and
        # Amazon SES's raw messages need.
        body.set_content(email.text, cte="quoted-printable")
        if email.html:
            body.add_alternative(email.html, subtype="html", cte="quoted-printable")
    except UnicodeEncodeError as exc:
        raise PermanentDeliveryError(f"the body is not valid Unicode: {exc.reason}") from exc
    inline = [
        _attachment_part(attachment, index)
        for index, attachment in enumerate(email.attachments)
        if attachment.content_id is not None
    ]
    regular = [
        _attachment_part(attachment, index)
        for index, attachment in enumerate(email.attachments)
        if attachment.content_id is None
    ]
    if inline:
        # RFC 2387 requires the type parameter: the media type of the first part.
        first_type = body.get_content_type()
        body = _multipart("related", [body, *inline], f'; type="{first_type}"')
    if regular:
        body = _multipart("mixed", [body, *regular])
    return body


def build_mime(email: OutgoingEmail, *, now: dt.datetime | None = None) -> EmailMessage:
    """Build the MIME message: mixed > related > alternative, each level only when needed.

    multipart/mixed wraps the rest when there are regular attachments, multipart/related
    when there are inline parts (attachments with a ``content_id``), and
    multipart/alternative contains the text and HTML bodies (text alone when ``html`` is
    empty). A Date header is added from ``now`` (default: the current time) unless
    ``email.headers`` sets one. Raises ``PermanentDeliveryError`` for an invalid address or
    header value; see ``extra_headers``.
    """
    # The From address is the operator's setting (frontdesk@localhost by default), and an
    # SMTP relay may well deliver mail from a private domain.
    sender = parse_address(email.from_address, "From address", globally_deliverable=False)
    recipients = parse_recipients(email)
    subject = _clean(email.subject, "the Subject")
    headers = extra_headers(email)
    body = _build_body(email)

    message = EmailMessage(policy=SMTP)
    message.set_raw("From", _address_header("From", [sender]))
    message.set_raw("To", _address_header("To", recipients.to))
    if recipients.cc:
        message.set_raw("Cc", _address_header("Cc", recipients.cc))
    if recipients.reply_to is not None:
        message.set_raw("Reply-To", _address_header("Reply-To", [recipients.reply_to]))
    message.set_raw("Subject", _unstructured("Subject", subject))
    if not any(name == "Date" for name, _ in headers):
        date = format_datetime(now or dt.datetime.now(dt.UTC))
        message.set_raw("Date", _prepared("Date", [date]))
    for name, value in headers:
        if name.upper().startswith("X-"):
            message.set_raw(name, _unstructured(name, value))
        elif name in _MESSAGE_ID_HEADERS:
            message.set_raw(name, _prepared(name, _fold_tokens(name, value.split(), " ")))
        else:
            message.set_raw(name, _plain_header(name, value))
    message.set_raw("MIME-Version", "1.0")
    for header_name, header_value in body.raw_items():
        message.set_raw(header_name, header_value)
    message.set_payload(body.get_payload())
    return message
