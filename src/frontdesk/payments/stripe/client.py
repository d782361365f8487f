"""A small Stripe API client over httpx, speaking Stripe's documented wire format.

Requests are form-encoded with Stripe's bracketed keys (``metadata[invoice_id]=...``,
``line_items[0][price_data][currency]=eur``), carry the pinned ``Stripe-Version`` header and,
for every POST, an ``Idempotency-Key`` that the caller derives from our own record. Stripe
replays the first response for a repeated key and the same parameters, so a job that runs
again after a crash never creates a second charge or refund. Error responses
(``{"error": {"type", "code", "message", "param", ...}}``) become typed exceptions.

The official ``stripe`` SDK is not used because it keeps global configuration
(``stripe.api_key``) and its async support needs an HTTP client of its own. The few calls
here are plain form POSTs, GETs and DELETEs, which httpx sends with the timeouts and
transports that the tests control.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

log = structlog.get_logger()

# The API version every request pins. Objects in webhooks follow the endpoint's own version,
# which may be older or newer, so the event handlers read moved fields from both places.
# 2025-03-31.basil removed invoice.payment_intent and moved subscription current_period_*
# onto the subscription items.
STRIPE_API_VERSION = "2025-03-31.basil"

# Stripe's zero-decimal currencies (BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF
# XOF XPF) take whole units, which is also their ISO 4217 minor unit, so they need no
# conversion. The two sets below are the exceptions.
# ISO 4217 gives ISK no minor unit, but Stripe takes ISK amounts as two-decimal, with the
# decimal part zero (https://docs.stripe.com/currencies#special-cases).
TWO_DECIMAL_IN_STRIPE = frozenset({"ISK"})
# Three-decimal currencies keep ISO units in Stripe, but the last digit must be 0 when charging.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class AmountNotPayable(ValueError):
    """An amount that Stripe cannot charge in its currency, such as 1.005 KWD."""


def to_stripe_amount(amount: int, currency: str) -> int:
    """Convert an amount in ISO 4217 minor units to the unit Stripe expects for ``currency``."""
    code = currency.upper()
    if code in TWO_DECIMAL_IN_STRIPE:
        return amount * 100
    if code in THREE_DECIMAL and amount % 10 != 0:
        raise AmountNotPayable(
            f"Stripe charges {code} in multiples of 10 of its minor unit; {amount} is not one."
        )
    return amount


def from_stripe_amount(amount: int, currency: str) -> int:
    """Convert an amount in Stripe's unit for ``currency`` to ISO 4217 minor units."""
    if currency.upper() in TWO_DECIMAL_IN_STRIPE:
        return amount // 100
    return amount


def encode_form(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten nested params into Stripe's form keys: ``a[b][0][c]=value``.

    Booleans become ``true``/``false``, None is left out, and an empty string is sent as is
    (Stripe reads ``metadata[key]=`` as "unset this key").
    """
    pairs: list[tuple[str, str]] = []

    def add(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                add(f"{prefix}[{key}]" if prefix else str(key), inner)
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            for index, inner in enumerate(value):
                add(f"{prefix}[{index}]", inner)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        else:
            pairs.append((prefix, str(value)))

    add("", params)
    return pairs


class StripeError(Exception):
    """An error response from Stripe, or no response at all."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param
        self.request_id = request_id


class CardError(StripeError):
    """The card was declined (HTTP 402, type card_error)."""


class InvalidRequestError(StripeError):
    """Invalid parameters or an unknown object (HTTP 400/404, type invalid_request_error)."""


class IdempotencyError(StripeError):
    """An idempotency key was reused with different parameters."""


class AuthenticationError(StripeError):
    """The secret key is missing, invalid or revoked (HTTP 401)."""


class PermissionError_(StripeError):
    """The key lacks the permission for this request (HTTP 403)."""


class RateLimitError(StripeError):
    """Too many requests (HTTP 429); retried by the client before it raises."""


class ApiConnectionError(StripeError):
    """Stripe could not be reached or timed out, or responded with a 5xx."""


def _error_for(response: httpx.Response) -> StripeError:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {}
    status = response.status_code
    error_type = error.get("type")
    kwargs: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "code": error.get("code"),
        "param": error.get("param"),
        "request_id": response.headers.get("request-id"),
    }
    message = str(error.get("message") or f"Stripe responded with HTTP {status}.")
    if error_type == "idempotency_error":
        return IdempotencyError(message, **kwargs)
    if status == 402 or error_type == "card_error":
        return CardError(message, **kwargs)
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status == 403:
        return PermissionError_(message, **kwargs)
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status >= 500:
        return ApiConnectionError(message, **kwargs)
    return InvalidRequestError(message, **kwargs)


