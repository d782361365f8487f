"""Convert the inbound-mail webhooks of Postmark, SendGrid, Mailgun and SES to ParsedEmail.

When a provider sends the whole MIME message, it goes through ``parse_message`` like an
uploaded or polled message. Otherwise the provider's parsed fields are mapped one by one.
These functions check the shape of a payload, not its authenticity: verifying the
provider's signature is the caller's job. A malformed payload raises
``InboundPayloadError``, whose ``field`` names the offending field.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import json
from collections.abc import Mapping, Sequence
from email.parser import BytesHeaderParser
from typing import Any

from frontdesk.core.text import load_json
from frontdesk.email.inbound.decoding import (
    clean_text,
    decode_encoded_words,
    decode_text,
    parse_addresses,
    parse_date,
    parse_message_id,
    parse_message_ids,
    unfold,
)
from frontdesk.email.inbound.filenames import safe_filename
from frontdesk.email.inbound.html_text import html_to_text
from frontdesk.email.inbound.parse import (
    InboundAttachment,
    ParsedEmail,
    decode_headers,
    parse_message,
)

FieldValue = str | bytes
UploadedFile = tuple[str, str, bytes]


class InboundPayloadError(ValueError):
    """A provider payload that lacks a required field or has one of the wrong form."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid inbound payload: {field} {problem}")
        self.field = field
        self.problem = problem


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _header_value(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for header_name, value in headers:
        if header_name.lower() == wanted:
            return value
    return None


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for header_name, value in headers if header_name.lower() == wanted]


def _assemble(
    *,
    headers: list[tuple[str, str]],
    from_value: str | None,
    to_value: str | None,
    cc_value: str | None,
    subject: str | None,
    text: str | None,
    html: str | None,
    attachments: list[InboundAttachment],
    raw_size: int,
    defects: list[str],
    message_id: str | None = None,
    date_value: str | None = None,
) -> ParsedEmail:
    """Build a ``ParsedEmail`` from provider fields, preferring them over the header list."""
    headers = [(clean_text(name), clean_text(value)) for name, value in headers]
    from_value, to_value, cc_value = (
        clean_text(value) if value is not None else None
        for value in (from_value, to_value, cc_value)
    )
    from_value = from_value if from_value is not None else _header_value(headers, "From")
    if from_value is None:
        defects.append("missing From")
    from_pairs = parse_addresses("From", from_value, defects) if from_value else []

    sender_value = _header_value(headers, "Sender")
    sender_pairs = parse_addresses("Sender", sender_value, defects) if sender_value else []
    to_value = to_value if to_value is not None else _header_value(headers, "To")
    cc_value = cc_value if cc_value is not None else _header_value(headers, "Cc")
    reply_to = [
        address
        for value in _header_values(headers, "Reply-To")
        for _, address in parse_addresses("Reply-To", value, defects)
    ]

    html_lower = (html or "").lower()
    marked = [
        InboundAttachment(
            filename=item.filename,
            content_type=item.content_type,
            data=item.data,
            content_id=item.content_id,
            inline=bool(item.content_id) and f"cid:{item.content_id}".lower() in html_lower,
        )
        for item in attachments
    ]
    text = clean_text(text) if text else None
    html = clean_text(html) if html else None
    content_type = _structure_type(text=text, html=html, attachments=attachments)
    part_count = _structure_part_count(text=text, html=html, attachments=attachments)
    if not text and html:
        text = html_to_text(html)

    return ParsedEmail(
        message_id=message_id or parse_message_id(_header_value(headers, "Message-ID")),
        in_reply_to=_unique(
            [
                message_id
                for value in _header_values(headers, "In-Reply-To")
                for message_id in parse_message_ids(value)
            ]
        ),
        references=_unique(
            [
                message_id
                for value in _header_values(headers, "References")
                for message_id in parse_message_ids(value)
            ]
        ),
        from_name=from_pairs[0][0] if from_pairs else "",
        from_address=from_pairs[0][1] if from_pairs else None,
        sender=sender_pairs[0][1] if sender_pairs else None,
        reply_to=_unique(reply_to),
        to=parse_addresses("To", to_value, defects) if to_value else [],
        cc=parse_addresses("Cc", cc_value, defects) if cc_value else [],
        subject=clean_text(unfold(decode_encoded_words(subject or ""))),
        date=parse_date(
            date_value if date_value is not None else _header_value(headers, "Date"), defects
        ),
        text=(text or "").replace("\r\n", "\n").replace("\r", "\n"),
        html=html or None,
        attachments=marked,
        headers=headers,
        defects=_unique(defects),
        raw_size=raw_size,
        content_type=content_type,
        part_count=part_count,
    )


