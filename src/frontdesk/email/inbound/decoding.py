"""Text, header, address, date and message-id decoding that never raises.

Each function takes values straight from a message, however malformed, and returns the
best reading it can, appending a short description of every repair to ``defects``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.errors
import email.policy
import email.utils
import quopri
import re
from dataclasses import dataclass
from datetime import UTC, datetime

# Labels that mail software writes for a charset whose Python codec decodes fewer bytes.
# The replacements are supersets (GB18030 contains GB2312 and GBK, Windows-1252 assigns the
# C1 range ISO-8859-1 leaves to control characters), as in the WHATWG Encoding Standard.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
}
_ASCII_LABELS = {"us-ascii", "ascii", "ansi_x3.4-1968", "us", "iso646-us", "7bit", "8bit"}
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
# Header defects worth reporting. Obsolete syntax (such as a period in a display name) is
# common and harmless, and date problems are reported by parse_date.
_REPORTED_HEADER_DEFECTS = (email.errors.InvalidHeaderDefect, email.errors.NonPrintableDefect)

_SURROGATES = re.compile(r"[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_ENCODED_WORD_GAP = re.compile(r"(\?=)\s+(=\?)")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"^[^@\s<>()\",;:]+@[^@\s<>()\",;:]+$")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_FOLDING = re.compile(r"\r?\n[ \t]+")


MAX_STRUCTURED_HEADER_CHARS = 4096
STRUCTURED_HEADER_BUDGET = 64 * 1024


@dataclass
class HeaderBudget:
    """Characters of header text that the modern header parser may still be given.

    That parser's time grows faster than the input for long address lists: a To header of
    42 KB took 0.7 s and one of 86 KB took 2.7 s (CPython 3.11, 2-core VM). Headers over
    ``MAX_STRUCTURED_HEADER_CHARS``, and every header once the budget is spent, take the
    linear fallback, which decodes encoded words but does not check the syntax.
    """

    remaining: int = STRUCTURED_HEADER_BUDGET

    def take(self, value: str) -> bool:
        """Return whether ``value`` may be parsed, and charge it to the budget if so."""
        if len(value) > MAX_STRUCTURED_HEADER_CHARS or len(value) > self.remaining:
            return False
        self.remaining -= len(value)
        return True


def clean_text(value: str) -> str:
    """Return ``value`` without NUL characters and with lone surrogates as U+FFFD.

    PostgreSQL text columns reject NUL, and a lone surrogate cannot be encoded as UTF-8, so
    either would make storing or serializing a parsed message fail later.
    """
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda match: "" if match.group(0) == "\x00" else "\ufffd", value)


def normalize_charset(label: str | None) -> str | None:
    """Return the lower-case charset label without quotes or spaces, or None when blank."""
    if label is None:
        return None
    cleaned = label.strip().strip("\"'").strip().lower()
    return cleaned or None


def codec_for(label: str) -> str | None:
    """Return the Python codec name for a charset label, or None when Python has none."""
    label = _CHARSET_SUPERSETS.get(label, label)
    if label in _ASCII_LABELS:
        return "ascii"
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def decode_text(data: bytes, charset: str | None, defects: list[str], *, what: str) -> str:
    """Decode ``data`` with the declared charset, then UTF-8, then Windows-1252, then Latin-1.

    ``what`` names the part in defect messages. Latin-1 maps every byte, so this never fails.
    """
    label = normalize_charset(charset)
    attempts: list[str] = []
    if label is not None:
        codec = codec_for(label)
        if codec is None:
            defects.append(f"unknown charset {label!r} in {what} replaced")
        else:
            attempts.append(codec)
    attempts.extend(name for name in _FALLBACK_CHARSETS if name not in attempts)

    for index, codec in enumerate(attempts):
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if index > 0 and label is not None and codec_for(label) is not None:
            defects.append(f"{what} is not valid {label}, decoded as {codec}")
        return clean_text(text)
    defects.append(f"{what} decoded as latin-1")
    return clean_text(data.decode("latin-1"))


def decode_raw_bytes(value: str, fallback_charset: str | None) -> str:
    """Decode the raw 8-bit bytes that the parser kept as surrogate escapes in ``value``.

    Headers have no charset of their own, so UTF-8 comes first, then the message's body
    charset (how many mail programs of the 1990s and 2000s wrote headers), then Windows-1252.
    """
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        # A UTF-8 value cut inside its last character (senders truncate long names by
        # bytes) is still UTF-8; only the cut character becomes U+FFFD.
        if error.reason == "unexpected end of data" and error.end == len(raw):
            return raw.decode("utf-8", "replace")
    attempts = ["utf-8"]
    label = normalize_charset(fallback_charset)
    codec = codec_for(label) if label else None
    if codec is not None and codec not in attempts:
        attempts.append(codec)
    attempts.append("cp1252")
    for codec in attempts:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def has_raw_bytes(value: str) -> bool:
    return _SURROGATES.search(value) is not None


def _decode_encoded_word(match: re.Match[str]) -> str:
    charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
    # RFC 2231 allows a language after an asterisk: =?utf-8*en?Q?...?=
    charset = charset.split("*", 1)[0]
    codec = codec_for(normalize_charset(charset) or "") or "utf-8"
    try:
        payload_bytes = payload.encode(codec)
    except (UnicodeEncodeError, LookupError):
        payload_bytes = payload.encode("utf-8", "surrogateescape")
    try:
        if encoding == "b":
            padded = payload_bytes + b"=" * (-len(payload_bytes) % 4)
            data = base64.b64decode(padded)
        else:
            data = quopri.decodestring(payload_bytes.replace(b"_", b" "), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    ignored: list[str] = []
    return decode_text(data, charset, ignored, what="encoded word")


def decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded words that the standard parser left in place.

    The standard parser skips encoded words with raw 8-bit bytes inside them, which several
    mail programs wrote. Whitespace between two adjacent encoded words is dropped, as RFC 2047
    section 6.2 requires.
    """
    if "=?" not in value:
        return value
    joined = _ENCODED_WORD_GAP.sub(r"\1\2", value)
    return _ENCODED_WORD.sub(_decode_encoded_word, joined)


