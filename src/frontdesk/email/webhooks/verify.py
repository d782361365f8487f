"""Verify that a webhook delivery comes from SendGrid, Mailgun, Resend or Postmark.

Each function raises ``WebhookRejected`` when a check fails and returns when the delivery is
authentic. HMAC results and Basic credentials are compared in constant time. Signed
timestamps must lie within ``tolerance`` of ``now`` in either direction: an old one is a
replayed delivery, and one far ahead means a forged timestamp or a wrong clock. Amazon SNS
is verified in ``sns.py``.

A configured key or secret that cannot be decoded raises ``ValueError``: that is a
configuration error for a person to fix, not a bad delivery.

NOTE: it is not checked here whether SendGrid, Mailgun and Resend sign a retried delivery
with a fresh timestamp. A retry that keeps its first timestamp is rejected once it is older
than ``tolerance``, and the provider keeps retrying until it gives up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from frontdesk.core.text import load_json
from frontdesk.email.webhooks.errors import WebhookRejected

DEFAULT_TOLERANCE = timedelta(seconds=300)

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SVIX_ID_HEADER = "svix-id"
SVIX_TIMESTAMP_HEADER = "svix-timestamp"
SVIX_SIGNATURE_HEADER = "svix-signature"

# Unix seconds; 12 digits reach beyond the year 33000 and keep int() input short.
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """Return the header's value, matching the name case-insensitively; empty counts as absent."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value.strip() or None
    return None


def load_json_body(body: bytes | str | Mapping[str, Any] | list[Any], provider: str) -> Any:
    """Decode a raw JSON body; an already decoded mapping or list is returned unchanged."""
    if not isinstance(body, bytes | str):
        return body
    try:
        return load_json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(
            "payload_invalid",
            f"The {provider} request body is not valid JSON ({exc}); check that the webhook "
            "URL is configured for this provider's event webhook.",
        ) from exc