@dataclass(frozen=True)
class ClientOptions:
    api_base: str
    timeout_seconds: float
    max_retries: int
    # First retry delay in seconds; doubled for each later retry.
    retry_base_seconds: float = 0.5


class StripeClient:
    """Calls the Stripe API with one workspace's secret key."""

    def __init__(
        self,
        secret_key: str,
        options: ClientOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._secret_key = secret_key
        self._options = options
        self._http = httpx.AsyncClient(
            base_url=options.api_base.rstrip("/"),
            timeout=options.timeout_seconds,
            transport=transport,
            headers={
                "Authorization": f"Bearer {secret_key}",
                "Stripe-Version": STRIPE_API_VERSION,
                "User-Agent": "Frontdesk",
            },
        )

    @property
    def livemode(self) -> bool:
        return self._secret_key.startswith(("sk_live_", "rk_live_"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> StripeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self._request("GET", path, params=params or {}, idempotency_key=None)

    async def post(
        self, path: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """POST form-encoded ``params``; ``idempotency_key`` must name our own record."""
        if not idempotency_key:
            raise ValueError("every Stripe POST needs an idempotency key")
        return await self._request("POST", path, params=params, idempotency_key=idempotency_key)

    async def delete(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """DELETE ``path`` with ``params`` in the query string, as Stripe takes them.

        No idempotency key is sent: Stripe ignores it on DELETE, which is idempotent by
        definition (https://docs.stripe.com/api/idempotent_requests). A retry after a lost
        response can still fail where the first request succeeded, such as a 404 for a
        subscription that the first request canceled, so callers check the object then.
        """
        return await self._request("DELETE", path, params=params or {}, idempotency_key=None)

    async def list_all(
        self, path: str, params: Mapping[str, Any] | None = None, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Follow ``has_more`` with ``starting_after`` and return every object of a list."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**(params or {}), "limit": limit}
        while True:
            page = await self.get(path, query)
            data = page.get("data") or []
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            query["starting_after"] = data[-1]["id"]

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        pairs = httpx.QueryParams(encode_form(params))  # type: ignore[arg-type]
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        while True:
            attempt += 1
            try:
                if method in ("GET", "DELETE"):
                    response = await self._http.request(method, path, params=pairs, headers=headers)
                else:
                    response = await self._http.request(
                        method,
                        path,
                        content=str(pairs).encode(),
                        headers={
                            **headers,
                            "Content-Type": "application/x-www-form-urlencoded",
                        },
                    )
            except httpx.TimeoutException as exc:
                error: StripeError = ApiConnectionError(f"Stripe timed out: {exc!r}")
            except httpx.TransportError as exc:
                error = ApiConnectionError(f"Stripe could not be reached: {exc!r}")
            else:
                if response.status_code < 300:
                    body: dict[str, Any] = response.json()
                    return body
                error = _error_for(response)
                # Stripe's Stripe-Should-Retry header says when a retry may help (a lock timeout, say).
                should_retry = response.headers.get("Stripe-Should-Retry")
                if should_retry == "false":
                    raise error
                if not isinstance(error, RateLimitError | ApiConnectionError) and (
                    should_retry != "true"
                ):
                    raise error
            # Retrying is safe: a POST repeats with the same idempotency key, and GET and
            # DELETE are idempotent.
            if attempt > self._options.max_retries:
                raise error
            delay = self._options.retry_base_seconds * 2 ** (attempt - 1)
            log.warning(
                "stripe.request_retrying",
                path=path,
                attempt=attempt,
                status=error.status,
                error_type=error.error_type,
            )
            await asyncio.sleep(delay)