def unfold(value: str) -> str:
    """Join a folded header value onto one line and drop stray line breaks."""
    return _LINE_BREAKS.sub(" ", _FOLDING.sub(" ", value)).strip()


def decode_header_value(
    name: str,
    raw: str,
    defects: list[str],
    *,
    fallback_charset: str | None,
    budget: HeaderBudget | None = None,
) -> str:
    """Return the header as readable text: unfolded, encoded words and raw bytes decoded."""
    value = raw
    if has_raw_bytes(value):
        value = decode_raw_bytes(value, fallback_charset)
        defects.append(f"raw 8-bit bytes in header {name} decoded")
    value = unfold(value)
    if not (budget or HeaderBudget()).take(value):
        return clean_text(decode_encoded_words(value))
    try:
        header = email.policy.default.header_factory(name, value)
        text = str(header)
        if name.lower() != "date" and any(
            isinstance(defect, _REPORTED_HEADER_DEFECTS) for defect in header.defects
        ):
            defects.append(f"malformed header {name}")
    except Exception:
        # Any exception of the modern header parser on hostile input falls back to the
        # unfolded value, which needs no parsing.
        defects.append(f"malformed header {name}")
        text = value
    return clean_text(unfold(decode_encoded_words(text)))


def parse_addresses(
    name: str, value: str, defects: list[str], *, budget: HeaderBudget | None = None
) -> list[tuple[str, str]]:
    """Return (display name, address) pairs, keeping only syntactically plausible addresses.

    ``value`` is the decoded header value. Entries without a usable address, such as the
    ``<>`` of a bounce or a bare host name, are dropped and recorded as defects.
    """
    pairs: list[tuple[str, str]] = []
    candidates: list[tuple[str, str]] = []
    if (budget or HeaderBudget()).take(value):
        try:
            header = email.policy.default.header_factory(name, value)
            candidates = [
                (address.display_name, address.addr_spec)
                for address in getattr(header, "addresses", ())
            ]
        except Exception:
            candidates = email.utils.getaddresses([value])
    else:
        candidates = email.utils.getaddresses([value])
    for display_name, address in candidates:
        address = address.strip().strip("<>").strip()
        display_name = unfold(decode_encoded_words(display_name))
        if _ADDRESS.match(address) is None:
            if address or display_name:
                defects.append(f"invalid address in header {name}")
            continue
        pairs.append((display_name, address))
    if not pairs and value.strip():
        defects.append(f"invalid address in header {name}")
    return pairs


def parse_message_ids(value: str) -> list[str]:
    """Return the message ids of an In-Reply-To or References value, in order, once each.

    Ids are taken from angle brackets. A value without brackets, which some programs send,
    is split on whitespace and commas instead.
    """
    found = _MESSAGE_ID.findall(value)
    if not found:
        found = [token for token in re.split(r"[\s,]+", value) if token]
    stripped = (message_id.strip("<>") for message_id in found)
    return list(dict.fromkeys(message_id for message_id in stripped if message_id))


def parse_message_id(value: str | None) -> str | None:
    """Return the first id of a Message-ID value without its angle brackets."""
    if value is None:
        return None
    ids = parse_message_ids(value)
    return ids[0] if ids else None


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
    """Return the date as an aware datetime, or None with a defect when missing or invalid.

    A date with the unknown zone ``-0000`` is taken as UTC.
    """
    if value is None or not value.strip():
        defects.append("missing date")
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("invalid date")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def is_address(value: str) -> bool:
    return _ADDRESS.match(value) is not None
