"""SMTP with aiosmtplib: no security, STARTTLS or implicit TLS, with or without login.

Replies are classified as ``send_smtp`` in transports.py does: 5xx is permanent, 4xx and
network failures are temporary.
"""

from __future__ import annotations

from typing import Annotated

import aiosmtplib
import structlog
from pydantic import AfterValidator, Field, SecretStr, StrictBool

from frontdesk.config import SmtpSecurity
from frontdesk.core.hosts import normalize_host
from frontdesk.email.mime import OutgoingEmail, build_mime, parse_address, parse_recipients
from frontdesk.email.providers.base import ProviderConfig, SendResult
from frontdesk.email.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

log = structlog.get_logger()

DEFAULT_PORTS = {SmtpSecurity.none: 25, SmtpSecurity.starttls: 587, SmtpSecurity.tls: 465}


class SmtpConfig(ProviderConfig):
    host: Annotated[str, AfterValidator(normalize_host)] = Field(min_length=1, max_length=253)
    # Default: 25 without security, 587 for STARTTLS, 465 for implicit TLS.
    port: int | None = Field(default=None, strict=True, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.starttls
    username: str | None = None
    password: SecretStr | None = None
    verify_certificate: StrictBool = True
    timeout_seconds: float = Field(default=30.0, strict=True, gt=0, le=300)


def _reply_error(code: int, text: str) -> DeliveryError:
    reason = f"SMTP reply {code} {text}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(reason)
    return TemporaryDeliveryError(reason)


class SmtpProvider:
    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, email: OutgoingEmail) -> SendResult:
        mime = build_mime(email)
        sender = parse_address(
            email.from_address, "From address", globally_deliverable=False
        ).address
        recipients = parse_recipients(email).envelope
        config = self._config
        password = config.password.get_secret_value() if config.password else ""
        try:
            errors, _reply = await aiosmtplib.send(
                mime,
                sender=sender,
                recipients=recipients,
                hostname=config.host,
                port=config.port or DEFAULT_PORTS[config.security],
                username=config.username or None,
                password=password if config.username else None,
                use_tls=config.security == SmtpSecurity.tls,
                start_tls=config.security == SmtpSecurity.starttls,
                validate_certs=config.verify_certificate,
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # Every recipient was refused; the first refusal decides the class.
            first_rejection = exc.recipients[0]
            raise _reply_error(first_rejection.code, first_rejection.message) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _reply_error(exc.code, exc.message) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise TemporaryDeliveryError(f"SMTP timed out: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryDeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}") from exc
        if errors:
            # The server took the message for the other recipients, so sending again would
            # duplicate it; the refusals are logged and the send counts as done.
            log.warning(
                "email.recipients_refused",
                provider=self.name,
                refused=len(errors),
                codes=sorted({response.code for response in errors.values()}),
            )
        return SendResult(provider_message_id=None)

    async def close(self) -> None:
        return None
