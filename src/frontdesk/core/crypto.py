"""Envelope encryption for secrets stored in the database (provider credentials, tokens).

Each value gets its own random data key; the data key is wrapped with a key-encryption key
(KEK) named by an id, and both layers use AES-256-GCM. Rotating a KEK means adding a new key
first in the list: new values use it, old values still open with the key their id names.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class DecryptionError(Exception):
    pass


@dataclass(frozen=True)
class KeyEncryptionKey:
    key_id: str
    key: bytes


def parse_keys(value: str) -> list[KeyEncryptionKey]:
    """Parse ``id:base64key,id2:base64key2``; every key must be 32 bytes."""
    keys = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise ValueError("each encryption key must look like KEY_ID:BASE64_KEY")
        raw = base64.b64decode(encoded)
        if len(raw) != 32:
            raise ValueError(f"encryption key '{key_id}' must be 32 bytes, got {len(raw)}")
        keys.append(KeyEncryptionKey(key_id, raw))
    if not keys:
        raise ValueError("no encryption key given")
    return keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class EnvelopeCipher:
    def __init__(self, keys: list[KeyEncryptionKey]) -> None:
        if not keys:
            raise ValueError("EnvelopeCipher needs at least one key")
        self._primary = keys[0]
        self._by_id = {key.key_id: key for key in keys}

    @property
    def primary_key_id(self) -> str:
        return self._primary.key_id

    def encrypt(self, plaintext: bytes, *, associated_data: bytes = b"") -> str:
        """Encrypt and return a self-describing text token (key id, wrapped key, ciphertext)."""
        data_key = AESGCM.generate_key(bit_length=256)
        data_nonce = os.urandom(12)
        ciphertext = AESGCM(data_key).encrypt(data_nonce, plaintext, associated_data)
        wrap_nonce = os.urandom(12)
        aad = self._primary.key_id.encode()
        wrapped = AESGCM(self._primary.key).encrypt(wrap_nonce, data_key, aad)
        envelope = {
            "k": self._primary.key_id,
            "wn": _b64(wrap_nonce),
            "wk": _b64(wrapped),
            "n": _b64(data_nonce),
            "c": _b64(ciphertext),
        }
        return f"{_VERSION}.{_b64(json.dumps(envelope, separators=(',', ':')).encode())}"

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> bytes:
        version, _, body = token.partition(".")
        if version != _VERSION:
            raise DecryptionError(f"unknown envelope version '{version}'")
        try:
            envelope = json.loads(_unb64(body))
            key = self._by_id[envelope["k"]]
            data_key = AESGCM(key.key).decrypt(
                _unb64(envelope["wn"]), _unb64(envelope["wk"]), key.key_id.encode()
            )
            return AESGCM(data_key).decrypt(
                _unb64(envelope["n"]), _unb64(envelope["c"]), associated_data
            )
        except KeyError as exc:
            raise DecryptionError(f"no key with id {exc} is configured") from exc
        except Exception as exc:
            raise DecryptionError("the value cannot be decrypted with the configured keys") from exc

    def encrypt_text(self, text: str, *, associated_data: bytes = b"") -> str:
        return self.encrypt(text.encode(), associated_data=associated_data)

    def decrypt_text(self, token: str, *, associated_data: bytes = b"") -> str:
        return self.decrypt(token, associated_data=associated_data).decode()
