"""Safe base names for attachments, whatever name the sender's message gives."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

MAX_FILENAME_BYTES = 255

# Built-in tables only: ``MimeTypes()`` without file names ignores /etc/mime.types, so the
# fallback extension is the same on every host.
_MIME_TYPES = mimetypes.MimeTypes()
_EXTRA_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/news": ".eml",
    "message/delivery-status": ".txt",
    "message/feedback-report": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
    "application/ms-tnef": ".dat",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
}
# Unicode categories removed from names: control and format characters (such as the
# right-to-left override used to disguise an extension), surrogates, and line or paragraph
# separators.
_REMOVED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def extension_for(content_type: str) -> str:
    """Return the usual extension for a content type, or ``.bin`` when none is known."""
    content_type = content_type.lower()
    if content_type in _EXTRA_EXTENSIONS:
        return _EXTRA_EXTENSIONS[content_type]
    guessed = _MIME_TYPES.guess_extension(content_type)
    return guessed or ".bin"


def _truncate_utf8(name: str, max_bytes: int) -> str:
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = max_bytes - len(suffix.encode("utf-8"))
    encoded = stem.encode("utf-8")[:budget]
    # Cutting bytes can split a character; "ignore" drops the incomplete tail.
    return encoded.decode("utf-8", "ignore").rstrip(" .") + suffix


def safe_filename(name: str | None, *, content_type: str, index: int) -> str:
    """Return a base name that is safe to store and to offer for download.

    The result has no directory part, no control or format characters, no leading dots or
    spaces and at most 255 bytes of UTF-8. Without a usable name, the result is
    ``attachment-<index><extension>`` with the extension of ``content_type``.
    """
    cleaned = ""
    if name:
        normalized = unicodedata.normalize("NFC", name)
        kept = "".join(
            character
            for character in normalized
            if unicodedata.category(character) not in _REMOVED_CATEGORIES
        )
        base = re.split(r"[/\\]", kept)[-1]
        base = _SPACES.sub(" ", base).strip()
        base = base.lstrip(". ").rstrip(". ")
        if _WINDOWS_RESERVED.match(base):
            base = f"_{base}"
        cleaned = _truncate_utf8(base, MAX_FILENAME_BYTES)
    if not cleaned:
        cleaned = f"attachment-{index}{extension_for(content_type)}"
    return cleaned
