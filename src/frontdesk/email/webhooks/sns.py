"""Verify Amazon SNS messages, which carry Amazon SES events to an HTTPS endpoint.

SNS signs a canonical string built from the message's fields with the private key of a
certificate that it serves from ``SigningCertURL``. The certificate is trusted because the
URL must name an SNS host of an AWS region exactly and is fetched over HTTPS, where TLS
authenticates that host. A valid signature is then checked against the certificate's key.

Field lists and the canonical string follow the AWS page "Verifying the signatures of Amazon
SNS messages" (docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from frontdesk.email.webhooks.errors import RejectionCode, WebhookRejected
from frontdesk.email.webhooks.verify import (
    DEFAULT_TOLERANCE,
    check_timestamp,
    load_json_body,
    resolve_now,
)

FetchCertificate = Callable[[str], Awaitable[bytes]]

SNS_CERTIFICATE_COMMON_NAME = "sns.amazonaws.com"

MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")

# Fields of the string to sign, in this order. Subject is signed only when present.
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)

# An AWS region name such as us-east-1, eu-central-2, us-gov-west-1 or cn-northwest-1. The
# strict form keeps out other amazonaws.com hosts that start with "sns.", such as the S3
# bucket host sns.s3.amazonaws.com.
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}"
_SNS_HOST = re.compile(rf"sns\.(?P<region>{_REGION})\.amazonaws\.com(?P<china>\.cn)?")


def _split_sns_url(url: object, field: str, code: RejectionCode) -> tuple[str, SplitResult]:
    """Split ``url`` after checking that it is https on an exact SNS host, port 443.

    Only printable ASCII without backslashes is accepted, so that no URL parser (ours,
    httpx's, a proxy's) can read a different host out of the same text.
    """

    def reject(problem: str) -> WebhookRejected:
        return WebhookRejected(
            code,
            f"The {field} {problem}; it must be an https URL on sns.<region>.amazonaws.com "
            "(or .amazonaws.com.cn). Check that the message comes from Amazon SNS.",
        )

    if not isinstance(url, str) or not url:
        raise reject("is missing")
    if any(not (0x21 <= ord(char) <= 0x7E) or char == "\\" for char in url):
        raise reject("contains whitespace, a backslash or a non-ASCII character")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise reject("does not use https")
    if "@" in parts.netloc:
        raise reject("contains a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise reject("has an invalid port") from None
    if port not in (None, 443):
        raise reject(f"uses port {port}")
    match = _SNS_HOST.fullmatch(parts.hostname or "")
    if match is None:
        raise reject("is not on an Amazon SNS host")
    if match["region"].startswith("cn-") != bool(match["china"]):
        raise reject("does not use the domain of its region")
    return url, parts


def check_certificate_url(url: object) -> str:
    """Return ``url`` when it can be the ``SigningCertURL`` of an SNS message.

    Besides the host rules of ``_split_sns_url``, the path must end in ``.pem`` and there may
    be no query or fragment. Raises ``WebhookRejected`` with ``certificate_url_invalid``.
    """
    text, parts = _split_sns_url(url, "SigningCertURL", "certificate_url_invalid")
    if parts.query or parts.fragment or not parts.path.endswith(".pem"):
        raise WebhookRejected(
            "certificate_url_invalid",
            "The SigningCertURL must name a .pem file without a query or fragment; check that "
            "the message comes from Amazon SNS.",
        )
    return text


def confirmation_url(message: Mapping[str, Any]) -> str:
    """Return the ``SubscribeURL`` of a verified SubscriptionConfirmation message.

    The URL must pass the same host rules as the certificate URL, call
    ``Action=ConfirmSubscription`` and name the message's own topic. Fetching it with GET
    confirms the subscription. Raises ``WebhookRejected`` with ``payload_invalid``.
    """
    if message.get("Type") != "SubscriptionConfirmation":
        raise WebhookRejected(
            "payload_invalid",
            "The SNS message Type is not SubscriptionConfirmation, so it has no SubscribeURL "
            "to confirm.",
        )
    url, parts = _split_sns_url(message.get("SubscribeURL"), "SubscribeURL", "payload_invalid")
    query = parse_qs(parts.query)
    if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [
        message.get("TopicArn")
    ]:
        raise WebhookRejected(
            "payload_invalid",
            "The SubscribeURL does not confirm a subscription to the message's TopicArn; "
            "check that the message comes from Amazon SNS.",
        )
    return url


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """Build the canonical string that SNS signs: ``name\\nvalue\\n`` for each listed field.

    Notifications sign Message, MessageId, Subject (when present), Timestamp, TopicArn and
    Type; subscription and unsubscription confirmations sign SubscribeURL and Token in place
    of Subject.
    """
    message_type = message.get("Type")
    if message_type not in MESSAGE_TYPES:
        raise WebhookRejected(
            "payload_invalid",
            f"The SNS message field Type must be one of {', '.join(MESSAGE_TYPES)}.",
        )
    fields = _NOTIFICATION_FIELDS if message_type == "Notification" else _CONFIRMATION_FIELDS
    lines: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise WebhookRejected(
                "payload_invalid",
                f"The SNS message field {name} is missing or not text; it is needed to check "
                "the signature.",
            )
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def _load_certificate(data: bytes, now: datetime) -> rsa.RSAPublicKey:
    # NOTE: the chain is not validated against a trust store. Trust rests on fetching from
    # an exact SNS host over TLS, so a fetcher must verify TLS certificates, as httpx does.
    try:
        certificate = (
            x509.load_pem_x509_certificate(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_certificate(data)
        )
    except ValueError as exc:
        raise WebhookRejected(
            "certificate_invalid",
            "The SNS signing certificate cannot be read as a PEM or DER X.509 certificate.",
        ) from exc
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [name.value for name in names] != [SNS_CERTIFICATE_COMMON_NAME]:
        raise WebhookRejected(
            "certificate_invalid",
            f"The SNS signing certificate's subject CN is not {SNS_CERTIFICATE_COMMON_NAME}; "
            "the message does not come from Amazon SNS.",
        )
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookRejected(
            "certificate_invalid",
            "The SNS signing certificate is outside its validity period; check the server "
            "clock if real messages fail.",
        )
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected(
            "certificate_invalid", "The SNS signing certificate does not hold an RSA key."
        )
    return key


def _parse_sns_timestamp(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise WebhookRejected(
            "payload_invalid",
            "The SNS message field Timestamp is not an ISO 8601 time with a UTC offset.",
        )
    return parsed


async def verify_sns_message(
    body: bytes | str | Mapping[str, Any],
    *,
    fetch_certificate: FetchCertificate,
    expected_topic_arn: str | None = None,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Verify an SNS message posted to an HTTPS subscription and return it decoded.

    The checks run in this order. First the fields needed for the signature, the topic when
    ``expected_topic_arn`` is set and the ``SigningCertURL``. Then the certificate: subject
    CN ``sns.amazonaws.com``, valid at ``now``, an RSA key. Then the signature, where
    SignatureVersion 1 is SHA1withRSA and 2 is SHA256withRSA. Last, ``Timestamp`` against
    ``tolerance``.

    SNS keeps the publish ``Timestamp`` when it retries a delivery, so ``tolerance`` must
    cover the topic's retry window; the default HTTP delivery policy retries within about a
    minute, a custom policy can retry for longer.

    Errors of ``fetch_certificate`` other than ``WebhookRejected`` propagate, so that a
    network failure leads to a server error and SNS retries.
    """
    message = load_json_body(body, "Amazon SNS")
    if not isinstance(message, dict):
        raise WebhookRejected(
            "payload_invalid", "The Amazon SNS request body must be a JSON object."
        )
    signature_text = message.get("Signature")
    version = message.get("SignatureVersion")
    if not signature_text or not version:
        raise WebhookRejected(
            "signature_missing",
            "The SNS message has no Signature or SignatureVersion; check that the request "
            "comes from Amazon SNS and that raw message delivery is off for this subscription.",
        )
    # SNS fixes SignatureVersion 1 as SHA1withRSA. A topic must opt in to 2 for SHA-256.
    algorithms = {"1": hashes.SHA1(), "2": hashes.SHA256()}  # noqa: S303
    algorithm = algorithms.get(str(version))
    if algorithm is None:
        raise WebhookRejected(
            "signature_invalid",
            "The SNS SignatureVersion is not 1 or 2, the versions this endpoint verifies.",
        )
    signed = string_to_sign(message)
    if expected_topic_arn is not None and message.get("TopicArn") != expected_topic_arn:
        raise WebhookRejected(
            "payload_invalid",
            "The SNS message field TopicArn is not the configured topic; check the topic ARN "
            "in the settings and which topics this endpoint is subscribed to.",
        )
    certificate_url = check_certificate_url(message.get("SigningCertURL"))
    try:
        signature = base64.b64decode(str(signature_text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected(
            "signature_invalid", "The SNS Signature is not valid base64."
        ) from exc

    current = resolve_now(now)
    key = _load_certificate(await fetch_certificate(certificate_url), current)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise WebhookRejected(
            "signature_invalid",
            "The SNS signature does not match the message; the message was altered or does "
            "not come from Amazon SNS.",
        ) from exc
    check_timestamp(
        _parse_sns_timestamp(message.get("Timestamp")),
        source="SNS message Timestamp",
        now=current,
        tolerance=tolerance,
    )
    return message


class HttpxCertificateFetcher:
    """Fetch SNS signing certificates over HTTPS with httpx, caching them by URL.

    Redirects are not followed and bodies over ``max_bytes`` are rejected. Cached
    certificates do not expire here, because ``verify_sns_message`` checks the validity
    period on every use. The cache keeps the ``max_cached`` most recently used URLs. A
    response other than 200 raises ``WebhookRejected`` (``certificate_invalid``), and
    connection errors and timeouts raise ``httpx.HTTPError``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout: float = 5.0,
        max_bytes: int = 32 * 1024,
        max_cached: int = 32,
    ) -> None:
        # A PEM certificate with a 2048-bit RSA key is about 2 KB; 32 KiB leaves ample room.
        self._client = client
        self._owns_client = client is None
        self._timeout = httpx.Timeout(timeout)
        self._max_bytes = max_bytes
        self._max_cached = max_cached
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = asyncio.Lock()

    async def __call__(self, url: str) -> bytes:
        check_certificate_url(url)
        cached = self._cache.get(url)
        if cached is not None:
            self._cache.move_to_end(url)
            return cached
        async with self._lock:
            # Another caller may have fetched the same URL while this one waited.
            cached = self._cache.get(url)
            if cached is None:
                cached = await self._fetch(url)
                self._cache[url] = cached
                while len(self._cache) > self._max_cached:
                    self._cache.popitem(last=False)
        return cached

    async def _fetch(self, url: str) -> bytes:
        if self._client is None:
            self._client = httpx.AsyncClient()
        request = self._client.build_request("GET", url, timeout=self._timeout)
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code != 200:
                raise WebhookRejected(
                    "certificate_invalid",
                    f"Fetching the SNS signing certificate returned HTTP {response.status_code}.",
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise WebhookRejected(
                        "certificate_invalid",
                        f"The SNS signing certificate is larger than {self._max_bytes} bytes.",
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the HTTP client if this fetcher created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
