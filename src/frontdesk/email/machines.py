"""Telling opens and clicks by software apart from those by people.

Privacy proxies fetch every image of a message when it arrives (Apple Mail Privacy
Protection, Gmail's image proxy), and corporate link scanners follow every link within
seconds of delivery. Counting those as people would make open and click rates meaningless,
so each open or click gets a reason when it looks automatic, and the human rates leave it
out. The rules, in order:

1. the provider flagged it (SendGrid's ``sg_machine_open``);
2. the user agent is a known proxy or scanner;
3. an open within ``OPEN_PREFETCH_SECONDS`` of delivery, or a click within
   ``CLICK_SCAN_SECONDS``, which people are rarely fast enough for;
4. a click request that is not a GET (scanners send HEAD to check a link).

Rule 2 and 3 are heuristics: a person can click very fast, and a new proxy has a user agent
that is not listed yet.
"""

from __future__ import annotations

import re

OPEN_PREFETCH_SECONDS = 2.0
CLICK_SCAN_SECONDS = 10.0

# Lower-cased substrings of user agents that proxies and link scanners send.
_PROXY_AGENTS = (
    "googleimageproxy",
    "ggpht.com",
    "yahoomailproxy",
    "yahoo! slurp",
    "outlook-iOS".lower(),
    "ms-office",
    "microsoft office",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "forcepoint",
    "trendmicro",
    "sophos",
    "safelinks",
    "bingpreview",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "headlesschrome",
)
# Apple Mail Privacy Protection fetches images with this bare user agent and no more.
_BARE_MOZILLA = re.compile(r"^mozilla/5\.0$")


def machine_reason(
    *,
    event_type: str,
    user_agent: str | None,
    seconds_after_delivery: float | None,
    provider_flag: bool | None = None,
    method: str = "GET",
) -> str | None:
    """Return why an open or click looks automatic, or None when a person probably made it."""
    if event_type not in ("opened", "clicked"):
        return None
    if provider_flag:
        return "provider_flag"
    agent = (user_agent or "").strip().lower()
    if agent and (any(marker in agent for marker in _PROXY_AGENTS) or _BARE_MOZILLA.match(agent)):
        return "known_agent"
    if seconds_after_delivery is not None and seconds_after_delivery >= 0:
        limit = OPEN_PREFETCH_SECONDS if event_type == "opened" else CLICK_SCAN_SECONDS
        if seconds_after_delivery < limit:
            return "too_soon_after_delivery"
    if event_type == "clicked" and method.upper() != "GET":
        return "not_a_get"
    return None
