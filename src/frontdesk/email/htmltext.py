"""Derive the plain text part of an email from its HTML with the standard library parser.

The text reads like the HTML as a mail client shows it:

- paragraphs, divs, lists, tables and other blocks are separated by a blank line, and
  ``<br>`` becomes a line break;
- list items start with ``- `` or, in ordered lists, with their number (``1. ``), and
  nested lists are indented by the width of that marker;
- a link becomes ``text (url)``, or only the URL when the text is the URL or empty.
  For ``mailto:`` and ``tel:`` links the address without the scheme counts as the URL;
- an image becomes its alt text;
- each table row is one line, its cells separated by `` | ``, unless a cell has several
  lines: such a row is layout, and its cells become blocks;
- ``h1`` and ``h2`` headings are underlined with ``=`` and ``-`` (Setext style, which
  plain text readers know from Markdown), and ``h3`` to ``h6`` are plain paragraphs;
- a blockquote gets ``> `` before each line, ``<pre>`` keeps its whitespace and ``<hr>``
  becomes a line of dashes;
- the content of ``script``, ``style``, ``title``, ``template`` and ``noscript`` is
  dropped, character references are decoded and runs of whitespace collapse to one space;
- links with a scheme that nh3 does not allow by default, such as ``javascript:``, lose
  their URL and keep their text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser

import nh3

__all__ = ["MAX_HTML_TAGS", "count_start_tags", "html_to_text"]

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "dl", "dt",
        "div", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "body", "html",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
# Blocks whose children are joined by one line break instead of a blank line.
_LINE_JOINED = frozenset({"ul", "ol", "table", "thead", "tbody", "tfoot", "li"})
_TABLE_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_HORIZONTAL_RULE = "-" * 40
_LINE_BREAK = "\x00"
# The HTML parser of nh3 (html5ever) takes time quadratic in the nesting depth: nh3 0.3.8
# took about 3 s to clean 40,000 nested divs on a 2-core development machine. Depth cannot exceed the number
# of start tags, so this limit bounds that time to a fraction of a second.
MAX_HTML_TAGS = 10_000
_START_TAG = re.compile(r"<[a-zA-Z]")
_ANY_TAG = re.compile(r"<[^<>]*>")
# Blocks nested deeper are read as inline text. The limit keeps the work per tag constant
# for hostile HTML such as 100,000 nested divs, and leaves room for nested layout tables.
MAX_BLOCK_DEPTH = 64


@dataclass
class _Block:
    tag: str
    children: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    item_number: int = 0
    link_href: str | None = None
    link_start: int = 0


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Block] = [_Block("#root")]
        self.skip_depth = 0
        self.pre_depth = 0

    # Parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag in _SKIPPED:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "br":
            self.stack[-1].inline.append(_LINE_BREAK)
        elif tag == "hr":
            self._flush_inline(self.stack[-1])
            self.stack[-1].children.append(_HORIZONTAL_RULE)
        elif tag == "img":
            alt = attributes.get("alt", "").strip()
            if alt:
                self._append_text(alt)
        elif tag == "a":
            block = self.stack[-1]
            block.link_href = attributes.get("href", "").strip() or None
            block.link_start = len(block.inline)
        elif tag in _BLOCKS and len(self.stack) > MAX_BLOCK_DEPTH:
            self._append_text(" ")
        elif tag in _BLOCKS:
            if tag == "li":
                self._close_until({"li"}, stop_at={"ul", "ol"})
            elif tag in ("td", "th"):
                self._close_until({"td", "th"}, stop_at={"tr", "table"})
            elif tag == "tr":
                self._close_until({"tr"}, stop_at={"table"})
            elif tag == "p":
                self._close_until({"p"}, stop_at=_BLOCKS - {"p"})
            self._flush_inline(self.stack[-1])
            self.stack.append(_Block(tag))
            if tag == "pre":
                self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip_depth = max(self.skip_depth - 1, 0)
            return
        if self.skip_depth:
            return
        if tag == "a":
            self._end_link(self.stack[-1])
        elif tag in _BLOCKS and any(block.tag == tag for block in self.stack[1:]):
            # The depth limit keeps this scan short.
            while self.stack[-1].tag != tag:
                self._close_block()
            self._close_block()

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self._append_text(data)

    # Building

    def _append_text(self, text: str) -> None:
        if self.pre_depth:
            self.stack[-1].inline.append(text.replace("\n", _LINE_BREAK))
        else:
            self.stack[-1].inline.append(_SPACES.sub(" ", text))

    def _end_link(self, block: _Block) -> None:
        href = block.link_href
        block.link_href = None
        if href is None:
            return
        text = "".join(block.inline[block.link_start :]).replace(_LINE_BREAK, " ").strip()
        address = re.sub(r"^(mailto|tel):", "", href, flags=re.IGNORECASE)
        if not text:
            block.inline.append(href)
        elif text not in (href, address):
            block.inline.append(f" ({href})")

    def _close_until(self, tags: set[str], stop_at: set[str] | frozenset[str]) -> None:
        """Close an open element of ``tags`` that HTML closes implicitly, such as an
        ``li`` when the next ``li`` starts, unless a ``stop_at`` element is nearer."""
        for position in range(len(self.stack) - 1, 0, -1):
            tag = self.stack[position].tag
            if tag in tags:
                while len(self.stack) > position:
                    self._close_block()
                return
            if tag in stop_at:
                return

    def _close_block(self) -> None:
        block = self.stack.pop()
        if block.tag == "pre":
            self.pre_depth = max(self.pre_depth - 1, 0)
        parent = self.stack[-1]
        if block.tag == "li":
            block.item_number = self._next_item_number()
        text = self._render(block)
        if text:
            parent.children.append(text)

    def _next_item_number(self) -> int:
        for block in reversed(self.stack):
            if block.tag == "ol":
                block.item_number += 1
                return block.item_number
            if block.tag == "ul":
                return 0
        return 0

    def _flush_inline(self, block: _Block) -> None:
        if block.link_href is not None:
            self._end_link(block)
        raw = "".join(block.inline)
        block.inline.clear()
        if block.tag == "pre" or self.pre_depth:
            text = raw.replace(_LINE_BREAK, "\n").strip("\n")
        else:
            # Collapse spaces first: " *\x00 *" would backtrack quadratically on long runs.
            text = re.sub(r" {2,}", " ", raw)
            text = re.sub(r" ?\x00 ?", "\n", text).strip(" ")
            text = text.strip("\n") if not text.strip() else text.strip()
        if text.strip():
            block.children.append(text)

    def _render(self, block: _Block) -> str:
        self._flush_inline(block)
        if block.tag == "tr":
            # A cell with several lines contains layout, as in most newsletters, not data.
            if any("\n" in child for child in block.children):
                return "\n\n".join(block.children)
            return " | ".join(child.strip() for child in block.children if child.strip())
        if block.tag in ("table", *_TABLE_SECTIONS) and any(
            "\n" in child for child in block.children
        ):
            text = "\n\n".join(block.children)
        elif block.tag in _LINE_JOINED:
            text = "\n".join(block.children)
        else:
            text = "\n\n".join(block.children)
        if not text.strip():
            return ""
        if block.tag == "li":
            marker = f"{block.item_number}. " if block.item_number else "- "
            indent = " " * len(marker)
            lines = text.split("\n")
            return "\n".join(
                [marker + lines[0]] + [indent + line if line else line for line in lines[1:]]
            )
        if block.tag == "blockquote":
            return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))
        if block.tag in ("h1", "h2"):
            heading = " ".join(text.split())
            underline = "=" if block.tag == "h1" else "-"
            return f"{heading}\n{underline * len(heading)}"
        return text

    def finish(self) -> str:
        while len(self.stack) > 1:
            self._close_block()
        root = self.stack[0]
        self._flush_inline(root)
        text = "\n\n".join(root.children)
        lines = [line.rstrip() for line in text.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def count_start_tags(html: str) -> int:
    """Count what may be start tags: each ``<`` followed by a letter."""
    return sum(1 for _ in _START_TAG.finditer(html))


def html_to_text(html: str) -> str:
    """Return the plain text version of ``html``, ending with a line break.

    The HTML is first parsed and serialized again by nh3, which leaves no unterminated
    tags or comments, on which the standard library parser takes quadratic time. HTML
    with more than MAX_HTML_TAGS tags only has its tags removed, without layout.
    """
    if count_start_tags(html) > MAX_HTML_TAGS:
        text = _SPACES.sub(" ", unescape(_ANY_TAG.sub(" ", html))).strip()
        return text + "\n" if text else ""
    normalized = nh3.clean(
        html,
        tags=set(_BLOCKS | {"a", "img", "br", "hr"}),
        clean_content_tags=set(_SKIPPED),
        attributes={"a": {"href"}, "img": {"alt"}},
        link_rel=None,
        url_relative="pass_through",
    )
    builder = _TextBuilder()
    builder.feed(normalized)
    builder.close()
    text = builder.finish()
    return text + "\n" if text else ""
