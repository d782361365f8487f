"""Validation of object keys and user metadata."""

from __future__ import annotations

import unicodedata

from frontdesk.core.errors import ValidationFailed

MAX_KEY_BYTES = 1024
MAX_METADATA_ENTRIES = 20
MAX_METADATA_BYTES = 1024


def _is_control(character: str) -> bool:
    # Category Cc is exactly C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).
    return unicodedata.category(character) == "Cc"


# The bidirectional embedding, override and isolate controls. They reorder the characters
# that follow, so "invoice\u202efdp.exe" shows as "invoiceexe.pdf".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Characters that show nothing and that no script needs, so "a\u200b.pdf" looks like
# "a.pdf": the soft hyphen, the zero width space, the direction marks (U+200E, U+200F,
# U+061C), the word joiner and invisible operators (U+2060 to U+2064) and U+FEFF. The zero
# width joiner and non-joiner stay allowed: Persian, Indic scripts and emoji sequences use
# them.
_INVISIBLE = frozenset("\u00ad\u200b\u200e\u200f\u061c\u2060\u2061\u2062\u2063\u2064\ufeff")


def normalize_key(key: str, field: str = "key") -> str:
    """Return the key in Unicode NFC form, or raise ValidationFailed naming ``field``.

    Keys are names, never paths: the backend path of an object is built from ids. The rules
    still reject keys that look like traversal, so that exports and clients that map keys to
    files stay safe.
    """
    key = unicodedata.normalize("NFC", key)
    if not key:
        raise ValidationFailed(field, "The key is empty; give the object a name.", "key_empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValidationFailed(
            field, f"The key is longer than {MAX_KEY_BYTES} bytes in UTF-8.", "key_too_long"
        )
    if any(_is_control(character) for character in key):
        raise ValidationFailed(
            field, "The key contains a control character; remove it.", "key_control_character"
        )
    if any(character in _BIDI_CONTROLS for character in key):
        raise ValidationFailed(
            field,
            "The key contains a bidirectional control character (U+202A to U+202E or U+2066 to "
            "U+2069), which can make a name look like another; remove it.",
            "key_bidi_character",
        )
    invisible = next((character for character in key if character in _INVISIBLE), None)
    if invisible is not None:
        raise ValidationFailed(
            field,
            f"The key contains U+{ord(invisible):04X}, a character that does not show, which "
            "can make a name look like another; remove it.",
            "key_invisible_character",
        )
    if "\\" in key:
        raise ValidationFailed(
            field, "The key contains a backslash; separate folders with '/'.", "key_backslash"
        )
    if key.startswith("/"):
        raise ValidationFailed(
            field, "The key starts with '/'; remove the leading slash.", "key_leading_slash"
        )
    segments = key.split("/")
    if any(segment == "" for segment in segments):
        raise ValidationFailed(
            field,
            "The key contains an empty segment ('//' or a trailing '/'); remove the extra '/'.",
            "key_empty_segment",
        )
    if any(segment in (".", "..") for segment in segments):
        raise ValidationFailed(
            field, "The key contains a '.' or '..' segment; use plain names.", "key_dot_segment"
        )
    return key


def validate_metadata(metadata: dict[str, str], field: str = "metadata") -> dict[str, str]:
    """Check the user metadata: up to 20 string pairs of at most 1 KiB in all."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValidationFailed(
            field, f"Use at most {MAX_METADATA_ENTRIES} metadata entries.", "metadata_too_many"
        )
    total = 0
    for name, value in metadata.items():
        if not name:
            raise ValidationFailed(field, "A metadata name is empty.", "metadata_empty_name")
        if any(_is_control(character) for character in name + value):
            raise ValidationFailed(
                field,
                f"The metadata entry '{name}' contains a control character; remove it.",
                "metadata_control_character",
            )
        total += len(name.encode("utf-8")) + len(value.encode("utf-8"))
    if total > MAX_METADATA_BYTES:
        raise ValidationFailed(
            field,
            f"The metadata is {total} bytes in UTF-8; the limit is {MAX_METADATA_BYTES}.",
            "metadata_too_large",
        )
    return metadata
