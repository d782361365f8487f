"""Open pixels, click redirects and one-click unsubscribe links, with signed tokens.

A token is ``<payload>.<signature>``: the payload is base64url JSON and the signature is
HMAC-SHA256 over it with a key derived from the instance secret, truncated to 16 bytes.
A click token carries the target URL, so a tampered or foreign token never redirects
anywhere: without a valid signature there is no URL to go to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import uuid
from typing import Any

_KEY_LABEL = b"frontdesk email tracking v1"
_SIGNATURE_BYTES = 16
# An <a> start tag's href attribute, quoted with " or '.
_HREF = re.compile(
    r"""(<a\b[^>]*?\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE | re.DOTALL
)


class InvalidToken(Exception):
    pass


def _key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret_key: bytes, purpose: str, data: dict[str, Any]) -> str:
    payload = _b64(json.dumps({"p": purpose, **data}, separators=(",", ":")).encode())
    signature = hmac.new(_key(secret_key), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(signature[:_SIGNATURE_BYTES])}"


def verify(secret_key: bytes, purpose: str, token: str) -> dict[str, Any]:
    """Return the token's data, or raise InvalidToken when it is malformed or tampered with."""
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise InvalidToken("malformed")
    expected = hmac.new(_key(secret_key), payload.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
        if not hmac.compare_digest(given, expected[:_SIGNATURE_BYTES]):
            raise InvalidToken("signature")
        data: dict[str, Any] = json.loads(_unb64(payload))
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed") from exc
    if not isinstance(data, dict) or data.get("p") != purpose:
        raise InvalidToken("purpose")
    return data


def email_id_of(data: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(data["e"]))
    except (KeyError, ValueError) as exc:
        raise InvalidToken("email id") from exc


def open_url(public_url: str, secret_key: bytes, email_id: uuid.UUID) -> str:
    return f"{public_url}/e/o/{sign(secret_key, 'open', {'e': str(email_id)})}.gif"


def click_url(public_url: str, secret_key: bytes, email_id: uuid.UUID, target: str) -> str:
    return f"{public_url}/e/c/{sign(secret_key, 'click', {'e': str(email_id), 'u': target})}"


def unsubscribe_url(public_url: str, secret_key: bytes, email_id: uuid.UUID) -> str:
    return f"{public_url}/e/u/{sign(secret_key, 'unsubscribe', {'e': str(email_id)})}"


def add_tracking(
    body: str,
    *,
    public_url: str,
    secret_key: bytes,
    email_id: uuid.UUID,
    opens: bool,
    clicks: bool,
) -> str:
    """Rewrite http(s) links to click redirects and append the open pixel to an HTML body.

    Links to this instance's own tracking and unsubscribe addresses are left alone, as are
    mailto:, tel: and fragment links.
    """
    if clicks:

        def rewrite(match: re.Match[str]) -> str:
            quoted = match.group(2) if match.group(2) is not None else match.group(3)
            target = html.unescape(quoted).strip()
            lowered = target.lower()
            if not lowered.startswith(("http://", "https://")) or target.startswith(
                f"{public_url}/e/"
            ):
                return match.group(0)
            redirect = click_url(public_url, secret_key, email_id, target)
            return f'{match.group(1)}"{html.escape(redirect)}"'

        body = _HREF.sub(rewrite, body)
    if opens:
        pixel = (
            f'<img src="{html.escape(open_url(public_url, secret_key, email_id))}" width="1" '
            'height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
        )
        closing = body.lower().rfind("</body>")
        body = body[:closing] + pixel + body[closing:] if closing != -1 else body + pixel
    return body
