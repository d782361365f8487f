"""Parse a raw inbound message into a ``ParsedEmail`` without ever raising.

The standard library parser (``email.policy.default``) reads the structure. Everything it
leaves undecoded or rejects is repaired here per header and per part: raw 8-bit headers,
unknown charsets, broken transfer encodings, unusable addresses. Each repair is recorded as
a short defect string, so that the caller can store or log what was wrong with a message.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from typing import Any

from frontdesk.email.inbound.decoding import (
    HeaderBudget,
    clean_text,
    decode_encoded_words,
    decode_header_value,
    decode_raw_bytes,
    decode_text,
    has_raw_bytes,
    parse_addresses,
    parse_date,
    parse_message_id,
    parse_message_ids,
    unfold,
)
from frontdesk.email.inbound.filenames import safe_filename
from frontdesk.email.inbound.html_text import html_to_text

_ENCLOSED_MESSAGE_TYPES = {"message/rfc822", "message/global", "message/news"}
_KNOWN_TRANSFER_ENCODINGS = {
    "7bit",
    "8bit",
    "binary",
    "base64",
    "quoted-printable",
    "uuencode",
    "x-uuencode",
    "uue",
    "x-uue",
}
_CAMEL_CASE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_LINE_ENDINGS = re.compile(r"\r\n?")
_INVALID_QP_ESCAPE = re.compile(r"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*$)")
# A message has one To and one Cc header; more are tolerated up to this count, beyond
# which they only cost parsing time.
_MAX_ADDRESS_HEADERS = 32
_INVALID_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work one message may cause; content past a bound is cut and recorded.

    The defaults allow any message that common providers accept (their limits are 25 to
    50 MB) while keeping a crafted message from using unbounded memory or recursion.
    """

    max_message_bytes: int = 64 * 1024 * 1024
    max_depth: int = 24
    max_parts: int = 512
    max_decoded_bytes: int = 96 * 1024 * 1024


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class InboundAttachment:
    """A file of an inbound message, decoded from its transfer encoding.

    ``inline`` is true for a part with a Content-ID that the HTML body references as
    ``cid:``. Such a part is shown inside the body rather than listed as a file.
    """

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ParsedEmail:
    """An inbound message reduced to what a conversation needs.

    Addresses are (display name, address) pairs. ``text`` is always a string: the
    text/plain body, else text generated from the HTML body, else empty. ``part_count``
    counts MIME parts including the message itself; an enclosed message counts as one.
    """

    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    from_name: str
    from_address: str | None
    sender: str | None
    reply_to: list[str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    date: datetime | None
    text: str
    html: str | None
    attachments: list[InboundAttachment]
    headers: list[tuple[str, str]]
    defects: list[str]
    raw_size: int
    content_type: str = "text/plain"
    part_count: int = 1

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (any case), or None when absent."""
        wanted = name.lower()
        for header_name, value in self.headers:
            if header_name.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for header_name, value in self.headers if header_name.lower() == wanted]


def describe_defect(defect: object) -> str:
    """Turn a standard library defect such as ``InvalidBase64PaddingDefect`` into words."""
    name = type(defect).__name__.removesuffix("Defect")
    words = _CAMEL_CASE.sub(" ", name).lower()
    detail = str(defect).strip()
    if detail and len(detail) <= 80:
        return f"{words}: {detail}"
    return words


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _raw_header(part: Message, name: str) -> str | None:
    wanted = name.lower()
    for header_name, value in part.raw_items():
        if header_name.lower() == wanted:
            return str(value)
    return None


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value) if value is not None else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _filename(part: Message, defects: list[str]) -> str | None:
    """Return the file name of a part from Content-Disposition, else from Content-Type.

    Content-Type ``filename`` is not standard, but Outlook writes it on inline images.

    The compat32 parameter parser is used because the modern one treats backslashes as
    quoting, which turns the Windows path ``C:\\TEMP\\a.png`` of some senders into
    ``C:TEMPa.png``. Encoded words, which RFC 2047 forbids in parameters but several mail
    programs write, and raw 8-bit bytes are decoded afterwards.
    """
    candidates = (
        ("content-disposition", "filename"),
        ("content-type", "name"),
        ("content-type", "filename"),
    )
    for header, parameter in candidates:
        raw = _raw_header(part, header)
        if raw is None:
            continue
        if has_raw_bytes(raw):
            raw = decode_raw_bytes(raw, _param(part, "charset"))
            defects.append(f"raw 8-bit bytes in {parameter} parameter decoded")
        holder = Message(policy=email.policy.compat32)
        try:
            holder[header] = raw
            value = holder.get_param(parameter, header=header)
            if isinstance(value, tuple):
                value = email.utils.collapse_rfc2231_value(value)
        except Exception:
            defects.append(f"malformed {parameter} parameter")
            continue
        if not value:
            continue
        name = decode_encoded_words(unfold(str(value)))
        if name:
            return name
    return None


def _message_bytes(message: Message) -> bytes:
    """Serialize an enclosed message as close to its source form as the parser allows."""
    for policy in (email.policy.compat32, email.policy.default):
        buffer = io.BytesIO()
        try:
            BytesGenerator(buffer, mangle_from_=False, policy=policy).flatten(message)
        except Exception:  # noqa: S112 - the other policy or an empty result is the fallback
            continue
        return buffer.getvalue()
    return b""


def unflow(text: str, *, delete_space: bool) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    output: list[str] = []
    pending: tuple[int, str] | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            depth, content = pending
            prefix = ">" * depth + (" " if depth else "")
            output.append(prefix + content)
            pending = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if soft and delete_space:
            content = content[:-1]
        if pending is not None and pending[0] == depth:
            pending = (depth, pending[1] + content)
        else:
            flush()
            pending = (depth, content)
        if not soft:
            flush()
    flush()
    return "\n".join(output)


@dataclass
class _PendingAttachment:
    filename: str | None
    content_type: str
    data: bytes
    content_id: str | None


@dataclass
class _Walker:
    """Collect body texts and attachments of a message tree within ``limits``."""

    limits: ParseLimits
    defects: list[str]
    part_count: int = 0
    decoded_bytes: int = 0
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[_PendingAttachment] = field(default_factory=list)
    enclosed: list[Message] = field(default_factory=list)
    cut_parts: bool = False
    cut_depth: bool = False
    cut_size: bool = False

    def visit(self, part: Message, depth: int) -> None:
        if self.part_count >= self.limits.max_parts:
            if not self.cut_parts:
                self.defects.append(f"parts cut after {self.limits.max_parts}")
                self.cut_parts = True
            return
        if depth > self.limits.max_depth:
            if not self.cut_depth:
                self.defects.append(f"nesting cut at depth {self.limits.max_depth}")
                self.cut_depth = True
            return
        self.part_count += 1
        content_type = _content_type(part)
        payload = part.get_payload()
        if content_type.startswith("multipart/") and isinstance(payload, list):
            self._describe_defects(part)
            self._visit_children(content_type, payload, depth)
            return

        if content_type.startswith("multipart/"):
            # A multipart whose boundary never appears: the parser keeps the body as text.
            self._visit_leaf(part, "text/plain")
        elif content_type.startswith("message/") and isinstance(payload, list):
            self._visit_message(part, content_type, payload)
        else:
            self._visit_leaf(part, content_type)
        # Described after decoding, because decoding adds the base64 defects to the part.
        self._describe_defects(part)

    def _describe_defects(self, part: Message) -> None:
        self.defects.extend(describe_defect(defect) for defect in part.defects)

    def _visit_children(self, content_type: str, children: list[Any], depth: int) -> None:
        skipped: set[int] = set()
        if content_type == "multipart/alternative":
            # RFC 2046 orders alternatives from plainest to richest, so the last plain text
            # and the last HTML alternative are the ones to keep.
            for wanted in ("text/plain", "text/html"):
                indexes = [
                    index
                    for index, child in enumerate(children)
                    if isinstance(child, Message) and _content_type(child) == wanted
                ]
                skipped.update(indexes[:-1])
        for index, child in enumerate(children):
            if index in skipped:
                self.part_count += 1
                continue
            if isinstance(child, Message):
                self.visit(child, depth + 1)

    def _visit_message(self, part: Message, content_type: str, payload: list[Any]) -> None:
        messages = [item for item in payload if isinstance(item, Message)]
        if content_type in _ENCLOSED_MESSAGE_TYPES:
            self.enclosed.extend(messages[:1])
            data = _message_bytes(messages[0]) if messages else b""
        else:
            # message/delivery-status holds one block of fields per recipient, which the
            # parser turns into one header-only message each.
            data = b"".join(_message_bytes(message) for message in messages)
        self._add_attachment(part, content_type, data)

    def _visit_leaf(self, part: Message, content_type: str) -> None:
        data = self._decode_payload(part)
        disposition = _disposition(part)
        has_file_name = _param(part, "filename", "content-disposition") is not None
        is_body = (
            content_type in ("text/plain", "text/html")
            and disposition != "attachment"
            and not has_file_name
        )
        if not is_body:
            self._add_attachment(part, content_type, data)
            return
        if not self._reserve(len(data), "body text"):
            return
        charset = _param(part, "charset")
        text = decode_text(data, charset, self.defects, what=f"{content_type} part")
        text = _LINE_ENDINGS.sub("\n", text)
        if content_type == "text/html":
            self.html.append(text)
            return
        if (_param(part, "format") or "").lower() == "flowed":
            delete_space = (_param(part, "delsp") or "").lower() == "yes"
            text = unflow(text, delete_space=delete_space)
        self.plain.append(text)

    def _decode_payload(self, part: Message) -> bytes:
        encoding = (_raw_header(part, "content-transfer-encoding") or "").strip().lower()
        if encoding and encoding not in _KNOWN_TRANSFER_ENCODINGS:
            self.defects.append(f"unknown transfer encoding {encoding[:40]!r} kept as is")
        raw_payload = part.get_payload()
        if encoding == "quoted-printable" and isinstance(raw_payload, str):
            if _INVALID_QP_ESCAPE.search(raw_payload):
                self.defects.append("invalid quoted-printable escape kept as is")
        elif encoding == "base64" and isinstance(raw_payload, str):
            if _INVALID_BASE64.search(raw_payload):
                self.defects.append("invalid characters in base64 part skipped")
        try:
            data = part.get_payload(decode=True)
        except Exception:
            self.defects.append("undecodable part body kept as is")
            raw = part.get_payload()
            return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        return data if isinstance(data, bytes) else b""

    def _reserve(self, size: int, what: str) -> bool:
        if self.decoded_bytes + size > self.limits.max_decoded_bytes:
            if not self.cut_size:
                self.defects.append(
                    f"{what} dropped: decoded size limit of "
                    f"{self.limits.max_decoded_bytes} bytes reached"
                )
                self.cut_size = True
            return False
        self.decoded_bytes += size
        return True

    def _add_attachment(self, part: Message, content_type: str, data: bytes) -> None:
        if not self._reserve(len(data), "attachment"):
            return
        content_id = parse_message_id(_raw_header(part, "content-id"))
        self.attachments.append(
            _PendingAttachment(
                filename=_filename(part, self.defects),
                content_type=content_type,
                data=data,
                content_id=content_id,
            )
        )


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for header_name, value in headers:
        if header_name.lower() == wanted:
            return value
    return None


def _all(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for header_name, value in headers if header_name.lower() == wanted]


def _address_headers(headers: list[tuple[str, str]], name: str, defects: list[str]) -> list[str]:
    """Return the values of an address header, at most ``_MAX_ADDRESS_HEADERS`` of them."""
    values = _all(headers, name)
    if len(values) > _MAX_ADDRESS_HEADERS:
        defects.append(f"{name} headers cut after {_MAX_ADDRESS_HEADERS}")
    return values[:_MAX_ADDRESS_HEADERS]


def _header_charset(message: Message) -> str | None:
    """Return the charset of the first text part, the best guess for raw 8-bit headers."""
    try:
        for part in message.walk():
            if _content_type(part).startswith("text/"):
                charset = _param(part, "charset")
                if charset:
                    return charset
    except Exception:
        return None
    return None


def _parse_tree(data: bytes, defects: list[str]) -> Message:
    try:
        return BytesParser(policy=email.policy.default).parsebytes(data)
    except Exception as error:
        defects.append(f"message structure unreadable ({type(error).__name__}), headers only")
    return BytesParser(policy=email.policy.default).parsebytes(data, headersonly=True)


def decode_headers(
    message: Message, defects: list[str], budget: HeaderBudget | None = None
) -> list[tuple[str, str]]:
    """Return the (name, decoded value) pairs of the top-level headers of ``message``."""
    charset = _header_charset(message)
    budget = budget or HeaderBudget()
    headers: list[tuple[str, str]] = []
    for name, raw in message.raw_items():
        value = decode_header_value(
            str(name), str(raw), defects, fallback_charset=charset, budget=budget
        )
        headers.append((str(name), value))
    return headers


def _assemble_text(walker: _Walker, defects: list[str]) -> tuple[str, str | None]:
    html = "\n".join(walker.html) if walker.html else None
    if walker.plain:
        return "\n\n".join(text.rstrip() for text in walker.plain if text.strip()), html
    if html is not None:
        return html_to_text(html), html
    for enclosed in walker.enclosed[:1]:
        inner = _Walker(limits=walker.limits, defects=defects, part_count=walker.part_count)
        inner.visit(enclosed, 1)
        text, inner_html = _assemble_text(inner, defects)
        return text, inner_html
    return "", None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _parse(raw: bytes, limits: ParseLimits) -> ParsedEmail:
    defects: list[str] = []
    data = bytes(raw)
    if len(data) > limits.max_message_bytes:
        defects.append(f"message cut at {limits.max_message_bytes} bytes")
        data = data[: limits.max_message_bytes]

    message = _parse_tree(data, defects)
    budget = HeaderBudget()
    headers = decode_headers(message, defects, budget)

    from_value = _first(headers, "From")
    from_pairs = parse_addresses("From", from_value, defects, budget=budget) if from_value else []
    if from_value is None:
        defects.append("missing From")
    from_name, from_address = from_pairs[0] if from_pairs else ("", None)
    if not from_pairs and from_value:
        # Keep the name of a sender whose address is unusable, such as '"Ann" <>'.
        from_name = decode_encoded_words(email.utils.parseaddr(from_value)[0])
    sender_value = _first(headers, "Sender")
    sender_pairs = (
        parse_addresses("Sender", sender_value, defects, budget=budget) if sender_value else []
    )
    reply_to = [
        address
        for value in _address_headers(headers, "Reply-To", defects)
        for _, address in parse_addresses("Reply-To", value, defects, budget=budget)
    ]
    to = [
        pair
        for value in _address_headers(headers, "To", defects)
        for pair in parse_addresses("To", value, defects, budget=budget)
    ]
    cc = [
        pair
        for value in _address_headers(headers, "Cc", defects)
        for pair in parse_addresses("Cc", value, defects, budget=budget)
    ]

    walker = _Walker(limits=limits, defects=defects)
    walker.visit(message, 0)
    text, html = _assemble_text(walker, defects)
    html_lower = html.lower() if html else ""
    attachments = [
        InboundAttachment(
            filename=safe_filename(
                pending.filename, content_type=pending.content_type, index=position
            ),
            content_type=pending.content_type,
            data=pending.data,
            content_id=pending.content_id,
            inline=bool(pending.content_id) and f"cid:{pending.content_id}".lower() in html_lower,
        )
        for position, pending in enumerate(walker.attachments, start=1)
    ]

    return ParsedEmail(
        message_id=parse_message_id(_first(headers, "Message-ID")),
        in_reply_to=_unique(
            message_id
            for value in _all(headers, "In-Reply-To")
            for message_id in parse_message_ids(value)
        ),
        references=_unique(
            message_id
            for value in _all(headers, "References")
            for message_id in parse_message_ids(value)
        ),
        from_name=from_name,
        from_address=from_address,
        sender=sender_pairs[0][1] if sender_pairs else None,
        reply_to=_unique(reply_to),
        to=to,
        cc=cc,
        subject=_first(headers, "Subject") or "",
        date=parse_date(_first(headers, "Date"), defects),
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        defects=_unique(clean_text(defect) for defect in defects),
        raw_size=len(raw),
        content_type=_content_type(message),
        part_count=walker.part_count,
    )


def _unparsable(raw: bytes, error: Exception) -> ParsedEmail:
    body = bytes(raw).partition(b"\n\n")[2][: DEFAULT_LIMITS.max_decoded_bytes]
    return ParsedEmail(
        message_id=None,
        in_reply_to=[],
        references=[],
        from_name="",
        from_address=None,
        sender=None,
        reply_to=[],
        to=[],
        cc=[],
        subject="",
        date=None,
        text=clean_text(body.decode("utf-8", "replace")),
        html=None,
        attachments=[],
        headers=[],
        defects=[f"message could not be parsed ({type(error).__name__})"],
        raw_size=len(raw),
        content_type="text/plain",
        part_count=0,
    )


def parse_message(raw: bytes, *, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedEmail:
    """Parse a raw RFC 5322 message without raising, whatever ``raw`` contains.

    Repairs and cuts are listed in ``ParsedEmail.defects``. A structure that the standard
    parser cannot read (such as one nested deeper than Python's recursion limit) is read as
    headers and a plain body. Any other unexpected error gives a result that contains the
    raw body as text and one defect naming the error.
    """
    try:
        return _parse(raw, limits)
    except Exception as error:
        return _unparsable(raw, error)
