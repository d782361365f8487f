"""Mailgun: POST /v3/{domain}/messages.mime with the MIME message as a form file.

API reference: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages.
Authentication is HTTP basic with the user ``api`` and the API key.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import Field, SecretStr

from frontdesk.email.mime import OutgoingEmail, build_mime, parse_recipients
from frontdesk.email.providers.base import (
    HttpProvider,
    HttpProviderConfig,
    SendResult,
    response_json,
)
from frontdesk.email.transports import PermanentDeliveryError

MAILGUN_BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


class MailgunConfig(HttpProviderConfig):
    # The sending domain as set up in Mailgun, such as mg.studio.example.
    domain: str = Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
    api_key: SecretStr
    region: Literal["us", "eu"] = "us"
    # Overrides the region's base URL.
    api_base_url: str | None = None


class MailgunProvider(HttpProvider):
    name = "mailgun"
    display_name = "Mailgun"

    def __init__(self, config: MailgunConfig, *, http_client: httpx.AsyncClient | None) -> None:
        key = config.api_key.get_secret_value()
        super().__init__(
            base_url=config.api_base_url or MAILGUN_BASE_URLS[config.region],
            timeout_seconds=config.timeout_seconds,
            secrets=[key],
            http_client=http_client,
        )
        self._auth = httpx.BasicAuth("api", key)
        self._domain = config.domain

    async def send(self, email: OutgoingEmail) -> SendResult:
        mime = build_mime(email).as_bytes()
        # Mailgun delivers to the "to" fields only, so they list every recipient.
        recipients = parse_recipients(email).envelope
        response = await self.post(
            f"/v3/{self._domain}/messages.mime",
            data={"to": recipients},
            files={"message": ("message.eml", mime, "message/rfc822")},
            auth=self._auth,
        )
        body = response_json(response)
        if response.status_code == 200:
            message_id = str(body.get("id") or "").strip("<>")
            return SendResult(provider_message_id=message_id or None)
        detail = str(body.get("message") or response.text)
        if response.status_code == 401:
            raise PermanentDeliveryError(
                f"Mailgun rejected the API key (HTTP 401): {self.scrub(detail)}. "
                "Check the key and that the region (US or EU) matches the domain's."
            )
        raise self.status_error(response, detail)
