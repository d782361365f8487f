"""Signed link tokens without the database: encoding, decoding and the signature."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from frontdesk.storage.links import (
    LinkClaims,
    LinkRejected,
    decode_token,
    encode_token,
    signature_matches,
)

SECRET = b"s" * 32

UPLOAD = LinkClaims(
    link_id="abc",
    workspace_id=uuid.UUID("0190c2d4-0000-7000-8000-000000000001"),
    key_id="k1",
    method="PUT",
    expires_at=1_900_000_000,
    bucket_id=uuid.UUID("0190c2d4-0000-7000-8000-000000000002"),
    key="photos/a.png",
    max_bytes=1000,
    content_types=("image/png",),
)
DOWNLOAD = LinkClaims(
    link_id="def",
    workspace_id=UPLOAD.workspace_id,
    key_id="k1",
    method="GET",
    expires_at=1_900_000_000,
    object_id=uuid.UUID("0190c2d4-0000-7000-8000-000000000003"),
)


@pytest.mark.parametrize("claims", [UPLOAD, DOWNLOAD], ids=["upload", "download"])
def test_round_trip(claims: LinkClaims) -> None:
    claims_out, signature = decode_token(encode_token(SECRET, claims))

    assert claims_out == claims
    assert signature_matches(SECRET, claims_out, signature)


def test_other_secret_fails() -> None:
    claims, signature = decode_token(encode_token(SECRET, UPLOAD))

    assert not signature_matches(b"t" * 32, claims, signature)


@pytest.mark.parametrize(
    "change",
    [
        {"link_id": "abd"},
        {"key_id": "k2"},
        {"expires_at": 1_900_000_001},
        {"bucket_id": uuid.UUID("0190c2d4-0000-7000-8000-000000000009")},
        {"key": "photos/b.png"},
        {"max_bytes": 1001},
        {"content_types": ("image/png", "text/html")},
        {"method": "GET"},
        {"object_id": uuid.UUID("0190c2d4-0000-7000-8000-000000000003")},
    ],
)
def test_changed_field_fails(change: dict[str, object]) -> None:
    _claims, signature = decode_token(encode_token(SECRET, UPLOAD))
    altered = dataclasses.replace(UPLOAD, **change)  # type: ignore[arg-type]

    assert not signature_matches(SECRET, altered, signature)


def test_each_character_change_rejected() -> None:
    token = encode_token(SECRET, UPLOAD)
    for index in range(len(token)):
        replacement = "A" if token[index] != "A" else "B"
        changed = token[:index] + replacement + token[index + 1 :]
        try:
            claims, signature = decode_token(changed)
        except LinkRejected as exc:
            assert exc.code == "link_tampered"
            continue
        assert not signature_matches(SECRET, claims, signature), f"index {index} passed"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "abc.", ".abc", "!!!.###", "e30.AAAA", "x" * 9000 + ".AA"],
)
def test_malformed_token_rejected(token: str) -> None:
    with pytest.raises(LinkRejected) as caught:
        decode_token(token)

    assert caught.value.code == "link_tampered"
    assert caught.value.status == 403
