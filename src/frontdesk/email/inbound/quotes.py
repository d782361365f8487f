"""Split a plain-text reply into the new text, the quoted history and the signature."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Attribution lines that mail programs put above quoted history. Gmail and Apple Mail wrap
# long ones, so each pattern is also tried on two and three joined lines.
_ATTRIBUTIONS = [
    # English (Gmail, Apple Mail, Thunderbird): "On Tue, 5 Mar 2024 at 10:01, Ann <a@b> wrote:"
    r"^on\b.{1,300}\bwrote:$",
    # French: "Le mar. 5 mars 2024 à 10:01, Ann <a@b> a écrit :"
    r"^le\b.{1,300}\ba\s+écrit\s?:$",
    # German: "Am 05.03.2024 um 10:01 schrieb Ann <a@b>:" and "Ann <a@b> schrieb am ...:"
    r"^am\b.{1,300}\bschrieb\b.{0,300}:$",
    r"^.{1,300}\bschrieb\s+am\b.{1,300}:$",
    # Spanish, Portuguese, Italian, Dutch, Swedish, Danish and Norwegian, Polish.
    r"^el\b.{1,300}\bescribió\s?:$",
    r"^em\b.{1,300}\bescreveu\s?:$",
    r"^il\b.{1,300}\bha\s+scritto\s?:$",
    r"^op\b.{1,300}\bschreef\b.{0,300}:$",
    r"^den\b.{1,300}\bskrev\b.{0,300}:$",
    r"^w\s+dniu\b.{1,300}\bnapisał(a)?\s?:$",
    r"^.{1,300}\bpisze\s?:$",
]
_ATTRIBUTION = re.compile("|".join(f"(?:{pattern})" for pattern in _ATTRIBUTIONS), re.I)
# The verb every attribution contains. Checking for it first skips the slower patterns
# on the lines of an ordinary message.
_ATTRIBUTION_VERBS = (
    "wrote",
    "écrit",
    "schrieb",
    "escribió",
    "escreveu",
    "scritto",
    "schreef",
    "skrev",
    "napisał",
    "pisze",
)
# Separator lines of Outlook, Lotus Notes, Thunderbird and their translations.
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|"
    r"mensaje original|mensagem original|messaggio originale|oorspronkelijk bericht|"
    r"originalmeddelande|original meddelelse|oryginalna wiadomość)\s*-{2,}\s*$",
    re.I,
)
# The header block Outlook writes above the quoted message: "From: ..." followed within a
# few lines by "Sent: ..." or "Date: ...", possibly bold ("*From:*") in a plain-text copy.
_BLOCK_FROM = re.compile(r"^\s*\*?(from|de|von|van|da|från|od)\s?:\*?\s", re.I)
_BLOCK_DATE = re.compile(
    r"^\s*\*?(sent|date|envoyé|gesendet|datum|enviado|fecha|inviato|data|verzonden|skickat|"
    r"wysłano)\s?:\*?\s",
    re.I,
)
_FORWARDED = re.compile(
    r"^\s*(-{2,}\s*(forwarded message|message transféré|weitergeleitete nachricht|"
    r"mensaje reenviado|messaggio inoltrato)\s*-{2,}|begin forwarded message:|"
    r"début du message réexpédié :|anfang der weitergeleiteten nachricht:)\s*$",
    re.I,
)
_UNDERSCORE_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE_DELIMITER = re.compile(r"^-- ?$")
# "-- " is the standard delimiter (RFC 3676 section 4.3). Gmail's plain text writes "--",
# which also serves as a separator inside text, so it counts only before a short tail.
_MAX_LINES_AFTER_BARE_DASHES = 10
# Signatures that phone mail apps append by default.
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(sent from my \S.*|sent from (outlook|yahoo mail|mail for windows|samsung)\b.*|"
    r"get outlook for (ios|android)\b.*|sent via \S.*|"
    r"envoyé de mon \S.*|envoyé depuis mon \S.*|von meinem \S.*gesendet\.?|"
    r"gesendet von meinem \S.*|enviado desde mi \S.*|enviado do meu \S.*|inviato da(l mio)? \S.*|"
    r"verzonden vanaf mijn \S.*|skickat från min \S.*)$",
    re.I,
)
_QUOTED = re.compile(r"^\s*>")


@dataclass(frozen=True)
class ReplyParts:
    """A reply split into what the sender wrote now, the quoted history and the signature."""

    new_text: str
    quoted: str
    signature: str


def _is_blank(line: str) -> bool:
    return not line.strip()


def _find_attribution(lines: list[str]) -> int | None:
    previous = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or _QUOTED.match(line):
            continue
        after_forward_marker = _FORWARDED.match(previous) is not None
        previous = stripped
        if after_forward_marker:
            # The header block of a forwarded message is content, not quoted history.
            continue
        if _ORIGINAL_MESSAGE.match(stripped):
            return index
        if _UNDERSCORE_RULE.match(stripped) and _starts_header_block(lines, index + 1):
            return index
        if _starts_header_block(lines, index):
            return index
        for span in (1, 2, 3):
            joined = " ".join(part.strip() for part in lines[index : index + span])
            if len(joined) > 400:
                break
            lowered = joined.lower()
            if any(verb in lowered for verb in _ATTRIBUTION_VERBS) and _ATTRIBUTION.match(joined):
                return index
    return None


def _starts_header_block(lines: list[str], index: int) -> bool:
    if index >= len(lines) or not _BLOCK_FROM.match(lines[index]):
        return False
    return any(_BLOCK_DATE.match(line) for line in lines[index + 1 : index + 5])


def _strip_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and _is_blank(lines[start]):
        start += 1
    while end > start and _is_blank(lines[end - 1]):
        end -= 1
    return lines[start:end]


def _join(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in _strip_blank_edges(lines))


def _quote_block_end(lines: list[str], start: int) -> int:
    """Return the index after the quoted lines (and blank lines among them) from ``start``."""
    end = start
    index = start
    while index < len(lines) and (_QUOTED.match(lines[index]) or _is_blank(lines[index])):
        if _QUOTED.match(lines[index]):
            end = index + 1
        index += 1
    return end


def _split_quotes(lines: list[str]) -> tuple[list[str], list[str]]:
    """Return (new lines, quoted lines) of a reply."""
    attribution = _find_attribution(lines)
    if attribution is not None:
        before = lines[:attribution]
        if _strip_blank_edges(before):
            return before, lines[attribution:]
        # Bottom posting: the attribution comes first, then the quote, then the reply.
        block_start = attribution + 1
        while block_start < len(lines) and _is_blank(lines[block_start]):
            block_start += 1
        if block_start < len(lines) and _QUOTED.match(lines[block_start]):
            block_end = _quote_block_end(lines, block_start)
            after = lines[block_end:]
            if _strip_blank_edges(after):
                return after, lines[attribution:block_end]
        return before, lines[attribution:]

    # Without an attribution, a run of ">" lines at the start or the end is quoted history.
    # Quoted lines between new lines are kept because they give context to inline replies.
    content = [index for index, line in enumerate(lines) if not _is_blank(line)]
    if not content:
        return lines, []
    first, last = content[0], content[-1]
    leading_end = first
    if _QUOTED.match(lines[first]):
        leading_end = _quote_block_end(lines, first)
    trailing_start = last + 1
    if _QUOTED.match(lines[last]):
        trailing_start = last
        while trailing_start > leading_end and (
            _QUOTED.match(lines[trailing_start - 1]) or _is_blank(lines[trailing_start - 1])
        ):
            trailing_start -= 1
    middle = lines[leading_end:trailing_start]
    if not _strip_blank_edges(middle):
        return lines, []
    return middle, lines[first:leading_end] + lines[trailing_start:]


def _last_delimiter(lines: list[str], start: int = 0) -> int | None:
    """Return the index of the last signature delimiter at or after ``start``."""
    lines_below = 0
    for index in range(len(lines) - 1, start - 1, -1):
        line = lines[index]
        if _SIGNATURE_DELIMITER.match(line) and (
            line == "-- " or lines_below <= _MAX_LINES_AFTER_BARE_DASHES
        ):
            return index
        if not _is_blank(line):
            lines_below += 1
    return None


def _split_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """Return (body lines, signature lines), where the signature may be empty."""
    delimiter = _last_delimiter(lines)
    if delimiter is not None:
        return lines[:delimiter], lines[delimiter:]
    content = [index for index, line in enumerate(lines) if not _is_blank(line)]
    for index in content[-3:]:
        if _MOBILE_SIGNATURE.match(lines[index]):
            return lines[:index], lines[index:]
    return lines, []


def _signature_below_quote(lines: list[str]) -> int | None:
    """Return where a signature starts below the last ">" line, where Gmail and phones put it."""
    last_quoted = max(
        (index for index, line in enumerate(lines) if _QUOTED.match(line)), default=None
    )
    if last_quoted is None:
        return None
    delimiter = _last_delimiter(lines, last_quoted + 1)
    if delimiter is not None:
        return delimiter
    tail = range(last_quoted + 1, len(lines))
    content = [index for index in tail if not _is_blank(lines[index])]
    for index in content[:3]:
        if _MOBILE_SIGNATURE.match(lines[index]):
            return index
    return None


def split_reply(text: str) -> ReplyParts:
    """Split ``text`` into the new text, the quoted history and the signature.

    Quoted history starts at an attribution line ("On ... wrote:" and its French, German
    and other forms), an "Original Message" separator, an Outlook "From: / Sent:" block,
    or is a run of ">" lines at the start or end. The signature starts at a "-- " line or
    a phone app's default line such as "Sent from my iPhone". ``new_text`` is empty only
    when ``text`` is blank: a message that is nothing but a quote or a signature keeps it
    as its new text, so that no content is hidden.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    signature_below: list[str] = []
    below_start = _signature_below_quote(lines)
    if below_start is not None:
        lines, signature_below = lines[:below_start], lines[below_start:]
    new_lines, quoted_lines = _split_quotes(lines)

    body_lines, signature_lines = _split_signature(new_lines)
    if not _strip_blank_edges(body_lines):
        body_lines, signature_lines = new_lines, []
    if signature_below:
        signature_lines = (
            [*signature_lines, "", *signature_below] if signature_lines else signature_below
        )

    new_text = _join(body_lines)
    if not new_text and _join(signature_lines):
        new_text, signature_lines = _join(signature_lines), []
    return ReplyParts(
        new_text=new_text,
        quoted=_join(quoted_lines),
        signature=_join(signature_lines),
    )
