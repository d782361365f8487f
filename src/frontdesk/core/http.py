"""HTTP helpers: the client address behind trusted proxies, the request body limit and the
checks on request text."""

from __future__ import annotations

import collections
import json
import re
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdesk.core.errors import FieldError, problem_response
from frontdesk.core.routing import template_for_path
from frontdesk.core.text import (
    NOT_UTF8_MESSAGE,
    NUL_MESSAGE,
    SURROGATE_MESSAGE,
    URL_ENCODING_MESSAGE,
    nul_path,
    unpaired_surrogate_path,
)


def client_ip(connection: HTTPConnection, trusted_proxies: list[IPv4Network | IPv6Network]) -> str:
    """Return the client's address, using X-Forwarded-For only when a trusted proxy sent it.

    The header is read from the right: each hop that is itself a trusted proxy is skipped, and
    the first address that is not is the client. A spoofed left part is never reached.
    """
    peer = connection.client.host if connection.client else "unknown"
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return peer
    header = connection.headers.get("x-forwarded-for", "")
    hops = [part.strip() for part in header.split(",") if part.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def _is_trusted(address: str, networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


_FORM_PATH = re.compile(r"^/f/[^/]+$")
_FORM_UPLOAD_PATH = re.compile(r"^/f/[^/]+/uploads$")
_CHAT_UPLOAD_PATH = re.compile(r"^/chat/[^/]+/uploads$")


def _is_streamed_upload(scope: Scope) -> bool:
    """Return whether the route limits its own body: file uploads and received emails."""
    if scope.get("method") != "POST":
        return False
    path: str = scope.get("path", "")
    if path.startswith("/api/v1/storage/buckets/") and path.endswith("/objects"):
        return True
    # Received emails, which their routes limit to FRONTDESK_INBOUND_MAX_BYTES.
    if path == "/api/v1/email/inbound" or (
        path.startswith("/webhooks/email/") and path.endswith("/inbound")
    ):
        return True
    # Form and chat uploads, limited by their routes.
    return _FORM_UPLOAD_PATH.match(path) is not None or _CHAT_UPLOAD_PATH.match(path) is not None


def _is_multipart_form_post(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return (
        scope.get("method") == "POST"
        and content_type == b"multipart/form-data"
        and _FORM_PATH.match(scope.get("path", "")) is not None
    )


class BodySizeLimitMiddleware:
    """Reject request bodies over the limit with 413, by header or while streaming.

    Single-file uploads are left to the storage limits. A browser's multipart post of a
    public form, which may carry its files, gets ``multipart_form_max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, multipart_form_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.multipart_form_max_bytes = multipart_form_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_streamed_upload(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = (
            self.multipart_form_max_bytes
            if _is_multipart_form_post(scope, headers)
            else self.max_bytes
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await _send_problem(
            scope,
            receive,
            send,
            status=413,
            code="payload_too_large",
            title="Payload too large",
            detail=f"The request body is larger than the limit of {limit} bytes.",
        )


class _BodyTooLarge(BaseException):
    """Raised from receive(); a BaseException so that body parsers do not turn it into 400."""

    pass


# An escape of a UTF-16 surrogate (\ud800 to \udfff) or of NUL, or a surrogate encoded as
# UTF-8 bytes. Bodies without any are passed on without being parsed here.
_TEXT_HINT = re.compile(rb"\\[uU][dD][89a-fA-F]|\\u0000|\xed[\xa0-\xbf]")


def _content_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or content_type.endswith(b"+json")


class RequestTextMiddleware:
    """Reject with 422, naming the field, request text that could not be stored or echoed.

    - A JSON body that is not UTF-8.
    - JSON text with an unpaired UTF-16 surrogate or NUL. JSON allows the escape "\\ud800"
      alone, and Python's json module decodes it into a string that cannot be encoded as
      UTF-8. PostgreSQL cannot store NUL ("\\u0000") in text.
    - A query string whose names or values are not UTF-8 once percent-decoded. Starlette
      would decode the bytes with replacement characters (U+FFFD) and pass them on as if
      the client had sent them.

    Bodies of other types are passed on unread. Form posts are left to their routes: an
    email provider's webhook must not lose a delivery over its encoding.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = url_encoded_error(scope.get("query_string") or b"", location="query")
        if error is not None:
            await _reject(scope, receive, send, error, self.app)
            return
        if not _is_json(_content_type(dict(scope.get("headers") or []))):
            await self.app(scope, receive, send)
            return
        messages: collections.deque[Message] = collections.deque()
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if messages:
                return messages.popleft()
            return await receive()

        error = _unstorable_text(bytes(body))
        if error is not None:
            await _reject(scope, replay, send, error, self.app)
            return
        await self.app(scope, replay, send)


def _routed(scope: Scope) -> bool:
    """Tell whether some route of the application serves the request's path."""
    app = scope.get("app")
    if app is None:
        return True
    return template_for_path(app, scope.get("method", ""), scope.get("path", "")) is not None


async def _reject(
    scope: Scope, receive: Receive, send: Send, error: FieldError, app: ASGIApp
) -> None:
    """Reject the request with 422 for ``error``, or pass it on to ``app`` when no route
    serves its path, so that an unknown path is a 404 whatever its query or body."""
    if not _routed(scope):
        await app(scope, receive, send)
        return
    await _send_problem(
        scope,
        receive,
        send,
        status=422,
        code="validation_failed",
        title="Validation failed",
        detail=f"Invalid value for '{error.field}': {error.message}",
        errors=[error],
    )


async def _send_problem(scope: Scope, receive: Receive, send: Send, **problem: Any) -> None:
    """Send a problem+json response to the request before any route has run."""
    response = problem_response(Request(scope), **problem)
    await response(scope, receive, send)


# A percent-escape of a byte outside ASCII, or a raw byte outside ASCII: data without any is
# ASCII text and needs no check.
_URL_TEXT_HINT = re.compile(rb"%[89a-fA-F][0-9a-fA-F]|[\x80-\xff]")


def url_encoded_error(data: bytes, *, location: str) -> FieldError | None:
    """Return the error for the first name or value of URL-encoded ``data`` that is not UTF-8
    once percent-decoded, or None.

    The field is the parameter's name, or ``location`` (such as "query") when the name
    itself is the bad part. NUL is left to each route: search takes any text, and the
    other parameters reject control characters with their own rules.
    """
    if _URL_TEXT_HINT.search(data) is None:
        return None
    for pair in data.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return FieldError(field=location, message=URL_ENCODING_MESSAGE, code="string_unicode")
        try:
            unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return FieldError(
                field=name or location, message=URL_ENCODING_MESSAGE, code="string_unicode"
            )
    return None


def _unstorable_text(body: bytes) -> FieldError | None:
    """Return the error for a body that is not UTF-8, or for the first text of the body that
    contains a lone surrogate or NUL."""
    # Python's json module would also read UTF-16 and UTF-32, which JSON over HTTP is not.
    # Without a byte order mark those are ASCII with NUL bytes between, and JSON in UTF-8
    # never has a NUL byte (NUL in a string is the escape \u0000).
    try:
        # Surrogates encoded as UTF-8 bytes pass here, so the check below names their field.
        body.decode("utf-8", "surrogatepass")
        utf8 = b"\x00" not in body
    except UnicodeDecodeError:
        utf8 = False
    if not utf8:
        return FieldError(field="body", message=NOT_UTF8_MESSAGE, code="json_invalid")
    if _TEXT_HINT.search(body) is None:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # Not JSON that Python reads: the route reports that.
        return None
    path = unpaired_surrogate_path(document)
    if path is not None:
        return FieldError(field=path or "body", message=SURROGATE_MESSAGE, code="string_unicode")
    path = nul_path(document)
    if path is not None:
        return FieldError(field=path or "body", message=NUL_MESSAGE, code="invalid_character")
    return None
