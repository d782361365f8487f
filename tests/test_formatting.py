"""Message formatting: the Markdown subset and the shortcut for plain lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.conversations import formatting
from frontdesk.conversations.formatting import render_markdown


def full_render(body: str) -> str:
    """Render without the plain-text shortcut."""
    original = formatting._is_plain
    formatting._is_plain = lambda _body: False
    try:
        return render_markdown(body)
    finally:
        formatting._is_plain = original


# Letters and digits of many scripts and the punctuation the shortcut accepts: most such
# strings take the shortcut.
_PLAIN_ALPHABET = st.one_of(
    st.characters(categories=["Lu", "Ll", "Lo", "Nd", "Nl", "No", "Lm"]),
    st.sampled_from(sorted(formatting._PLAIN_PUNCTUATION)),
)
# Besides those, characters the shortcut must reject, so that both paths are exercised.
_ALPHABET = st.one_of(
    _PLAIN_ALPHABET,
    st.characters(categories=["Mn", "Zs", "Cc", "P", "S"]),
    st.sampled_from(list('*_~`[]<>&"#!|\\\t\n\u00a0')),
)


@settings(max_examples=600, deadline=None)
@given(st.text(_PLAIN_ALPHABET, min_size=1, max_size=60))
def test_shortcut_matches_parser_on_plain_text(body: str) -> None:
    assert render_markdown(body) == full_render(body)


def test_shortcut_matches_parser_on_punctuation_pairs() -> None:
    marks = sorted(formatting._PLAIN_PUNCTUATION)
    for first in marks:
        for second in ["", *marks]:
            for body in (f"a{first}{second}b", f"a {first}{second} b", f"a{first}{second}"):
                assert render_markdown(body) == full_render(body), body


@settings(max_examples=600, deadline=None)
@given(st.text(_ALPHABET, min_size=1, max_size=60))
def test_shortcut_matches_parser_on_any_text(body: str) -> None:
    assert render_markdown(body) == full_render(body)


@pytest.mark.parametrize(
    "body",
    [
        "Thanks for getting back to us, the studio is free on Tuesday from two until six.",
        "Can we move it to 3:30? It's 20% off (until Friday) for alice@example.com",
        "Señora Müller, ваш заказ готов; 東京 1-2-3",
    ],
)
def test_shortcut_taken_for_plain_lines(body: str) -> None:
    assert formatting._is_plain(body)
    assert render_markdown(body) == full_render(body) == f"<p>{body}</p>"


@pytest.mark.parametrize(
    "body",
    [
        "1. first",
        "- item",
        "+ item",
        "see *this*",
        "a <b>tag</b>",
        "fish & chips",
        'say "hi"',
        "two\nlines",
        "    indented code",
        "trailing space ",
        "https://example.com/a_b",
    ],
)
def test_shortcut_skipped_for_markup(body: str) -> None:
    assert not formatting._is_plain(body)
    assert render_markdown(body) == full_render(body)


def test_render_markdown_emphasis() -> None:
    assert render_markdown("see *this*") == "<p>see <em>this</em></p>"


def test_render_markdown_link_and_raw_html() -> None:
    html = render_markdown("[site](https://example.com) <script>x</script>")

    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">site</a>' in html
    assert "<script>" not in html