def _structure_type(
    *, text: str | None, html: str | None, attachments: list[InboundAttachment]
) -> str:
    """Return the top-level content type a MIME message with these contents would have."""
    if attachments:
        return "multipart/mixed"
    if text and html:
        return "multipart/alternative"
    return "text/html" if html else "text/plain"


def _structure_part_count(
    *, text: str | None, html: str | None, attachments: list[InboundAttachment]
) -> int:
    """Return the MIME part count of that message, counting the message itself."""
    bodies = int(bool(text)) + int(bool(html))
    if not attachments:
        return 1 if bodies <= 1 else 3
    body_parts = bodies if bodies <= 1 else 3
    return 1 + body_parts + len(attachments)


# Postmark ---------------------------------------------------------------------------


def _require_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InboundPayloadError(field, "must be a JSON object")
    return value


def _optional_str(payload: Mapping[str, Any], field: str, *, prefix: str = "") -> str | None:
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InboundPayloadError(prefix + field, "must be a string")
    return value


def _list_of_objects(payload: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    value = payload.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InboundPayloadError(field, "must be a list")
    return [_require_mapping(item, f"{field}[{index}]") for index, item in enumerate(value)]


def _format_address(name: str, address: str) -> str:
    if not name:
        return address
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _postmark_recipients(payload: Mapping[str, Any], field: str) -> str | None:
    entries = _list_of_objects(payload, field)
    if not entries:
        return None
    parts = []
    for index, entry in enumerate(entries):
        address = _optional_str(entry, "Email", prefix=f"{field}[{index}].") or ""
        name = _optional_str(entry, "Name", prefix=f"{field}[{index}].") or ""
        if address:
            parts.append(_format_address(name, address))
    return ", ".join(parts) or None


def _decode_base64(value: object, field: str) -> bytes:
    """Decode base64 that may be wrapped over several lines; anything else is an error."""
    if not isinstance(value, str):
        raise InboundPayloadError(field, "must be a base64 string")
    compact = "".join(value.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InboundPayloadError(field, "is not valid base64") from error


def from_postmark_inbound(json_body: dict[str, Any]) -> ParsedEmail:
    """Parse a Postmark inbound webhook body (the decoded JSON object).

    ``RawEmail`` (sent when the inbound stream has "include raw email content" on) is the
    complete message and is parsed as such. Otherwise the JSON fields are used. Postmark's
    ``MessageID`` is Postmark's own id, so the Message-ID header from ``Headers`` wins
    when present. Attachment content is read from ``Content`` (the documented name) or
    ``Data``.
    """
    payload = _require_mapping(json_body, "body")
    raw_email = _optional_str(payload, "RawEmail")
    if raw_email:
        return parse_message(raw_email.encode("utf-8", "surrogateescape"))

    defects: list[str] = []
    headers: list[tuple[str, str]] = []
    for index, entry in enumerate(_list_of_objects(payload, "Headers")):
        name = _optional_str(entry, "Name", prefix=f"Headers[{index}].")
        if not name:
            raise InboundPayloadError(f"Headers[{index}].Name", "is missing")
        value = _optional_str(entry, "Value", prefix=f"Headers[{index}].") or ""
        headers.append((name, unfold(decode_encoded_words(value))))

    from_full = payload.get("FromFull")
    from_value: str | None
    if from_full is not None:
        from_mapping = _require_mapping(from_full, "FromFull")
        from_value = _format_address(
            _optional_str(from_mapping, "Name", prefix="FromFull.") or "",
            _optional_str(from_mapping, "Email", prefix="FromFull.") or "",
        )
    else:
        from_value = _optional_str(payload, "From")
    if not from_value:
        raise InboundPayloadError("FromFull", "is missing")

    attachments: list[InboundAttachment] = []
    for index, entry in enumerate(_list_of_objects(payload, "Attachments"), start=1):
        field = f"Attachments[{index - 1}]"
        content = entry.get("Content", entry.get("Data"))
        if content is None:
            raise InboundPayloadError(f"{field}.Content", "is missing")
        data = _decode_base64(content, f"{field}.Content")
        content_type = (
            _optional_str(entry, "ContentType", prefix=f"{field}.") or "application/octet-stream"
        ).lower()
        attachments.append(
            InboundAttachment(
                filename=safe_filename(
                    _optional_str(entry, "Name", prefix=f"{field}."),
                    content_type=content_type,
                    index=index,
                ),
                content_type=content_type,
                data=data,
                content_id=parse_message_id(_optional_str(entry, "ContentID", prefix=f"{field}.")),
            )
        )

    reply_to = _optional_str(payload, "ReplyTo")
    if reply_to and _header_value(headers, "Reply-To") is None:
        headers.append(("Reply-To", reply_to))
    text = _optional_str(payload, "TextBody")
    html = _optional_str(payload, "HtmlBody")
    return _assemble(
        headers=headers,
        from_value=from_value,
        to_value=_postmark_recipients(payload, "ToFull") or _optional_str(payload, "To"),
        cc_value=_postmark_recipients(payload, "CcFull") or _optional_str(payload, "Cc"),
        subject=_optional_str(payload, "Subject"),
        text=text,
        html=html,
        attachments=attachments,
        raw_size=len(json.dumps(payload, default=str).encode("utf-8")),
        defects=defects,
        message_id=parse_message_id(_header_value(headers, "Message-ID"))
        or parse_message_id(_optional_str(payload, "MessageID")),
        date_value=_optional_str(payload, "Date"),
    )


# SendGrid ---------------------------------------------------------------------------


def _json_field(fields: Mapping[str, FieldValue], name: str, *, default: Any) -> Any:
    """Return the decoded JSON of a form field, or ``default`` when the field is absent."""
    value = fields.get(name)
    if value is None or value == "" or value == b"":
        return default
    try:
        return load_json(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise InboundPayloadError(name, "is not valid JSON") from error


def _field_text(
    fields: Mapping[str, FieldValue],
    name: str,
    charsets: Mapping[str, Any],
    defects: list[str],
) -> str | None:
    """Return a form field as text; bytes are decoded with the charset ``charsets`` names."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes):
        raise InboundPayloadError(name, "must be a string or bytes")
    charset = charsets.get(name)
    return decode_text(value, charset if isinstance(charset, str) else None, defects, what=name)


def _parse_header_block(block: str, defects: list[str]) -> list[tuple[str, str]]:
    if not block.strip():
        return []
    raw = block.strip("\r\n").encode("utf-8", "surrogateescape") + b"\n\n"
    message = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    return decode_headers(message, defects)


def _file(files: Mapping[str, UploadedFile], key: str) -> UploadedFile:
    entry = files.get(key)
    if entry is None:
        raise InboundPayloadError(key, "is missing from the uploaded files")
    if len(entry) != 3 or not isinstance(entry[2], bytes):
        raise InboundPayloadError(key, "must be (filename, content type, bytes)")
    return entry


def from_sendgrid_inbound(
    fields: Mapping[str, FieldValue], files: Mapping[str, UploadedFile]
) -> ParsedEmail:
    """Parse a SendGrid Inbound Parse POST, in raw or in parsed mode.

    ``fields`` are the form fields and ``files`` the uploaded files as (file name, content
    type, data). In raw mode SendGrid sends the whole message in ``email``. In parsed mode
    ``from``, ``to``, ``cc``, ``subject``, ``text`` and ``html`` come separately, and the
    ``charsets`` JSON names each field's charset. Pass fields as bytes to have them decoded
    with that charset; strings are taken as already decoded.
    """
    charsets_value = _json_field(fields, "charsets", default={})
    if not isinstance(charsets_value, Mapping):
        raise InboundPayloadError("charsets", "must be a JSON object")
    defects: list[str] = []

    raw_email = fields.get("email")
    if raw_email:
        if isinstance(raw_email, str):
            charset = charsets_value.get("email")
            codec = charset if isinstance(charset, str) else "utf-8"
            try:
                raw_bytes = raw_email.encode(codec, "surrogateescape")
            except (LookupError, UnicodeEncodeError):
                raw_bytes = raw_email.encode("utf-8", "surrogateescape")
        else:
            raw_bytes = raw_email
        return parse_message(raw_bytes)

    headers = _parse_header_block(
        _field_text(fields, "headers", charsets_value, defects) or "", defects
    )
    from_value = _field_text(fields, "from", charsets_value, defects)
    if not from_value and _header_value(headers, "From") is None:
        raise InboundPayloadError("from", "is missing")

    info = _json_field(fields, "attachment-info", default={})
    if not isinstance(info, Mapping):
        raise InboundPayloadError("attachment-info", "must be a JSON object")
    content_ids = _json_field(fields, "content-ids", default={})
    if not isinstance(content_ids, Mapping):
        raise InboundPayloadError("content-ids", "must be a JSON object")
    cid_by_key = {str(key): str(cid) for cid, key in content_ids.items()}

    count_value = fields.get("attachments") or "0"
    try:
        count = int(count_value)
    except ValueError as error:
        raise InboundPayloadError("attachments", "must be a whole number") from error
    keys = [f"attachment{number}" for number in range(1, count + 1)]
    keys += [key for key in files if key not in keys]

    attachments: list[InboundAttachment] = []
    for index, key in enumerate(keys, start=1):
        filename, content_type, data = _file(files, key)
        details = info.get(key)
        details = details if isinstance(details, Mapping) else {}
        content_type = str(details.get("type") or content_type or "application/octet-stream")
        content_id = details.get("content-id") or cid_by_key.get(key)
        attachments.append(
            InboundAttachment(
                filename=safe_filename(
                    str(details.get("filename") or filename or ""),
                    content_type=content_type,
                    index=index,
                ),
                content_type=content_type.lower(),
                data=data,
                content_id=parse_message_id(str(content_id)) if content_id else None,
            )
        )

    text = _field_text(fields, "text", charsets_value, defects)
    html = _field_text(fields, "html", charsets_value, defects)
    return _assemble(
        headers=headers,
        from_value=from_value,
        to_value=_field_text(fields, "to", charsets_value, defects),
        cc_value=_field_text(fields, "cc", charsets_value, defects),
        subject=_field_text(fields, "subject", charsets_value, defects),
        text=text,
        html=html,
        attachments=attachments,
        raw_size=sum(len(value) for value in fields.values())
        + sum(len(entry[2]) for entry in files.values()),
        defects=defects,
    )


# Mailgun ----------------------------------------------------------------------------


def from_mailgun_route(
    fields: Mapping[str, FieldValue], files: Mapping[str, UploadedFile]
) -> ParsedEmail:
    """Parse the POST of a Mailgun route's ``forward()`` action.

    A route URL ending in ``mime`` makes Mailgun send the whole message in ``body-mime``.
    Otherwise the fields ``from``, ``To`` header, ``subject``, ``body-plain`` and
    ``body-html`` (or their ``stripped-`` forms when the full ones are absent),
    ``message-headers`` (a JSON list of name and value pairs), ``content-id-map`` and the
    files ``attachment-1`` to ``attachment-<attachment-count>`` are used.
    """
    defects: list[str] = []
    body_mime = fields.get("body-mime")
    if body_mime:
        if isinstance(body_mime, str):
            return parse_message(body_mime.encode("utf-8", "surrogateescape"))
        return parse_message(body_mime)

    no_charsets: dict[str, Any] = {}
    header_list = _json_field(fields, "message-headers", default=[])
    if not isinstance(header_list, list):
        raise InboundPayloadError("message-headers", "must be a JSON list")
    headers: list[tuple[str, str]] = []
    for index, pair in enumerate(header_list):
        if not isinstance(pair, list) or len(pair) != 2:
            raise InboundPayloadError(f"message-headers[{index}]", "must be a [name, value] pair")
        headers.append((str(pair[0]), unfold(decode_encoded_words(str(pair[1])))))

    from_value = _field_text(fields, "from", no_charsets, defects)
    if not from_value and _header_value(headers, "From") is None:
        raise InboundPayloadError("from", "is missing")

    content_id_map = _json_field(fields, "content-id-map", default={})
    if not isinstance(content_id_map, Mapping):
        raise InboundPayloadError("content-id-map", "must be a JSON object")
    cid_by_key = {str(key): str(cid) for cid, key in content_id_map.items()}

    count_value = fields.get("attachment-count") or "0"
    try:
        count = int(count_value)
    except ValueError as error:
        raise InboundPayloadError("attachment-count", "must be a whole number") from error
    attachments: list[InboundAttachment] = []
    for number in range(1, count + 1):
        key = f"attachment-{number}"
        filename, content_type, data = _file(files, key)
        content_type = (content_type or "application/octet-stream").lower()
        content_id = cid_by_key.get(key)
        attachments.append(
            InboundAttachment(
                filename=safe_filename(filename, content_type=content_type, index=number),
                content_type=content_type,
                data=data,
                content_id=parse_message_id(content_id) if content_id else None,
            )
        )

    text = _field_text(fields, "body-plain", no_charsets, defects)
    if text is None:
        text = _field_text(fields, "stripped-text", no_charsets, defects)
    html = _field_text(fields, "body-html", no_charsets, defects)
    if html is None:
        html = _field_text(fields, "stripped-html", no_charsets, defects)
    return _assemble(
        headers=headers,
        from_value=from_value,
        to_value=_field_text(fields, "To", no_charsets, defects),
        cc_value=_field_text(fields, "Cc", no_charsets, defects),
        subject=_field_text(fields, "subject", no_charsets, defects)
        or _header_value(headers, "Subject"),
        text=text,
        html=html,
        attachments=attachments,
        raw_size=sum(len(value) for value in fields.values())
        + sum(len(entry[2]) for entry in files.values()),
        defects=defects,
    )


# Amazon SES -------------------------------------------------------------------------


def from_sns_ses(notification: dict[str, Any]) -> ParsedEmail:
    """Parse an SES receipt notification delivered by an SNS action.

    ``notification`` is either the SNS envelope (whose ``Message`` contains the SES JSON as
    a string) or the SES JSON itself. The message is in ``content``, base64-encoded when the
    action's encoding is ``BASE64`` and plain text when it is ``UTF8``. SES leaves
    ``content`` out for messages over 150 KB; those must be fetched from S3 instead, and
    this raises an error naming ``content``. Checking the SNS signature is the caller's job.
    """
    envelope = _require_mapping(notification, "notification")
    ses: Mapping[str, Any] = envelope
    if "Message" in envelope:
        message = envelope["Message"]
        if isinstance(message, str):
            try:
                ses = _require_mapping(load_json(message), "Message")
            except ValueError as error:
                raise InboundPayloadError("Message", "is not valid JSON") from error
        else:
            ses = _require_mapping(message, "Message")

    notification_type = ses.get("notificationType")
    if notification_type != "Received":
        raise InboundPayloadError("notificationType", f"is {notification_type!r}, not 'Received'")
    content = ses.get("content")
    if not isinstance(content, str) or not content:
        raise InboundPayloadError("content", "is missing (the message may be stored in S3)")

    receipt = ses.get("receipt")
    encoding = "BASE64"
    if receipt is not None:
        action = _require_mapping(receipt, "receipt").get("action")
        if action is not None:
            encoding = str(_require_mapping(action, "receipt.action").get("encoding") or encoding)
    if encoding.upper() == "UTF8":
        return parse_message(content.encode("utf-8", "surrogateescape"))
    return parse_message(_decode_base64(content, "content"))
