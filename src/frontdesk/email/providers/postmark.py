"""Postmark: POST /email with the server token.

API reference: https://postmarkapp.com/developer/api/email-api and, for the error codes,
https://postmarkapp.com/developer/api/overview#error-codes.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from pydantic import Field, SecretStr

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

POSTMARK_API = "https://api.postmarkapp.com"


class PostmarkConfig(HttpProviderConfig):
    server_token: SecretStr
    # The message stream id, such as "outbound" or "my-stream-id"; Postmark uses "outbound"
    # (the default transactional stream) when it is absent. Ids are short and have no spaces.
    message_stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,100}$")
    api_base_url: str = POSTMARK_API


class PostmarkProvider(HttpProvider):
    name = "postmark"
    display_name = "Postmark"

    def __init__(self, config: PostmarkConfig, *, http_client: httpx.AsyncClient | None) -> None:
        token = config.server_token.get_secret_value()
        super().__init__(
            base_url=config.api_base_url,
            timeout_seconds=config.timeout_seconds,
            secrets=[token],
            http_client=http_client,
        )
        self._token = token
        self._message_stream = config.message_stream

    def request_body(self, email: OutgoingEmail) -> dict[str, Any]:
        """Build the JSON body of POST /email; raise ``PermanentDeliveryError`` if invalid."""
        # Building the MIME message applies the same checks as the SMTP and raw-MIME paths.
        build_mime(email)
        recipients = parse_recipients(email)

        body: dict[str, Any] = {
            "From": parse_address(email.from_address, "From address").formatted(),
            "To": ", ".join(item.formatted() for item in recipients.to),
            "Subject": email.subject.strip(),
            "Headers": [{"Name": name, "Value": value} for name, value in extra_headers(email)],
        }
        if email.text:
            body["TextBody"] = email.text
        if email.html:
            body["HtmlBody"] = email.html
        if recipients.cc:
            body["Cc"] = ", ".join(item.formatted() for item in recipients.cc)
        if recipients.reply_to is not None:
            body["ReplyTo"] = recipients.reply_to.formatted()
        if self._message_stream:
            body["MessageStream"] = self._message_stream
        if email.attachments:
            body["Attachments"] = [
                {
                    "Name": attachment.filename.strip(),
                    "Content": base64.b64encode(attachment.data).decode("ascii"),
                    "ContentType": attachment.content_type.strip().lower(),
                    **(
                        {"ContentID": f"cid:{attachment.content_id.strip()}"}
                        if attachment.content_id is not None
                        else {}
                    ),
                }
                for attachment in email.attachments
            ]
        return body

    async def send(self, email: OutgoingEmail) -> SendResult:
        response = await self.post(
            "/email",
            json=self.request_body(email),
            headers={"Accept": "application/json", "X-Postmark-Server-Token": self._token},
        )
        body = response_json(response)
        error_code = body.get("ErrorCode")
        message = str(body.get("Message") or response.text)
        detail = f"ErrorCode {error_code}: {message}" if error_code is not None else message
        if response.status_code == 200:
            if error_code not in (0, None):
                raise PermanentDeliveryError(f"Postmark did not accept the message: {detail}")
            message_id = body.get("MessageID")
            return SendResult(provider_message_id=str(message_id) if message_id else None)
        if response.status_code == 401:
            raise PermanentDeliveryError(
                f"Postmark rejected the server token (HTTP 401): {self.scrub(detail)}. "
                "Copy the Server API token from the API Tokens tab of the Postmark server."
            )
        if response.status_code == 422:
            # ErrorCode 300 is an invalid message and 406 an inactive (bounced or
            # unsubscribed) recipient. No 422 reply changes when the request is repeated.
            raise PermanentDeliveryError(
                f"Postmark rejected the message (HTTP 422): {self.scrub(detail)}"
            )
        raise self.status_error(response, detail)
