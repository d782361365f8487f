"""Signed links: HMAC-SHA256 tokens that let anyone download or upload one object.

A token is ``<payload>.<signature>``, both base64url without padding. The payload is a JSON
object of the bound fields; the signature is HMAC-SHA256 over a canonical JSON array of
those fields, keyed with the workspace's current signing key. Download links name the object;
upload links name the bucket, the key, the maximum size and the allowed content types.

Each workspace has its own signing keys, stored encrypted with the runtime's envelope
cipher. Rotating revokes every earlier key, so every earlier link stops working. Upload links
are single-use: the id of each link that uploaded is stored until the link expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.db import Base
from frontdesk.core.errors import Forbidden
from frontdesk.core.jobs import periodic
from frontdesk.core.text import load_json
from frontdesk.core.uow import UnitOfWork

log = structlog.get_logger()

LinkMethod = Literal["GET", "PUT"]

_VERSION = "v1"
_CANONICAL_TAG = "frontdesk.storage-link.v1"
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 7 * 24 * 3600


class StorageSigningKey(Base):
    """A workspace's link-signing secret; links name the key that signed them."""

    __tablename__ = "storage_signing_keys"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    # The 32-byte secret, encrypted with the runtime's envelope cipher.
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class StorageLinkUse(Base):
    """An upload link that has uploaded once; a second use is rejected until it expires."""

    __tablename__ = "storage_link_uses"

    link_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    used_at: Mapped[datetime] = mapped_column()
    # Rows past this instant can be deleted: the link is rejected as expired anyway.
    expires_at: Mapped[datetime] = mapped_column()


class LinkRejected(Forbidden):
    """A signed link failed one check; ``code`` names which."""

    title = "Link rejected"


def link_tampered() -> LinkRejected:
    return LinkRejected(
        "The link is malformed or its signature does not match; ask for a new link.",
        code="link_tampered",
    )


def link_expired() -> LinkRejected:
    return LinkRejected("The link has expired; ask for a new link.", code="link_expired")


def link_revoked() -> LinkRejected:
    return LinkRejected(
        "The link was revoked when the workspace rotated its signing keys; ask for a new link.",
        code="link_revoked",
    )


def link_used() -> LinkRejected:
    return LinkRejected(
        "This upload link has been used already; upload links work once. Ask for a new link.",
        code="link_used",
    )


@dataclass(frozen=True)
class LinkClaims:
    """The fields that a link binds. ``object_id`` is set for GET, the rest for PUT."""

    link_id: str
    workspace_id: uuid.UUID
    key_id: str
    method: LinkMethod
    expires_at: int
    object_id: uuid.UUID | None = None
    bucket_id: uuid.UUID | None = None
    key: str | None = None
    max_bytes: int | None = None
    content_types: tuple[str, ...] = field(default_factory=tuple)

    @property
    def expires_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _optional(value: uuid.UUID | None) -> str:
    return "" if value is None else str(value)


