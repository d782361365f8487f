"""The port that every outbound email provider implements, and what the HTTP adapters share.

Every adapter raises ``PermanentDeliveryError`` when sending the same message again cannot
succeed (a rejected message, a wrong key) and ``TemporaryDeliveryError`` when a later attempt
may succeed (a rate limit, a 5xx reply, a timeout, a refused connection). Error reasons
carry the provider's own error text, so a "send test email" action can show it, and never
a key or token.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontdesk.core.hosts import normalize_host
from frontdesk.email.mime import OutgoingEmail
from frontdesk.email.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

# Maximum length of a provider's error text in an error reason, in characters.
MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class SendResult:
    # The provider's id for the accepted message, which its webhooks refer to; None for SMTP.
    provider_message_id: str | None


class EmailProvider(Protocol):
    name: str

    async def send(self, email: OutgoingEmail) -> SendResult:
        """Hand ``email`` to the provider; raise a ``DeliveryError`` when it is not accepted."""
        ...

    async def close(self) -> None: ...


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpProviderConfig(ProviderConfig):
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)

    @field_validator("api_base_url", check_fields=False)
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return normalize_base_url(value)


_BASE_URL_MESSAGE = "Use an http or https URL such as https://api.example.com."


def normalize_base_url(value: str) -> str:
    """Return a provider's base URL with its host as it will be connected to, or raise
    ValueError. The host is normalized like an SMTP host, so the private host check treats
    "LOCALHOST." as localhost."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(_BASE_URL_MESSAGE) from exc
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or port == 0
    ):
        raise ValueError(_BASE_URL_MESSAGE)
    # urlsplit drops an IPv6 address's brackets and lower-cases the name.
    host = normalize_host(parts.hostname)
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Read a Retry-After header: delay seconds or an HTTP date. None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def response_json(response: httpx.Response) -> dict[str, Any]:
    """Return the response body as a JSON object, or an empty dict when it is not one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


class HttpProvider:
    """Shared plumbing of the HTTP adapters: one client, error mapping, secret scrubbing."""

    name = "http"
    # The provider's name as users know it, used in error reasons.
    display_name = "the provider"

    def __init__(
        self,
        *,
        base_url: str,
        timeout_seconds: float,
        secrets: list[str],
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self.base_url = base_url
        self._timeout = timeout_seconds
        self._secrets = [secret for secret in secrets if secret]
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient()

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def scrub(self, text: str) -> str:
        """Return ``text`` cut to ``MAX_ERROR_TEXT`` with any configured secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        return text[:MAX_ERROR_TEXT]

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST to ``base_url + path``; timeouts and connection errors are temporary."""
        url = self.base_url + path
        try:
            return await self._client.post(url, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise TemporaryDeliveryError(
                f"the request to {self.display_name} timed out after {self._timeout:g} s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise TemporaryDeliveryError(
                f"connecting to {self.display_name} failed: {type(exc).__name__}: "
                + self.scrub(str(exc))
            ) from exc

    def status_error(
        self, response: httpx.Response, detail: str, *, permanent: bool | None = None
    ) -> DeliveryError:
        """Build the error for a non-success reply.

        ``permanent`` overrides the default: 429 and 5xx are temporary, other codes are
        permanent. ``Retry-After`` on a temporary reply becomes ``retry_after``.
        """
        status = response.status_code
        reason = f"{self.display_name} replied HTTP {status}: {self.scrub(detail)}"
        if permanent is None:
            permanent = not (status == 429 or status >= 500)
        if permanent:
            return PermanentDeliveryError(reason)
        return TemporaryDeliveryError(
            reason, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
