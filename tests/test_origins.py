"""Origin normalization shared by the chat widget and the public forms."""

from __future__ import annotations

import pytest

from frontdesk.core.origins import normalize_origin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Studio.Example", "https://studio.example"),
        (" https://studio.example/ ", "https://studio.example"),
        ("https://studio.example:443", "https://studio.example"),
        ("http://studio.example:80", "http://studio.example"),
        ("https://studio.example:8443", "https://studio.example:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origin_normalized_like_browser(value: str, expected: str) -> None:
    assert normalize_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "studio.example",
        "ftp://studio.example",
        "https://studio.example/contact",
        "https://studio.example/?a=1",
        "https://studio.example#top",
        "https://user@studio.example",
        "https://studio.example:0",
        "https://studio.example:99999",
        "https://studio\x00.example",
        "https://studio .example",
        "https://a..example",
    ],
)
def test_origin_invalid_raises(value: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        normalize_origin(value)
