"""Checks on decoded JSON text that the JSON parser itself lets through."""

from __future__ import annotations

import re
from typing import Any

# Python's json module turns an escape such as "\ud800" into a lone UTF-16 surrogate. Such a
# string cannot be encoded as UTF-8, so storing it, or putting it in a response, fails.
_SURROGATE = re.compile("[\ud800-\udfff]")

SURROGATE_MESSAGE = (
    "The text contains an unpaired UTF-16 surrogate (an escape from \\ud800 to \\udfff "
    "without its pair); send valid Unicode text."
)


def unpaired_surrogate_path(value: Any, path: str = "") -> str | None:
    """Return the dotted path of the first string in ``value`` that contains a lone surrogate,
    "" for ``value`` itself, or None when there is none.

    A bad object key gives the path of its object, since the key cannot be shown.
    """
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _SURROGATE.search(key):
                return path
            found = unpaired_surrogate_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unpaired_surrogate_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
