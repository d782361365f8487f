"""Access tokens (JWT, HS256), hashing of opaque tokens for storage, and their errors."""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from frontdesk.core.errors import BadRequest, FieldError

ALGORITHM = "HS256"
AUDIENCE = "frontdesk"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID | None
    expires_at: datetime


def issue_access_token(
    secret: bytes,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    workspace_id: uuid.UUID | None,
    now: datetime,
    ttl_seconds: int,
) -> str:
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "wid": str(workspace_id) if workspace_id else None,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class InvalidAccessToken(Exception):
    pass


class ExpiredAccessToken(InvalidAccessToken):
    pass


def decode_access_token(secret: bytes, token: str, *, now: datetime) -> AccessClaims:
    """Verify signature, audience and expiry against ``now`` (the injectable clock)."""
    try:
        claims = _verified_claims(secret, token)
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidAccessToken("the access token is invalid") from exc
    if claims.expires_at <= now:
        raise ExpiredAccessToken("the access token has expired")
    return claims


# A client sends the same token with every request until it expires, so its signature and
# claims are checked once. Only tokens that verified are kept.
@functools.lru_cache(maxsize=4096)
def _verified_claims(secret: bytes, token: str) -> AccessClaims:
    claims = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        audience=AUDIENCE,
        # The caller checks expiry against the injectable clock, because PyJWT would compare
        # exp and iat with the system time.
        options={"verify_exp": False, "verify_iat": False, "require": ["sub", "sid", "exp", "aud"]},
    )
    workspace = claims.get("wid")
    return AccessClaims(
        user_id=uuid.UUID(claims["sub"]),
        session_id=uuid.UUID(claims["sid"]),
        workspace_id=uuid.UUID(workspace) if workspace else None,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
    )


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy token; such tokens need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvalidToken(BadRequest):
    """A one-time token (verification, reset, invitation) that is unknown, used or revoked."""

    code = "invalid_token"
    title = "Invalid token"

    def __init__(self, detail: str, *, field: str = "token") -> None:
        super().__init__(detail, errors=[FieldError(field=field, message=detail, code=self.code)])


class ExpiredToken(BadRequest):
    code = "token_expired"
    title = "Expired token"

    def __init__(self, detail: str, *, field: str = "token") -> None:
        super().__init__(detail, errors=[FieldError(field=field, message=detail, code=self.code)])
