"""Visitor tokens: how a website visitor proves who they are to the chat API and gateway.

A token is ``fdv1.<payload>.<signature>``: the payload is base64url JSON holding the
workspace id, the visitor id and the issue time, and the signature is HMAC-SHA256 over
``fdv1.<payload>`` with a key derived from the instance secret key. A token does not expire
on its own, because it identifies a browser that may come back weeks later; revoking the
visitor (``ChatVisitor.revoked_at``) ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "fdv1."
MAX_TOKEN_CHARS = 512
_KEY_LABEL = b"frontdesk chat visitor token v1"


class InvalidVisitorToken(Exception):
    """The token is malformed or its signature does not match."""


@dataclass(frozen=True)
class VisitorClaims:
    workspace_id: uuid.UUID
    visitor_id: uuid.UUID
    issued_at: int


def _key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_visitor_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def issue_visitor_token(
    secret_key: bytes, *, workspace_id: uuid.UUID, visitor_id: uuid.UUID, now: datetime
) -> str:
    payload = json.dumps(
        {"w": str(workspace_id), "v": str(visitor_id), "iat": int(now.timestamp())},
        separators=(",", ":"),
    ).encode()
    signed = TOKEN_PREFIX + _b64(payload)
    signature = hmac.new(_key(secret_key), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(signature)}"


def decode_visitor_token(secret_key: bytes, token: str) -> VisitorClaims:
    """Check the signature and return the claims; raises InvalidVisitorToken."""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not is_visitor_token(token):
        raise InvalidVisitorToken("not a visitor token")
    signed, _, signature = token.rpartition(".")
    try:
        expected = hmac.new(_key(secret_key), signed.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise InvalidVisitorToken("signature mismatch")
        claims = json.loads(_unb64(signed[len(TOKEN_PREFIX) :]))
        return VisitorClaims(
            workspace_id=uuid.UUID(claims["w"]),
            visitor_id=uuid.UUID(claims["v"]),
            issued_at=int(claims["iat"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidVisitorToken("malformed token") from exc
