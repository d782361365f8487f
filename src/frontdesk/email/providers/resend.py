"""Resend: POST /emails with a Bearer API key and an Idempotency-Key.

API reference: https://resend.com/docs/api-reference/emails/send-email, and for error
names https://resend.com/docs/api-reference/errors. For a repeated Idempotency-Key within
24 hours, Resend returns the first reply instead of sending again.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from pydantic import SecretStr

from frontdesk.email.mime import (
    OutgoingEmail,
    build_mime,
    extra_headers,
    parse_address,
    parse_recipients,
)
from frontdesk.email.providers.base import (
    HttpProvider,
    HttpProviderConfig,
    SendResult,
    response_json,
)
from frontdesk.email.transports import PermanentDeliveryError

RESEND_API = "https://api.resend.com"
KEY_ERRORS = frozenset({"missing_api_key", "invalid_api_key", "restricted_api_key"})
# The same key while the first request with it still runs; retrying later succeeds.
TEMPORARY_ERRORS = frozenset({"concurrent_idempotent_requests"})


class ResendConfig(HttpProviderConfig):
    api_key: SecretStr
    api_base_url: str = RESEND_API


class ResendProvider(HttpProvider):
    name = "resend"
    display_name = "Resend"

    def __init__(self, config: ResendConfig, *, http_client: httpx.AsyncClient | None) -> None:
        key = config.api_key.get_secret_value()
        super().__init__(
            base_url=config.api_base_url,
            timeout_seconds=config.timeout_seconds,
            secrets=[key],
            http_client=http_client,
        )
        self._key = key

    def request_body(self, email: OutgoingEmail) -> dict[str, Any]:
        """Build the JSON body of POST /emails; raise ``PermanentDeliveryError`` if invalid."""
        build_mime(email)
        recipients = parse_recipients(email)
        body: dict[str, Any] = {
            "from": parse_address(email.from_address, "From address").formatted(),
            "to": [item.formatted() for item in recipients.to],
            "subject": email.subject.strip(),
            "headers": dict(extra_headers(email)),
        }
        if email.text:
            body["text"] = email.text
        if email.html:
            body["html"] = email.html
        if recipients.cc:
            body["cc"] = [item.formatted() for item in recipients.cc]
        if recipients.reply_to is not None:
            body["reply_to"] = recipients.reply_to.formatted()
        if email.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(attachment.data).decode("ascii"),
                    "filename": attachment.filename.strip(),
                    "content_type": attachment.content_type.strip().lower(),
                    **(
                        {"content_id": attachment.content_id.strip()}
                        if attachment.content_id is not None
                        else {}
                    ),
                }
                for attachment in email.attachments
            ]
        return body

    async def send(self, email: OutgoingEmail) -> SendResult:
        key = email.idempotency_key.strip()
        if not 1 <= len(key) <= 256 or not key.isascii() or not key.isprintable():
            raise PermanentDeliveryError(
                "the idempotency key must be 1 to 256 printable ASCII characters for Resend"
            )
        response = await self.post(
            "/emails",
            json=self.request_body(email),
            headers={"Authorization": f"Bearer {self._key}", "Idempotency-Key": key},
        )
        body = response_json(response)
        if response.status_code == 200:
            message_id = body.get("id")
            return SendResult(provider_message_id=str(message_id) if message_id else None)
        error_name = str(body.get("name") or "")
        message = str(body.get("message") or response.text)
        detail = f"{error_name}: {message}" if error_name else message
        if error_name in KEY_ERRORS or response.status_code == 401:
            raise PermanentDeliveryError(
                f"Resend rejected the API key (HTTP {response.status_code}): "
                f"{self.scrub(detail)}. Create a key with sending access in Resend's API Keys."
            )
        if error_name in TEMPORARY_ERRORS:
            raise self.status_error(response, detail, permanent=False)
        raise self.status_error(response, detail)
