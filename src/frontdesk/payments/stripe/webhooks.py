"""Verify Stripe's webhook signatures.

Stripe sends ``Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=HEX...]``. Each ``v1`` is the
HMAC-SHA256, keyed with the endpoint's signing secret, of ``TIMESTAMP + "." + raw body``.
While a secret is being rolled, Stripe signs with the old and the new secret, so any one
matching ``v1`` is enough. Other schemes (``v0`` for test signatures) are ignored. A timestamp
outside the tolerance is rejected so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


class SignatureInvalid(Exception):
    """The delivery is not signed with the workspace's secret, or its timestamp is stale."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: list[str], timestamp: int) -> str:
    """Build a ``Stripe-Signature`` header value with one ``v1`` per secret (tests, benches)."""
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={compute_signature(payload, secret, timestamp)}" for secret in secrets)
    return ",".join(parts)


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, now: int, tolerance_seconds: int
) -> None:
    """Raise ``SignatureInvalid`` unless one ``v1`` signature of ``header`` matches."""
    if not header:
        raise SignatureInvalid("The Stripe-Signature header is missing.", code="signature_missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                timestamp = None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise SignatureInvalid(
            "The Stripe-Signature header has no valid timestamp (t=...).", code="signature_invalid"
        )
    if not signatures:
        raise SignatureInvalid(
            "The Stripe-Signature header has no v1 signature.", code="signature_invalid"
        )
    expected = compute_signature(payload, secret, timestamp)
    # compare_digest on every candidate takes the same time whether or not one matches early.
    matched = False
    for candidate in signatures:
        if hmac.compare_digest(expected, candidate):
            matched = True
    if not matched:
        raise SignatureInvalid(
            "No v1 signature matches the body; check the webhook signing secret.",
            code="signature_invalid",
        )
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureInvalid(
            f"The signature timestamp is {now - timestamp} s from now, beyond the "
            f"{tolerance_seconds} s tolerance.",
            code="signature_expired",
        )


def parse_event(payload: bytes) -> dict[str, Any]:
    """Parse a verified body as an event; raise ``ValueError`` when it is not one."""
    event = json.loads(payload)
    if not isinstance(event, dict) or event.get("object") != "event":
        raise ValueError("the body is not a Stripe event object")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise ValueError("the event has no id or type")
    if not isinstance(event.get("created"), int):
        raise ValueError("the event has no created time")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise ValueError("the event has no data.object")
    return event
