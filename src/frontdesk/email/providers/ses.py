"""Amazon SES API v2: SendEmail with a raw MIME message, signed with Signature Version 4.

API reference: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html.
The request is POST /v2/email/outbound-emails with ``Content.Raw.Data``, the base64 of the
MIME bytes. Errors name their type in the X-Amzn-ErrorType header (rest-json protocol).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import Field, SecretStr

from frontdesk.email.mime import OutgoingEmail, build_mime, parse_address, parse_recipients
from frontdesk.email.providers.base import (
    HttpProvider,
    HttpProviderConfig,
    SendResult,
    response_json,
)
from frontdesk.email.transports import PermanentDeliveryError

SEND_EMAIL_PATH = "/v2/email/outbound-emails"
# The signing name of SES; the v2 API's endpoint prefix is "email".
SIGNING_SERVICE = "ses"

# Error types of SendEmail (botocore's sesv2 model) and of AWS request authentication.
PERMANENT_ERRORS = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "BadRequestException",
        "NotFoundException",
        "SendingPausedException",
    }
)
TEMPORARY_ERRORS = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "ThrottlingException", "Throttling"}
)
CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
        "InvalidClientTokenId",
        "MissingAuthenticationTokenException",
        "AccessDeniedException",
    }
)


class SesConfig(HttpProviderConfig):
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    access_key_id: str = Field(min_length=16, max_length=128, pattern=r"^\w+$")
    secret_access_key: SecretStr
    configuration_set: str | None = None
    # Default: https://email.{region}.amazonaws.com, the regional SES v2 endpoint.
    api_base_url: str | None = None


def error_type(response: httpx.Response, body: dict[str, Any]) -> str:
    """Return the AWS error type, from X-Amzn-ErrorType or the body's ``__type`` or ``code``."""
    header = response.headers.get("x-amzn-errortype", "")
    if header:
        return header.split(":", 1)[0]
    raw = str(body.get("__type") or body.get("code") or body.get("Code") or "")
    return raw.rsplit("#", 1)[-1]


class SesProvider(HttpProvider):
    name = "ses"
    display_name = "Amazon SES"

    def __init__(self, config: SesConfig, *, http_client: httpx.AsyncClient | None) -> None:
        secret = config.secret_access_key.get_secret_value()
        super().__init__(
            base_url=config.api_base_url or f"https://email.{config.region}.amazonaws.com",
            timeout_seconds=config.timeout_seconds,
            secrets=[secret],
            http_client=http_client,
        )
        self._credentials = Credentials(config.access_key_id, secret)
        self._region = config.region
        self._configuration_set = config.configuration_set

    def request_body(self, email: OutgoingEmail) -> dict[str, Any]:
        """Build the SendEmail request; raise ``PermanentDeliveryError`` if invalid."""
        mime = build_mime(email)
        recipients = parse_recipients(email)
        body: dict[str, Any] = {
            "FromEmailAddress": parse_address(email.from_address, "From address").address,
            "Destination": {"ToAddresses": [item.address for item in recipients.to]},
            "Content": {"Raw": {"Data": base64.b64encode(mime.as_bytes()).decode("ascii")}},
        }
        if recipients.cc:
            body["Destination"]["CcAddresses"] = [item.address for item in recipients.cc]
        if self._configuration_set:
            body["ConfigurationSetName"] = self._configuration_set
        return body

    def signed_headers(self, body: bytes) -> dict[str, str]:
        """Sign the request with botocore's SigV4 signer; return the headers to send."""
        request = AWSRequest(
            method="POST",
            url=self.base_url + SEND_EMAIL_PATH,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self._credentials, SIGNING_SERVICE, self._region).add_auth(request)
        return dict(request.headers.items())

    async def send(self, email: OutgoingEmail) -> SendResult:
        content = json.dumps(self.request_body(email)).encode("utf-8")
        response = await self.post(
            SEND_EMAIL_PATH, content=content, headers=self.signed_headers(content)
        )
        body = response_json(response)
        if response.status_code == 200:
            message_id = body.get("MessageId")
            return SendResult(provider_message_id=str(message_id) if message_id else None)
        code = error_type(response, body)
        message = str(body.get("message") or body.get("Message") or response.text)
        detail = f"{code}: {message}" if code else message
        if code in CREDENTIAL_ERRORS:
            raise PermanentDeliveryError(
                f"Amazon SES rejected the credentials (HTTP {response.status_code}): "
                f"{self.scrub(detail)}. Check the access key id, the secret access key and "
                "that the key may call ses:SendEmail in this region."
            )
        if code in TEMPORARY_ERRORS:
            raise self.status_error(response, detail, permanent=False)
        if code in PERMANENT_ERRORS:
            raise self.status_error(response, detail, permanent=True)
        raise self.status_error(response, detail)
