"""Resolve the secret key and encryption keys: from settings, or a generated key file.

Only the embedded default (SQLite, development) may generate keys, into the data folder.
With Postgres or in production the service refuses to start without configured secrets,
because a key generated on one host would differ on the next.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from frontdesk.config import Settings
from frontdesk.core.crypto import KeyEncryptionKey, parse_keys

KEY_FILE_NAME = "secret-keys.json"


class MissingSecretError(RuntimeError):
    pass


@dataclass(frozen=True)
class Secrets:
    secret_key: bytes
    encryption_keys: list[KeyEncryptionKey]
    key_file: Path | None


def _generate_key_file(path: Path) -> dict[str, str]:
    content = {
        "secret_key": secrets.token_urlsafe(48),
        "encryption_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)
    os.replace(temporary, path)
    return content


def resolve_secrets(settings: Settings) -> Secrets:
    configured_key = settings.secret_key.get_secret_value() if settings.secret_key else None
    configured_enc = (
        settings.encryption_keys.get_secret_value() if settings.encryption_keys else None
    )
    if configured_key and configured_enc:
        return Secrets(configured_key.encode(), parse_keys(configured_enc), None)

    if not settings.is_embedded_default:
        missing = [
            name
            for name, value in (
                ("FRONTDESK_SECRET_KEY", configured_key),
                ("FRONTDESK_ENCRYPTION_KEYS", configured_enc),
            )
            if not value
        ]
        raise MissingSecretError(
            f"{' and '.join(missing)} must be set with Postgres or FRONTDESK_ENV=production; "
            "generate values with 'frontdesk generate-secrets'."
        )

    path = settings.data_dir / KEY_FILE_NAME
    stored = json.loads(path.read_text()) if path.exists() else _generate_key_file(path)
    key = configured_key or stored["secret_key"]
    enc = configured_enc or stored["encryption_keys"]
    return Secrets(key.encode(), parse_keys(enc), path)
