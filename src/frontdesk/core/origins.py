"""Web origins (scheme, host and port), as browsers send them in the Origin header."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """Return ``value`` as a browser writes its origin, or raise ValueError with the fix.

    The result is ``scheme://host[:port]`` in lower case, without the scheme's default port,
    with an IPv6 host in brackets and a domain name in punycode, so that it compares equal
    to an Origin header. One trailing slash is allowed and dropped.
    """
    raw = value.strip()
    if any(char.isspace() or not char.isprintable() for char in raw):
        raise ValueError("An origin has no spaces or control characters; remove them.")
    parts = urlsplit(raw)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("Use an origin like https://www.example.com.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ValueError("An origin has no path, query or user; use only scheme://host[:port].")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("The port is invalid; use a number from 1 to 65535.") from exc
    if port == 0:
        raise ValueError("The port is invalid; use a number from 1 to 65535.")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    else:
        try:
            # Browsers send an internationalized domain name in its ASCII (punycode) form.
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError("The host is not a valid domain name.") from exc
    suffix = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{suffix}"
