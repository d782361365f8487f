"""Plain text from an HTML mail body, for messages that come without a text/plain part."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
}
_SKIPPED_TAGS = {"head", "script", "style", "title", "template", "noscript", "svg"}
_PARAGRAPH_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "ul", "ol"}
_CELL_TAGS = {"td", "th"}
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_MAX_BLANK_LINES = re.compile(r"\n{3,}")
# A "<" that reaches another "<" or the end before any ">" cannot open a tag. HTMLParser
# rescans such a construct from each later "<", which takes quadratic time (200 KB of "<a"
# took 42 s with CPython 3.11 on a 2-core VM), so these are escaped first. Each lookahead
# stops at the next bracket, which keeps the whole substitution linear.
_UNCLOSED_BRACKET = re.compile(r"<(?![^<>]*>)")


class _TextExtractor(HTMLParser):
    """Collect text, with a line break per block element and ``> `` per blockquote level."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.pre_depth = 0
        self.pending_blank = False

    def _flush(self, *, blank: bool = False) -> None:
        text = "".join(self.current).strip()
        self.current = []
        if text:
            if self.pending_blank and self.lines and self.lines[-1] != "":
                self.lines.append(self._prefix().rstrip() if self.quote_depth else "")
            self.lines.append(self._prefix() + text)
            self.pending_blank = False
        if blank:
            self.pending_blank = True

    def _prefix(self) -> str:
        return "> " * self.quote_depth

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # A <body> closes an unclosed <head>, as in a browser.
            self.skip_depth = 0
            return
        if tag in _SKIPPED_TAGS:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "br":
            # A second <br> in a row leaves a blank line, as it does in a browser.
            if "".join(self.current).strip():
                self._flush()
            else:
                self.pending_blank = bool(self.lines)
            return
        if tag in _BLOCK_TAGS:
            self._flush(blank=tag in _PARAGRAPH_TAGS)
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "li":
            self.current.append("- ")
        elif tag in _CELL_TAGS and self.current and "".join(self.current).strip():
            self.current.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in _BLOCK_TAGS:
            self._flush(blank=tag in _PARAGRAPH_TAGS)
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            lines = data.split("\n")
            for line in lines[:-1]:
                self.current.append(line)
                self._flush()
            self.current.append(lines[-1])
            return
        self.current.append(_WHITESPACE.sub(" ", data))

    def text(self) -> str:
        self._flush()
        joined = "\n".join(line.rstrip() for line in self.lines)
        return _MAX_BLANK_LINES.sub("\n\n", joined).strip("\n")


def _strip_comments(html: str) -> str:
    """Remove comments, and everything after an unterminated one, as browsers do.

    A scan with ``str.find`` stays linear where a regular expression would rescan the rest
    of the document from every unterminated ``<!--``.
    """
    pieces: list[str] = []
    position = 0
    while True:
        start = html.find("<!--", position)
        if start < 0:
            pieces.append(html[position:])
            break
        pieces.append(html[position:start])
        end = html.find("-->", start + 4)
        if end < 0:
            break
        position = end + 3
    return "".join(pieces)


def html_to_text(html: str) -> str:
    """Return readable plain text for ``html``: scripts, styles and tags removed.

    Block elements end lines, paragraphs are separated by a blank line, list items start
    with ``- `` and blockquote content is prefixed with ``> `` per level, so that quoted
    history in an HTML-only reply stays recognisable as a quote.
    """
    extractor = _TextExtractor()
    try:
        extractor.feed(_UNCLOSED_BRACKET.sub("&lt;", _strip_comments(html)))
        extractor.close()
    except (AssertionError, ValueError):
        # HTMLParser raises AssertionError on some malformed declarations (seen in the
        # _markupbase module of Python 3.11); the text collected so far is kept.
        pass
    return extractor.text()
