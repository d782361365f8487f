"""Checks on decoded JSON text that the JSON parser itself lets through."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Python's json module turns an escape such as "\ud800" into a lone UTF-16 surrogate. Such a
# string cannot be encoded as UTF-8, so storing it, or putting it in a response, fails.
_SURROGATE = re.compile("[\ud800-\udfff]")

SURROGATE_MESSAGE = (
    "The text contains an unpaired UTF-16 surrogate (an escape from \\ud800 to \\udfff "
    "without its pair); send valid Unicode text."
)


# PostgreSQL's text types cannot hold NUL, so no field accepts it.
_NUL = re.compile("\x00")

NUL_MESSAGE = "The text contains a NUL character (\\u0000), which cannot be stored; remove it."

NOT_UTF8_MESSAGE = "The body is not UTF-8 text; send JSON encoded as UTF-8."

URL_ENCODING_MESSAGE = (
    "The text is not UTF-8 once percent-decoded; encode it as UTF-8 before percent-encoding."
)


def unpaired_surrogate_path(value: Any) -> str | None:
    """Return the dotted path of the first string in ``value`` that contains a lone surrogate,
    "" for ``value`` itself, or None when there is none.

    A bad object key gives the path of its object, since the key cannot be shown.
    """
    return _first_match(value, _SURROGATE, "")


def nul_path(value: Any) -> str | None:
    """Return the dotted path of the first string in ``value`` that contains NUL, like
    unpaired_surrogate_path."""
    return _first_match(value, _NUL, "")


def _first_match(value: Any, pattern: re.Pattern[str], path: str) -> str | None:
    if isinstance(value, str):
        return path if pattern.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and pattern.search(key):
                return path
            found = _first_match(item, pattern, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_match(item, pattern, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def is_blank(text: str) -> bool:
    """Return whether ``text`` has nothing a reader would see: only whitespace and invisible
    format characters such as the zero-width space (U+200B) and the byte order mark."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


class JsonTooDeep(ValueError):
    """JSON whose arrays or objects nest deeper than Python's parser goes."""


def load_json(data: str | bytes) -> Any:
    """Parse JSON text from a client. Nesting too deep for the parser raises JsonTooDeep, a
    ValueError like every other invalid JSON, instead of RecursionError."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise JsonTooDeep("The JSON nests arrays or objects too deep to parse.") from exc
