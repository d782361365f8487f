"""Host names and IP addresses that an admin types for the server to connect to."""

from __future__ import annotations

import ipaddress
import re

# One DNS label in ASCII: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")

HOST_MESSAGE = "Use a host name like smtp.example.com or an IP address."


def normalize_host(value: str) -> str:
    """Return ``value`` as the host to connect to, or raise ValueError.

    An IP address comes back in its standard form, also from the bracketed form of URLs
    (``[::1]``). A name comes back in lower case, in its ASCII (punycode) form and without a
    trailing dot, so that "localhost." and "LOCALHOST" are the same host as "localhost".
    """
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.endswith("."):
        host = host[:-1]
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(HOST_MESSAGE) from exc
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(HOST_MESSAGE)
    return name