def resolve_now(now: datetime | None) -> datetime:
    """Return ``now``, or the current UTC time when it is None; a naive value is an error."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now


def check_timestamp(
    signed_at: datetime, *, source: str, now: datetime | None, tolerance: timedelta
) -> None:
    """Raise ``timestamp_outside_tolerance`` unless ``signed_at`` is within ``tolerance``."""
    current = resolve_now(now)
    skew = current - signed_at
    if abs(skew) <= tolerance:
        return
    seconds = int(abs(skew).total_seconds())
    if skew > timedelta(0):
        detail = f"is {seconds} s old, more than the {int(tolerance.total_seconds())} s allowed"
        hint = "a replayed delivery is rejected; if real deliveries fail, check the server clock"
    else:
        detail = f"is {seconds} s ahead of the server clock"
        hint = "check the server clock (NTP)"
    raise WebhookRejected("timestamp_outside_tolerance", f"The {source} {detail}; {hint}.")


def parse_unix_seconds(value: str | int, source: str) -> datetime:
    """Parse a Unix time in whole seconds; anything else is ``signature_invalid``."""
    text = str(value).strip()
    if not _UNIX_SECONDS.fullmatch(text):
        raise WebhookRejected(
            "signature_invalid",
            f"The {source} is not a Unix time in seconds; the delivery was altered or does "
            "not come from the provider.",
        )
    return datetime.fromtimestamp(int(text), UTC)


def _decode_base64(value: str, source: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected(
            "signature_invalid",
            f"The {source} is not valid base64; the delivery was altered or does not come "
            "from the provider.",
        ) from exc


def _digests_equal(left: bytes, right: bytes) -> bool:
    """Compare in constant time, also hiding the lengths by comparing SHA-256 digests."""
    return hmac.compare_digest(hashlib.sha256(left).digest(), hashlib.sha256(right).digest())


# SendGrid Event Webhook


def load_sendgrid_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """Decode the verification key that SendGrid shows for a signed Event Webhook.

    The key is a base64 DER SubjectPublicKeyInfo of an ECDSA P-256 key. Raises ``ValueError``
    for anything else.
    """
    try:
        key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "The SendGrid verification key is not a base64 DER public key; copy it again from "
            "the Event Webhook settings (Signature Verification)."
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("The SendGrid verification key is not an ECDSA P-256 public key.")
    return key


def verify_sendgrid(
    body: bytes,
    headers: Mapping[str, str],
    *,
    public_key: str | ec.EllipticCurvePublicKey,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Verify a SendGrid Event Webhook delivery: ECDSA P-256 SHA-256 over timestamp + body.

    ``body`` must be the raw request bytes, because SendGrid signs them as sent, including
    any trailing CRLF. ``public_key`` is the key from SendGrid's settings or its decoded form.
    """
    signature_text = find_header(headers, SENDGRID_SIGNATURE_HEADER)
    timestamp_text = find_header(headers, SENDGRID_TIMESTAMP_HEADER)
    if signature_text is None or timestamp_text is None:
        raise WebhookRejected(
            "signature_missing",
            f"The {SENDGRID_SIGNATURE_HEADER} or {SENDGRID_TIMESTAMP_HEADER} header is missing; "
            "turn on Signature Verification for the Event Webhook in SendGrid.",
        )
    key = (
        public_key
        if isinstance(public_key, ec.EllipticCurvePublicKey)
        else load_sendgrid_public_key(public_key)
    )
    signed_at = parse_unix_seconds(timestamp_text, f"{SENDGRID_TIMESTAMP_HEADER} header")
    signature = _decode_base64(signature_text, f"{SENDGRID_SIGNATURE_HEADER} header")
    try:
        key.verify(signature, timestamp_text.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise WebhookRejected(
            "signature_invalid",
            "The SendGrid signature does not match the body and timestamp; check that the "
            "verification key matches the one in SendGrid's Event Webhook settings and that "
            "nothing rewrites the request body.",
        ) from exc
    check_timestamp(
        signed_at, source=f"{SENDGRID_TIMESTAMP_HEADER} header", now=now, tolerance=tolerance
    )


# Mailgun webhooks and routes


def verify_mailgun(
    body: bytes | str | Mapping[str, Any],
    *,
    signing_key: str,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Verify a Mailgun webhook delivery and return its decoded JSON body.

    Mailgun puts ``timestamp``, ``token`` and ``signature`` (hex HMAC-SHA256 of timestamp +
    token with the webhook signing key) in the body's ``signature`` object. The signature
    does not cover ``event-data``, so the token must be fresh as well: the caller stores each
    event id once, which makes a replayed token harmless.
    """
    payload = load_json_body(body, "Mailgun")
    if not isinstance(payload, dict):
        raise WebhookRejected("payload_invalid", "The Mailgun request body must be a JSON object.")
    signature = payload.get("signature")
    if not isinstance(signature, dict):
        raise WebhookRejected(
            "signature_missing",
            "The Mailgun body has no signature object; check that the URL is registered as a "
            "Mailgun webhook and not as a route.",
        )
    _verify_mailgun_values(
        signature.get("timestamp"),
        signature.get("token"),
        signature.get("signature"),
        source="signature object",
        signing_key=signing_key,
        now=now,
        tolerance=tolerance,
    )
    return payload


def verify_mailgun_form(
    form: Mapping[str, str],
    *,
    signing_key: str,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Verify a message that a Mailgun route forwarded, from its form fields.

    Routes post ``timestamp``, ``token`` and ``signature`` as form fields next to the message,
    signed like webhooks with the same signing key.
    """
    _verify_mailgun_values(
        form.get("timestamp"),
        form.get("token"),
        form.get("signature"),
        source="form fields",
        signing_key=signing_key,
        now=now,
        tolerance=tolerance,
    )


def _verify_mailgun_values(
    timestamp: object,
    token: object,
    signature: object,
    *,
    source: str,
    signing_key: str,
    now: datetime | None,
    tolerance: timedelta,
) -> None:
    if not signing_key:
        raise ValueError("The Mailgun webhook signing key is empty.")
    values = {"timestamp": timestamp, "token": token, "signature": signature}
    missing = [name for name, value in values.items() if value in (None, "")]
    if missing:
        raise WebhookRejected(
            "signature_missing",
            f"Missing {', '.join(missing)} in the Mailgun {source}; check that the request "
            "comes from Mailgun.",
        )
    if not isinstance(token, str) or not isinstance(signature, str):
        raise WebhookRejected(
            "signature_invalid", f"The Mailgun token and signature in the {source} must be text."
        )
    if not isinstance(timestamp, str | int) or isinstance(timestamp, bool):
        raise WebhookRejected(
            "signature_invalid", f"The Mailgun timestamp in the {source} must be Unix seconds."
        )
    timestamp_text = str(timestamp)
    signed_at = parse_unix_seconds(timestamp_text, f"Mailgun timestamp in the {source}")
    expected = hmac.new(
        signing_key.encode("utf-8"),
        (timestamp_text + token).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not _digests_equal(expected.encode("ascii"), signature.strip().lower().encode("utf-8")):
        raise WebhookRejected(
            "signature_invalid",
            "The Mailgun signature does not match the timestamp and token; check that the "
            "configured key is the HTTP webhook signing key of this Mailgun account.",
        )
    check_timestamp(
        signed_at, source=f"Mailgun timestamp in the {source}", now=now, tolerance=tolerance
    )


# Resend (Svix)


def _svix_key(secret: str) -> bytes:
    encoded = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "The Resend signing secret is not 'whsec_' followed by base64; copy it again from "
            "the webhook's page in Resend."
        ) from exc
    if not key:
        raise ValueError("The Resend signing secret is empty.")
    return key


def verify_resend(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Verify a Resend webhook delivery, which Svix signs.

    The signed content is ``svix-id.svix-timestamp.body`` and each entry of the
    space-separated ``svix-signature`` header is ``v1,<base64 HMAC-SHA256>``. Any matching
    entry passes, so deliveries still verify while Resend rotates the secret.
    """
    message_id = find_header(headers, SVIX_ID_HEADER)
    timestamp_text = find_header(headers, SVIX_TIMESTAMP_HEADER)
    signatures = find_header(headers, SVIX_SIGNATURE_HEADER)
    if message_id is None or timestamp_text is None or signatures is None:
        raise WebhookRejected(
            "signature_missing",
            "The svix-id, svix-timestamp or svix-signature header is missing; check that the "
            "request comes from a Resend webhook.",
        )
    key = _svix_key(secret)
    signed_at = parse_unix_seconds(timestamp_text, f"{SVIX_TIMESTAMP_HEADER} header")
    signed_content = f"{message_id}.{timestamp_text}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed_content, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        # Every entry is compared, so the time taken does not reveal which one matched.
        if version == "v1" and _digests_equal(expected, value.encode("utf-8")):
            matched = True
    if not matched:
        raise WebhookRejected(
            "signature_invalid",
            "No v1 entry of the svix-signature header matches the body; check that the "
            "configured secret is this endpoint's signing secret in Resend.",
        )
    check_timestamp(
        signed_at, source=f"{SVIX_TIMESTAMP_HEADER} header", now=now, tolerance=tolerance
    )


# Postmark


def verify_postmark(headers: Mapping[str, str], *, username: str, password: str) -> None:
    """Check the HTTP Basic credentials that Postmark sends from the webhook URL.

    Postmark does not sign webhooks. The business puts a user and password in the webhook
    URL (``https://user:password@host/path``) and Postmark sends them as Basic credentials.
    Postmark sends no timestamp either, so a replay is caught only by storing each event
    once (see ``parse_postmark``).
    """
    if not username or not password:
        raise ValueError("The Postmark webhook user and password must both be set.")
    authorization = find_header(headers, "Authorization")
    if authorization is None:
        raise WebhookRejected(
            "signature_missing",
            "The Authorization header is missing; put the user and password in the Postmark "
            "webhook URL as https://user:password@host/path.",
        )
    scheme, _, encoded = authorization.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    given_user, separator, given_password = decoded.partition(b":")
    user_matches = _digests_equal(given_user, username.encode("utf-8"))
    password_matches = _digests_equal(given_password, password.encode("utf-8"))
    if scheme.lower() != "basic" or not separator or not (user_matches and password_matches):
        raise WebhookRejected(
            "credentials_invalid",
            "The Basic credentials do not match the configured Postmark webhook user and "
            "password; check the user and password in the webhook URL in Postmark.",
        )
