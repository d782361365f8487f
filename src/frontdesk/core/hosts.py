"""Host names and IP addresses that an admin types for the server to connect to."""

from __future__ import annotations

import ipaddress
import re

# One DNS label in ASCII: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")

HOST_MESSAGE = "Use a host name like mail.example.com or an IP address."


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
    try:
        # Full-width digits, for one, become an address only once mapped to ASCII.
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


# IPv6 ranges that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052 and 8215),
# IPv4-compatible addresses and SIIT's IPv4-translated addresses.
_IPV4_IN_LAST_32_BITS = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)


def is_private_address(address: str) -> bool:
    """Return whether an IP address is not a global one, judging an IPv6 address that
    carries an IPv4 address (mapped, 6to4, Teredo, NAT64) by that IPv4 address too."""
    parsed = ipaddress.ip_address(address)
    if not parsed.is_global:
        return True
    if isinstance(parsed, ipaddress.IPv6Address):
        embedded = [parsed.ipv4_mapped, parsed.sixtofour]
        if parsed.teredo is not None:
            embedded.extend(parsed.teredo)
        if any(parsed in network for network in _IPV4_IN_LAST_32_BITS):
            embedded.append(ipaddress.IPv4Address(int(parsed) & 0xFFFFFFFF))
        return any(ipv4 is not None and not ipv4.is_global for ipv4 in embedded)
    return False
