"""Turn a stored message into MIME and deliver it over SMTP, classifying failures.

``PermanentDeliveryError`` means that sending the same message again cannot succeed, as after
a 5xx reply or for an invalid recipient. ``TemporaryDeliveryError`` means that a later attempt
may succeed, as after a refused connection, a timeout or a 4xx reply.
"""

from __future__ import annotations

import email.policy
import re
from email.message import EmailMessage as MimeMessage
from email.utils import parseaddr

import aiosmtplib
from email_validator import EmailNotValidError, validate_email

from frontdesk.config import Settings, SmtpSecurity
from frontdesk.email.models import EmailMessage

# Header order of the outgoing message; MIME-Version and Content-Type follow from the body.
HEADER_ORDER = (
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
)

_ADDRESS = re.compile(r"\S+@\S+")


class DeliveryError(Exception):
    """Delivery failed; ``str()`` is safe to log (addresses are masked)."""

    def __init__(self, reason: str) -> None:
        super().__init__(_ADDRESS.sub("[address]", reason))
        # The full reason, which may name the recipient; stored on the message, not logged.
        self.reason = reason


class PermanentDeliveryError(DeliveryError):
    pass


class TemporaryDeliveryError(DeliveryError):
    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        # Seconds the provider asked to wait before the next attempt (Retry-After), if any.
        self.retry_after = retry_after


def _check_address(value: str, header: str) -> None:
    _name, address = parseaddr(value)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PermanentDeliveryError(f"invalid {header} address: {exc}") from exc


def build_mime(message: EmailMessage) -> MimeMessage:
    """Build the MIME message from the stored headers and bodies.

    The message is multipart/alternative with text and HTML, or text/plain alone when the
    HTML body is empty.

    The headers were fixed when the message was queued, so every attempt sends the same
    Message-ID and Date. Raises ``PermanentDeliveryError`` for an invalid address or header.
    """
    _check_address(message.to_address, "To")
    if message.reply_to:
        _check_address(message.reply_to, "Reply-To")
    mime = MimeMessage(policy=email.policy.SMTP)
    try:
        for name in HEADER_ORDER:
            value = message.headers.get(name)
            if value:
                # The policy rejects values with CR or LF, a second guard against injection.
                mime[name] = value
        mime.set_content(message.text_body)
        if message.html_body:
            mime.add_alternative(message.html_body, subtype="html")
    except (ValueError, TypeError) as exc:
        raise PermanentDeliveryError(f"the message cannot be encoded: {exc}") from exc
    return mime


def _reply_error(code: int, text: str) -> DeliveryError:
    reason = f"SMTP reply {code} {text}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(reason)
    return TemporaryDeliveryError(reason)


async def send_smtp(settings: Settings, mime: MimeMessage) -> None:
    """Send ``mime`` to the configured SMTP server; raise a ``DeliveryError`` on failure."""
    if not settings.smtp_host:
        raise PermanentDeliveryError("FRONTDESK_SMTP_HOST is not set")
    security = settings.smtp_security
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            mime,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=(password or "") if settings.smtp_username else None,
            use_tls=security == SmtpSecurity.tls,
            start_tls=security == SmtpSecurity.starttls,
            validate_certs=settings.smtp_verify_certificate,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        # With one recipient, this is that recipient's RCPT TO reply.
        refusal = exc.recipients[0]
        raise _reply_error(refusal.code, refusal.message) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _reply_error(exc.code, exc.message) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise TemporaryDeliveryError(f"SMTP timed out: {exc}") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TemporaryDeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}") from exc
