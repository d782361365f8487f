"""Sign webhook deliveries the way each email provider does, with keys made in the test.

The signing code here is written from the providers' documentation separately from
``frontdesk.email.webhooks``, so a mistake in the library's string to sign fails the tests
instead of being repeated by them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

SNS_CERTIFICATE_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
)
SNS_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def unix(moment: datetime) -> str:
    return str(int(moment.timestamp()))


class SendGridSigner:
    """An Event Webhook signing key pair, with the public key as SendGrid shows it."""

    def __init__(self) -> None:
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")

    def headers(self, body: bytes, signed_at: datetime) -> dict[str, str]:
        timestamp = unix(signed_at)
        signature = self._private_key.sign(
            timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256())
        )
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> dict[str, str]:
    """The ``signature`` object of a Mailgun webhook body, or a route's form fields."""
    digest = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    return {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()}


def mailgun_body(signing_key: str, event_data: dict[str, Any], signed_at: datetime) -> bytes:
    token = secrets.token_hex(25)
    payload = {
        "signature": mailgun_signature(signing_key, unix(signed_at), token),
        "event-data": event_data,
    }
    return json.dumps(payload).encode()


class SvixSigner:
    """A Resend endpoint's signing secret (``whsec_<base64>``), signing like Svix."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(24)
        self.secret = "whsec_" + base64.b64encode(self._key).decode("ascii")

    def signature(self, message_id: str, timestamp: str, body: bytes) -> str:
        content = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, content, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode("ascii")

    def headers(self, body: bytes, message_id: str, signed_at: datetime) -> dict[str, str]:
        timestamp = unix(signed_at)
        return {
            "svix-id": message_id,
            "svix-timestamp": timestamp,
            "svix-signature": self.signature(message_id, timestamp, body),
        }


def postmark_authorization(user: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {credentials}"}


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical string of AWS's "Verifying the signatures of Amazon SNS messages"."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
    return text.encode("utf-8")


@dataclass
class SnsSigner:
    """An SNS signing certificate made by the test and a fake fetcher that serves it."""

    common_name: str = "sns.amazonaws.com"
    not_before: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=1))
    not_after: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(days=365))
    fetched: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)

    def sign(
        self,
        message: dict[str, Any],
        *,
        version: str = "2",
        certificate_url: str = SNS_CERTIFICATE_URL,
    ) -> dict[str, Any]:
        """Return ``message`` with Signature, SignatureVersion and SigningCertURL added."""
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self._key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode("ascii"),
            "SigningCertURL": certificate_url,
        }

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.certificate_pem


def sns_notification(
    ses_event: dict[str, Any],
    published_at: datetime,
    *,
    message_id: str = "9f5e0f43-7c1b-5e7e-9b0a-1c2d3e4f5a6b",
    subject: str | None = "Amazon SES Email Event Notification",
) -> dict[str, Any]:
    """An unsigned SNS Notification carrying an SES event, as SNS posts it."""
    message: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": SNS_TOPIC_ARN,
        "Message": json.dumps(ses_event),
        "Timestamp": published_at.strftime("%Y-%m-%dT%H:%M:%S.") + "123Z",
        "UnsubscribeURL": (
            "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={SNS_TOPIC_ARN}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
        ),
    }
    if subject is not None:
        message["Subject"] = subject
    return message


def sns_subscription_confirmation(
    published_at: datetime, *, kind: str = "Subscription"
) -> dict[str, Any]:
    """An unsigned SubscriptionConfirmation (or UnsubscribeConfirmation) message."""
    token = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3"
    return {
        "Type": f"{kind}Confirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": token,
        "TopicArn": SNS_TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {SNS_TOPIC_ARN}.",
        "SubscribeURL": (
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={SNS_TOPIC_ARN}&Token={token}"
        ),
        "Timestamp": published_at.strftime("%Y-%m-%dT%H:%M:%S.") + "456Z",
    }
