"""Spam defence of the public form: a honeypot field and a signed render time.

The HTML page carries a hidden render token, ``<milliseconds>.<signature>``, where the
signature is an HMAC-SHA256 with the secret key over the form id and the render time. A
browser post without a valid token, or sent sooner than ``form_min_fill_seconds`` after the
page was rendered, is treated as spam. JSON clients need no token, but the honeypot applies
to them when they send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

RENDER_TOKEN_FIELD = "_render_token"
REFERRER_FIELD = "_referrer"
# Names that form-filling bots fill in. The first one that no field of the form uses becomes
# the honeypot, so a form may still have a real field keyed "website".
HONEYPOT_CANDIDATES = ("website", "url", "homepage", "company_website")


def honeypot_name(field_keys: Iterable[str]) -> str:
    used = set(field_keys)
    for name in HONEYPOT_CANDIDATES:
        if name not in used:
            return name
    # Keys cannot start with an underscore, so this name never collides with a field.
    return "_website"


def _signature(secret: bytes, form_id: uuid.UUID, issued_ms: int) -> str:
    message = f"frontdesk.form-render|{form_id}|{issued_ms}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_render_token(secret: bytes, form_id: uuid.UUID, now: datetime) -> str:
    issued_ms = int(now.timestamp() * 1000)
    return f"{issued_ms}.{_signature(secret, form_id, issued_ms)}"


def render_token_problem(
    secret: bytes,
    form_id: uuid.UUID,
    token: str | None,
    *,
    now: datetime,
    min_fill_seconds: float,
) -> str | None:
    """Return why a render token marks a post as spam, or None when the token is good.

    Reasons: ``missing_token``, ``invalid_token`` (malformed or bad signature) and
    ``too_fast`` (sent less than ``min_fill_seconds`` after rendering).
    """
    if not token:
        return "missing_token"
    issued, _, signature = token.partition(".")
    if not issued.isdigit() or len(issued) > 16 or not signature:
        return "invalid_token"
    issued_ms = int(issued)
    expected = _signature(secret, form_id, issued_ms)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "invalid_token"
    elapsed_ms = int(now.timestamp() * 1000) - issued_ms
    if elapsed_ms < min_fill_seconds * 1000:
        return "too_fast"
    return None


def honeypot_filled(raw: dict[str, Any], name: str) -> bool:
    value = raw.get(name)
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return any(isinstance(item, str) and item.strip() for item in value)
    return value is not False
