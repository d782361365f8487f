"""Message formatting: a Markdown subset rendered to HTML that is safe to show anywhere.

Writers use emphasis, strong, strikethrough, inline code, code blocks, links, lists and
quotes. Raw HTML, images, headings and tables are not part of the subset: raw HTML is shown
as text, and the other constructs render as their plain text. The rendered HTML then passes
through nh3 with an allow-list, so nothing outside the subset can reach a browser.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# Longest body accepted, in characters; a longer one is refused with a field error.
MAX_BODY_CHARS = 10_000
# Most files one message carries.
MAX_ATTACHMENTS_PER_MESSAGE = 10

_MARKDOWN = MarkdownIt("zero", {"html": False, "linkify": False, "breaks": True}).enable(
    [
        "emphasis",
        "strikethrough",
        "backticks",
        "fence",
        "code",
        "link",
        "list",
        "blockquote",
        "newline",
        "escape",
        "entity",
        "autolink",
    ]
)

_ALLOWED_TAGS = {
    "p", "br", "em", "strong", "s", "del", "code", "pre", "a", "ul", "ol", "li", "blockquote",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


# Characters that no enabled Markdown rule and no HTML escaping acts on, besides letters
# and digits. Markdown gives a line of only these, starting with a letter, as one paragraph
# of the same text.
_PLAIN_PUNCTUATION = frozenset(" ,.;:?'()/%@$=+-")


def _is_plain(body: str) -> bool:
    return (
        body[:1].isalpha()
        and not body[-1:].isspace()
        and all(char.isalnum() or char in _PLAIN_PUNCTUATION for char in body)
    )


def render_markdown(body: str) -> str:
    """Render a message body to sanitized HTML; links open safely in a new context."""
    if not body.strip():
        return ""
    if _is_plain(body):
        # Most chat messages are one line of plain text: the rendered form is known
        # without running the parser and the sanitizer.
        return f"<p>{body}</p>"
    html = _MARKDOWN.render(body)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def fit_email_text(text: str) -> str:
    """Fit an email's text into a message body, marking where it was cut."""
    text = text.replace("\x00", "")
    if len(text) <= MAX_BODY_CHARS:
        return text
    return text[: MAX_BODY_CHARS - 40].rstrip() + "\n\n[shortened: the full email is stored]"