def canonical_string(claims: LinkClaims) -> bytes:
    """Serialize the bound fields in a fixed order; the HMAC input.

    A JSON array keeps the fields apart whatever characters a key contains.
    """
    fields: list[Any] = [
        _CANONICAL_TAG,
        claims.link_id,
        str(claims.workspace_id),
        claims.key_id,
        claims.method,
        _optional(claims.object_id),
        _optional(claims.bucket_id),
        claims.key or "",
        claims.max_bytes if claims.max_bytes is not None else -1,
        list(claims.content_types),
        claims.expires_at,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def compute_signature(secret: bytes, claims: LinkClaims) -> bytes:
    return hmac.new(secret, canonical_string(claims), hashlib.sha256).digest()


def encode_token(secret: bytes, claims: LinkClaims) -> str:
    """Build the token of ``claims``, signed with ``secret``."""
    payload: dict[str, Any] = {
        "v": _VERSION,
        "lid": claims.link_id,
        "ws": str(claims.workspace_id),
        "kid": claims.key_id,
        "m": claims.method,
        "exp": claims.expires_at,
    }
    if claims.object_id is not None:
        payload["oid"] = str(claims.object_id)
    if claims.bucket_id is not None:
        payload["bid"] = str(claims.bucket_id)
    if claims.key is not None:
        payload["k"] = claims.key
    if claims.max_bytes is not None:
        payload["max"] = claims.max_bytes
    if claims.content_types:
        payload["ct"] = list(claims.content_types)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
    return f"{_b64(body)}.{_b64(compute_signature(secret, claims))}"


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("an id must be a string")
    return uuid.UUID(value)


def decode_token(token: str) -> tuple[LinkClaims, bytes]:
    """Parse a token into its claims and signature without checking anything else.

    Raises LinkRejected (``link_tampered``) for any malformed token.
    """
    payload_part, dot, signature_part = token.partition(".")
    if not dot or not payload_part or not signature_part or len(token) > 8192:
        raise link_tampered()
    try:
        payload_bytes, signature = _unb64(payload_part), _unb64(signature_part)
        # Base64 ignores the unused low bits of the last character; only the canonical
        # encoding is accepted, so that changing any character of a token invalidates it.
        if _b64(payload_bytes) != payload_part or _b64(signature) != signature_part:
            raise ValueError("not canonical base64url")
        payload = load_json(payload_bytes)
        if not isinstance(payload, dict) or payload.get("v") != _VERSION:
            raise ValueError("unknown link version")
        method = payload["m"]
        if method not in ("GET", "PUT"):
            raise ValueError("unknown method")
        expires_at = payload["exp"]
        max_bytes = payload.get("max")
        content_types = payload.get("ct", [])
        key = payload.get("k")
        link_id, key_id = payload["lid"], payload["kid"]
        if (
            not isinstance(expires_at, int)
            or (max_bytes is not None and not isinstance(max_bytes, int))
            or not isinstance(content_types, list)
            or not all(isinstance(item, str) for item in content_types)
            or (key is not None and not isinstance(key, str))
            or not isinstance(link_id, str)
            or not isinstance(key_id, str)
        ):
            raise ValueError("a field has the wrong type")
        claims = LinkClaims(
            link_id=link_id,
            workspace_id=uuid.UUID(payload["ws"]),
            key_id=key_id,
            method=method,
            expires_at=expires_at,
            object_id=_uuid_or_none(payload.get("oid")),
            bucket_id=_uuid_or_none(payload.get("bid")),
            key=key,
            max_bytes=max_bytes,
            content_types=tuple(content_types),
        )
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise link_tampered() from exc
    return claims, signature


def signature_matches(secret: bytes, claims: LinkClaims, signature: bytes) -> bool:
    """Compare in constant time, so the time taken leaks nothing about the right signature."""
    return hmac.compare_digest(compute_signature(secret, claims), signature)


# --- Keys and verification against the database ----------------------------------------------


def _associated_data(workspace_id: uuid.UUID, key_id: str) -> bytes:
    # Binding the ciphertext to its row stops a secret from being copied to another workspace.
    return f"storage-signing-key:{workspace_id}:{key_id}".encode()


def _open_secret(uow: UnitOfWork, row: StorageSigningKey) -> bytes:
    return uow.rt.cipher.decrypt(
        row.secret_encrypted, associated_data=_associated_data(row.workspace_id, row.key_id)
    )


async def _create_key(uow: UnitOfWork, workspace_id: uuid.UUID) -> StorageSigningKey:
    key_id = uuid.uuid4().hex
    secret = os.urandom(32)
    row = StorageSigningKey(
        workspace_id=workspace_id,
        key_id=key_id,
        secret_encrypted=uow.rt.cipher.encrypt(
            secret, associated_data=_associated_data(workspace_id, key_id)
        ),
        created_at=uow.now(),
        revoked_at=None,
    )
    uow.session.add(row)
    await uow.session.flush()
    return row


async def current_signing_key(uow: UnitOfWork, workspace_id: uuid.UUID) -> tuple[str, bytes]:
    """Return the id and secret of the workspace's newest unrevoked key, creating one if none."""
    row = await uow.session.scalar(
        sa.select(StorageSigningKey)
        .where(
            StorageSigningKey.workspace_id == workspace_id,
            StorageSigningKey.revoked_at.is_(None),
        )
        .order_by(StorageSigningKey.created_at.desc(), StorageSigningKey.key_id)
        .limit(1)
    )
    if row is None:
        row = await _create_key(uow, workspace_id)
    return row.key_id, _open_secret(uow, row)


async def rotate_signing_keys(uow: UnitOfWork, workspace_id: uuid.UUID) -> str:
    """Revoke every key of the workspace and create a new one; returns the new key id."""
    now = uow.now()
    await uow.session.execute(
        sa.update(StorageSigningKey)
        .where(
            StorageSigningKey.workspace_id == workspace_id,
            StorageSigningKey.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    row = await _create_key(uow, workspace_id)
    log.info("storage.signing_keys_rotated", workspace_id=str(workspace_id), key_id=row.key_id)
    return row.key_id


def _expiry(uow: UnitOfWork, expires_in: int) -> int:
    if not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be {MIN_EXPIRES_IN}..{MAX_EXPIRES_IN} seconds")
    return int(uow.now().timestamp()) + expires_in


async def sign_download_link(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, object_id: uuid.UUID, expires_in: int
) -> tuple[str, LinkClaims]:
    """Create a download token for one object; the caller has checked the object is theirs."""
    key_id, secret = await current_signing_key(uow, workspace_id)
    claims = LinkClaims(
        link_id=_b64(os.urandom(16)),
        workspace_id=workspace_id,
        key_id=key_id,
        method="GET",
        expires_at=_expiry(uow, expires_in),
        object_id=object_id,
    )
    return encode_token(secret, claims), claims


async def sign_upload_link(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    bucket_id: uuid.UUID,
    key: str,
    expires_in: int,
    max_bytes: int,
    content_types: tuple[str, ...] = (),
) -> tuple[str, LinkClaims]:
    """Create a single-use upload token for ``key`` in one bucket of the workspace."""
    key_id, secret = await current_signing_key(uow, workspace_id)
    claims = LinkClaims(
        link_id=_b64(os.urandom(16)),
        workspace_id=workspace_id,
        key_id=key_id,
        method="PUT",
        expires_at=_expiry(uow, expires_in),
        bucket_id=bucket_id,
        key=key,
        max_bytes=max_bytes,
        content_types=tuple(sorted(set(content_types))),
    )
    return encode_token(secret, claims), claims


async def verify_link(uow: UnitOfWork, token: str, method: LinkMethod) -> LinkClaims:
    """Check a token for ``method`` and return its claims.

    The checks run in this order, and the first failure is raised as LinkRejected: format and
    signature (``link_tampered``), key rotation (``link_revoked``), expiry (``link_expired``),
    and for uploads an earlier use (``link_used``). A valid signature is required before the
    other checks, so their codes reveal nothing about forged tokens.
    """
    claims, signature = decode_token(token)
    if claims.method != method:
        raise link_tampered()
    if method == "GET" and claims.object_id is None:
        raise link_tampered()
    if method == "PUT" and (
        claims.bucket_id is None or claims.key is None or claims.max_bytes is None
    ):
        raise link_tampered()
    row = await uow.session.get(StorageSigningKey, (claims.workspace_id, claims.key_id))
    if row is None or not signature_matches(_open_secret(uow, row), claims, signature):
        log.warning("storage.link_rejected", reason="link_tampered")
        raise link_tampered()
    if row.revoked_at is not None:
        raise link_revoked()
    if claims.expires_at <= uow.now().timestamp():
        raise link_expired()
    if method == "PUT" and await uow.session.get(StorageLinkUse, claims.link_id) is not None:
        raise link_used()
    return claims


async def record_link_use(uow: UnitOfWork, claims: LinkClaims) -> None:
    """Mark an upload link as used in the caller's transaction.

    Two concurrent uploads with one link both pass ``verify_link``; the primary key makes the
    second commit fail, so only one upload is kept.
    """
    uow.session.add(
        StorageLinkUse(
            link_id=claims.link_id,
            workspace_id=claims.workspace_id,
            used_at=uow.now(),
            expires_at=claims.expires_datetime,
        )
    )
    try:
        await uow.session.flush()
    except sa.exc.IntegrityError as exc:
        raise link_used() from exc


async def prune_link_uses(uow: UnitOfWork) -> int:
    """Delete the use records of expired links; returns how many were deleted."""
    result = await uow.session.execute(
        sa.delete(StorageLinkUse).where(StorageLinkUse.expires_at <= uow.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


@periodic("storage.link_uses.prune", every_seconds=3600)
async def prune_link_uses_job(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Delete, once an hour, the use records of upload links that have expired."""
    deleted = await prune_link_uses(uow)
    if deleted:
        log.info("storage.link_uses_pruned", count=deleted)
