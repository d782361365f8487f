"""SendGrid: POST /v3/mail/send with a Bearer API key.

API reference: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send.
SendGrid replies 202 Accepted with the message id in the X-Message-Id header.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from pydantic import SecretStr

from frontdesk.email.mime import (
    MailAddress,
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
from frontdesk.email.transports import PermanentDeliveryError, TemporaryDeliveryError

SENDGRID_API = "https://api.sendgrid.com"
# For subusers in SendGrid's EU region.
SENDGRID_EU_API = "https://api.eu.sendgrid.com"


class SendGridConfig(HttpProviderConfig):
    api_key: SecretStr
    api_base_url: str = SENDGRID_API


def _address(item: MailAddress) -> dict[str, str]:
    if item.display_name:
        return {"email": item.address, "name": item.display_name}
    return {"email": item.address}


def _unique(items: list[MailAddress], seen: set[str]) -> list[MailAddress]:
    """Return the items whose address is not in ``seen`` yet, adding each to ``seen``."""
    kept = []
    for item in items:
        if item.address.lower() not in seen:
            seen.add(item.address.lower())
            kept.append(item)
    return kept


class SendGridProvider(HttpProvider):
    name = "sendgrid"
    display_name = "SendGrid"

    def __init__(self, config: SendGridConfig, *, http_client: httpx.AsyncClient | None) -> None:
        key = config.api_key.get_secret_value()
        super().__init__(
            base_url=config.api_base_url,
            timeout_seconds=config.timeout_seconds,
            secrets=[key],
            http_client=http_client,
        )
        self._key = key

    def request_body(self, email: OutgoingEmail) -> dict[str, Any]:
        """Build the JSON body of POST /v3/mail/send; raise PermanentDeliveryError if invalid."""
        build_mime(email)
        recipients = parse_recipients(email)
        # SendGrid rejects a personalization that names one address twice in to and cc, so
        # each address is kept at its first place only.
        seen: set[str] = set()
        to = _unique(recipients.to, seen)
        cc = _unique(recipients.cc, seen)

        personalization: dict[str, Any] = {"to": [_address(item) for item in to]}
        if cc:
            personalization["cc"] = [_address(item) for item in cc]
        # SendGrid requires text/plain before text/html, and no empty value.
        content = [
            {"type": media_type, "value": value}
            for media_type, value in (("text/plain", email.text), ("text/html", email.html))
            if value
        ]

        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _address(parse_address(email.from_address, "From address")),
            "subject": email.subject.strip(),
            "content": content,
            "headers": dict(extra_headers(email)),
        }
        if recipients.reply_to is not None:
            body["reply_to"] = _address(recipients.reply_to)
        if email.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(attachment.data).decode("ascii"),
                    "type": attachment.content_type.strip().lower(),
                    "filename": attachment.filename.strip(),
                    "disposition": "attachment" if attachment.content_id is None else "inline",
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
        response = await self.post(
            "/v3/mail/send",
            json=self.request_body(email),
            headers={"Authorization": f"Bearer {self._key}"},
        )
        if response.status_code in (200, 202):
            return SendResult(provider_message_id=response.headers.get("x-message-id"))
        errors = response_json(response).get("errors")
        if isinstance(errors, list) and errors:
            detail = "; ".join(
                str(item.get("message"))
                + (f" (field {item['field']})" if item.get("field") else "")
                for item in errors
                if isinstance(item, dict)
            )
        else:
            detail = response.text
        if response.status_code == 401:
            raise PermanentDeliveryError(
                f"SendGrid rejected the API key (HTTP 401): {self.scrub(detail)}. "
                "Create a key with the Mail Send permission in SendGrid's API Keys settings."
            )
        error = self.status_error(response, detail)
        if (
            isinstance(error, TemporaryDeliveryError)
            and error.retry_after is None
            and response.status_code == 429
        ):
            # SendGrid documents X-RateLimit-Reset (a Unix time) rather than Retry-After.
            reset = response.headers.get("x-ratelimit-reset", "")
            if reset.isdigit():
                error.retry_after = max(float(reset) - time.time(), 0.0)
        raise error
