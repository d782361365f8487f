"""Recognise messages that a program sent, so that nobody answers an auto-reply with another.

The rules follow RFC 3834 (Auto-Submitted), RFC 2369 and RFC 2919 (List-* headers), and the
headers that common mail programs set without following either: Precedence, X-Autoreply,
X-Autorespond and Microsoft's X-Auto-Response-Suppress.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from email.message import Message

from frontdesk.email.inbound.parse import ParsedEmail

HeaderSource = ParsedEmail | Mapping[str, str] | Iterable[tuple[str, str]] | Message

# Local parts that mail servers send bounces and notices from. RFC 5321 section 4.5.1
# names postmaster. The others are the names that sendmail, Postfix, Exim and Exchange use.
_DAEMON_LOCAL_PARTS = {
    "mailer-daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
    "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e",
}
_BULK_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}


def _header_pairs(source: HeaderSource) -> list[tuple[str, str]]:
    if isinstance(source, ParsedEmail):
        return list(source.headers)
    if isinstance(source, Message):
        pairs: list[tuple[str, str]] = []
        for name, value in source.raw_items():
            pairs.append((str(name), str(value)))
        return pairs
    if isinstance(source, Mapping):
        return [(str(name), str(value)) for name, value in source.items()]
    return [(str(name), str(value)) for name, value in source]


def _values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value.strip() for header, value in pairs if header.lower() == wanted]


def _from_address(source: HeaderSource, pairs: list[tuple[str, str]]) -> str | None:
    if isinstance(source, ParsedEmail):
        return source.from_address
    values = _values(pairs, "From")
    if not values:
        return None
    addresses = [address for _, address in email.utils.getaddresses(values) if "@" in address]
    return addresses[0] if addresses else None


def is_automatic(source: HeaderSource, *, own_addresses: Iterable[str]) -> str | None:
    """Return why the message looks automatic, or None when a person seems to have written it.

    ``source`` is a parsed message, a header mapping, (name, value) pairs or a standard
    library message. ``own_addresses`` are the addresses this system sends from; mail from
    them is an echo or a loop. The reason names the header and value that decided.
    """
    pairs = _header_pairs(source)

    for value in _values(pairs, "Auto-Submitted"):
        keyword = value.split(";", 1)[0].strip().lower()
        if keyword and keyword != "no":
            return f"Auto-Submitted: {keyword}"

    for value in _values(pairs, "Precedence"):
        if value.lower() in _BULK_PRECEDENCE:
            return f"Precedence: {value.lower()}"

    for value in _values(pairs, "Return-Path"):
        if value.replace(" ", "") == "<>":
            return "empty Return-Path"

    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        values = _values(pairs, name)
        if any(value.lower() not in ("no", "false", "0") for value in values):
            return f"{name} present"

    for value in _values(pairs, "X-Auto-Response-Suppress"):
        tokens = {token.strip().lower() for token in value.split(",")}
        matched = sorted(tokens & _SUPPRESS_VALUES)
        if matched:
            return f"X-Auto-Response-Suppress: {matched[0]}"

    for name in ("List-Id", "List-Unsubscribe"):
        if _values(pairs, name):
            return f"{name} present"

    for value in _values(pairs, "Content-Type"):
        if value.lower().startswith("multipart/report"):
            return "delivery or disposition report"

    address = _from_address(source, pairs)
    if address is not None:
        local_part = address.rsplit("@", 1)[0].lower()
        if local_part in _DAEMON_LOCAL_PARTS:
            return f"sent by {local_part}"
        own = {item.strip().lower() for item in own_addresses}
        if address.lower() in own:
            return "sent from one of our own addresses"
    return None
