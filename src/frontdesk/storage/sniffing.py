"""Content types read from the bytes, never from the client's claim or the key's extension."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator

import filetype

from frontdesk.core.errors import ValidationFailed

# Enough for every signature that the filetype library checks (it reads at most 8 KiB).
SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"
TEXT_TYPES = ("text/plain", "text/csv")


class UnsupportedMediaType(ValidationFailed):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"

    def __init__(self, message: str) -> None:
        super().__init__("content", message, "unsupported_media_type")
        self.code = "unsupported_media_type"


def type_allowed(content_type: str, allowed: list[str] | None) -> bool:
    """Return whether ``content_type`` matches one of the bucket's types or ``type/*`` patterns."""
    if allowed is None:
        return True
    for pattern in allowed:
        if pattern.endswith("/*"):
            if content_type.startswith(pattern[:-1]):
                return True
        elif content_type == pattern:
            return True
    return False


def _looks_like_text(head: bytes, *, complete: bool) -> bool:
    """Return whether the first bytes decode as UTF-8 text without NUL bytes.

    A multibyte character cut at the end of ``head`` is fine unless the stream ended there.
    """
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def sniff_type(head: bytes, *, complete: bool, claimed: str, key: str) -> str:
    """Return the content type of a stream that starts with ``head``.

    Binary formats come from their signatures. Bytes without a signature are text/plain when
    they are UTF-8, or text/csv when the client claims text/csv or the key ends in ".csv";
    anything else is application/octet-stream. The caller checks the rest of a text stream
    with ``check_utf8``.
    """
    guessed = filetype.guess_mime(head) if head else None
    if guessed:
        return str(guessed)
    if _looks_like_text(head, complete=complete):
        if claimed == "text/csv" or key.lower().endswith(".csv"):
            return "text/csv"
        return "text/plain"
    return OCTET_STREAM


async def check_utf8(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Pass the chunks through, raising UnsupportedMediaType at the first invalid byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        async for chunk in chunks:
            if b"\x00" in chunk:
                raise UnicodeDecodeError("utf-8", chunk, 0, 1, "NUL byte in text")
            decoder.decode(chunk)
            yield chunk
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaType(
            "The content starts as text but is not valid UTF-8 throughout; text uploads must "
            "be UTF-8."
        ) from exc
