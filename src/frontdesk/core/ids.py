"""Time-ordered UUIDs (version 7, RFC 9562) and random tokens."""

from __future__ import annotations

import os
import secrets
import time
import uuid


def uuid7() -> uuid.UUID:
    """Build a version 7 UUID: 48 bits of Unix milliseconds, then random bits."""
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value &= ~(0xF << 76)
    value |= 0x7 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return uuid.UUID(int=value)


def new_token(nbytes: int = 32) -> str:
    """Return a URL-safe random token with ``nbytes`` of entropy."""
    return secrets.token_urlsafe(nbytes)
