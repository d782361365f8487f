"""Local fakes of the email provider HTTP APIs: one Starlette app served by uvicorn.

Each provider lives under its own path prefix (``/postmark``, ``/sendgrid``, ``/ses``,
``/mailgun``, ``/resend``). Each checks requests as the provider documents them: the auth
header, the content type, the required fields and base64 validity. For Amazon SES it also
recomputes the Signature Version 4 signature from the secret key, without botocore. A
request that fails a check gets the provider's error reply, so the adapter raises a
``DeliveryError`` that names the failed check. ``fail_next`` makes the next request to a
provider get a chosen error. Keys and tokens are random per server.

Use ``serve_fake_providers()`` as an async context manager: it binds 127.0.0.1 on a free
port in the running event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live_server import HOST, listening_socket

SES_REGION = "eu-west-1"
# SendGrid refuses these in ``headers``; they come from other fields of the request.
SENDGRID_RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
POSTMARK_FIELDS = frozenset(
    {
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Tag",
        "HtmlBody",
        "TextBody",
        "ReplyTo",
        "Headers",
        "TrackOpens",
        "TrackLinks",
        "Metadata",
        "Attachments",
        "MessageStream",
    }
)
RESEND_FIELDS = frozenset(
    {
        "from",
        "to",
        "subject",
        "bcc",
        "cc",
        "reply_to",
        "html",
        "text",
        "headers",
        "attachments",
        "tags",
        "scheduled_at",
    }
)
# Allowed clock difference between a signed request's X-Amz-Date and now, as AWS applies.
SES_MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class RecordedRequest:
    provider: str
    method: str
    path: str
    # Header names in lowercase.
    headers: dict[str, str]
    body: bytes
    # Form fields and files, for multipart/form-data requests.
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def mime(self) -> EmailMessage:
        """The MIME message the request carries (SES raw data or the Mailgun file)."""
        if self.provider == "ses":
            raw = base64.b64decode(self.json()["Content"]["Raw"]["Data"], validate=True)
        else:
            raw = self.files["message"][2]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before replying, to make the client time out.
    delay: float = 0.0

    def response(self) -> Response:
        if isinstance(self.body, (dict, list)):
            return JSONResponse(self.body, self.status, headers=self.headers)
        return Response(self.body or "", self.status, headers=self.headers)


class CheckFailed(Exception):
    """A request broke the provider's documented format; ``reply`` is its error."""

    def __init__(self, reply: Response) -> None:
        super().__init__(reply.body)
        self.reply = reply


def decode_base64(value: Any, what: str, fail: Callable[[str], Response]) -> bytes:
    if not isinstance(value, str):
        raise CheckFailed(fail(f"{what} must be a base64 string"))
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise CheckFailed(fail(f"{what} is not valid base64: {exc}")) from exc


class FakeProviders:
    def __init__(self) -> None:
        self.url = ""
        self.postmark_token = secrets.token_hex(16)
        self.sendgrid_key = "SG." + secrets.token_urlsafe(32)
        self.resend_key = "re_" + secrets.token_urlsafe(24)
        self.mailgun_key = secrets.token_hex(24)
        self.mailgun_domain = "mg.studio.example"
        self.ses_access_key_id = "AKIA" + secrets.token_hex(8).upper()
        self.ses_secret = secrets.token_urlsafe(30)
        self.requests: list[RecordedRequest] = []
        # The message id of each accepted request, in order.
        self.accepted_ids: list[str] = []
        self._errors: dict[str, list[ErrorReply]] = {}
        # Resend idempotency: key -> (request body, reply body).
        self._resend_keys: dict[str, tuple[Any, dict[str, str]]] = {}
        self.app = Starlette(
            routes=[
                Route(
                    "/postmark/email", self._handler("postmark", self._postmark), methods=["POST"]
                ),
                Route(
                    "/sendgrid/v3/mail/send",
                    self._handler("sendgrid", self._sendgrid),
                    methods=["POST"],
                ),
                Route(
                    "/ses/v2/email/outbound-emails",
                    self._handler("ses", self._ses),
                    methods=["POST"],
                ),
                Route(
                    "/mailgun/v3/{domain}/messages.mime",
                    self._handler("mailgun", self._mailgun),
                    methods=["POST"],
                ),
                Route("/resend/emails", self._handler("resend", self._resend), methods=["POST"]),
            ]
        )

    def config(self, provider: str, **overrides: Any) -> dict[str, Any]:
        """Settings for ``build_provider`` that point ``provider`` at this server."""
        base = f"{self.url}/{provider}"
        configs: dict[str, dict[str, Any]] = {
            "postmark": {"server_token": self.postmark_token, "api_base_url": base},
            "sendgrid": {"api_key": self.sendgrid_key, "api_base_url": base},
            "resend": {"api_key": self.resend_key, "api_base_url": base},
            "mailgun": {
                "api_key": self.mailgun_key,
                "domain": self.mailgun_domain,
                "api_base_url": base,
            },
            "ses": {
                "region": SES_REGION,
                "access_key_id": self.ses_access_key_id,
                "secret_access_key": self.ses_secret,
                "api_base_url": base,
            },
        }
        return {**configs[provider], **overrides}

    def fail_next(
        self,
        provider: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
    ) -> None:
        """Reply to the next request to ``provider`` with this error, before any check."""
        reply = ErrorReply(status=status, body=body, headers=headers or {}, delay=delay)
        self._errors.setdefault(provider, []).append(reply)

    def received(self, provider: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.provider == provider]

    def _handler(
        self,
        provider: str,
        check: Callable[[Request, RecordedRequest], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            body = await request.body()
            form: dict[str, list[str]] = {}
            files: dict[str, tuple[str, str, bytes]] = {}
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                async with request.form() as parsed:
                    for key, value in parsed.multi_items():
                        if isinstance(value, UploadFile):
                            data = await value.read()
                            files[key] = (
                                value.filename or "",
                                value.content_type or "",
                                data,
                            )
                        else:
                            form.setdefault(key, []).append(value)
            recorded = RecordedRequest(
                provider=provider,
                method=request.method,
                path=request.url.path,
                headers={key.lower(): value for key, value in request.headers.items()},
                body=body,
                form=form,
                files=files,
            )
            self.requests.append(recorded)
            queued = self._errors.get(provider)
            if queued:
                reply = queued.pop(0)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                return reply.response()
            try:
                return await check(request, recorded)
            except CheckFailed as failure:
                return failure.reply

        return handle

    # Postmark: https://postmarkapp.com/developer/api/email-api

    async def _postmark(self, request: Request, recorded: RecordedRequest) -> Response:
        def fail(message: str, code: int = 300) -> Response:
            return JSONResponse({"ErrorCode": code, "Message": message}, 422)

        if recorded.headers.get("x-postmark-server-token") != self.postmark_token:
            return JSONResponse(
                {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."},
                401,
            )
        if recorded.headers.get("accept") != "application/json":
            raise CheckFailed(fail("Accept must be application/json", 409))
        if recorded.headers.get("content-type") != "application/json":
            raise CheckFailed(fail("Content-Type must be application/json", 409))
        try:
            body = recorded.json()
        except ValueError:
            raise CheckFailed(fail("Invalid JSON", 402)) from None
        unknown = set(body) - POSTMARK_FIELDS
        if unknown:
            raise CheckFailed(fail(f"Unknown fields: {sorted(unknown)}", 403))
        for name in ("From", "To", "Subject"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise CheckFailed(fail(f"Missing or empty {name}"))
        if not body.get("HtmlBody") and not body.get("TextBody"):
            raise CheckFailed(fail("Provide either email TextBody or HtmlBody or both."))
        count = sum(len(str(body.get(name) or "").split(",")) for name in ("To", "Cc", "Bcc"))
        if count > 50:
            raise CheckFailed(fail("Too many recipients; the maximum is 50."))
        for header in body.get("Headers", []):
            if set(header) != {"Name", "Value"} or not all(
                isinstance(value, str) for value in header.values()
            ):
                raise CheckFailed(fail("Each header needs a string Name and Value"))
        for attachment in body.get("Attachments", []):
            if not attachment.get("Name") or not attachment.get("ContentType"):
                raise CheckFailed(fail("Attachments need a Name and a ContentType"))
            decode_base64(attachment.get("Content"), "Attachment Content", fail)
            content_id = attachment.get("ContentID")
            if content_id is not None and not str(content_id).startswith("cid:"):
                raise CheckFailed(fail("ContentID must start with cid:"))
        message_id = str(uuid.uuid4())
        self.accepted_ids.append(message_id)
        return JSONResponse(
            {
                "To": body["To"],
                "SubmittedAt": dt.datetime.now(dt.UTC).isoformat(),
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": "OK",
            }
        )

    # SendGrid: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send

    async def _sendgrid(self, request: Request, recorded: RecordedRequest) -> Response:
        def fail(message: str, status: int = 400, field_name: str | None = None) -> Response:
            error = {"message": message, "field": field_name, "help": None}
            return JSONResponse({"errors": [error]}, status)

        if recorded.headers.get("authorization") != f"Bearer {self.sendgrid_key}":
            raise CheckFailed(
                fail("The provided authorization grant is invalid, expired, or revoked", 401)
            )
        if recorded.headers.get("content-type") != "application/json":
            raise CheckFailed(fail("Content-Type should be application/json.", 415))
        try:
            body = recorded.json()
        except ValueError:
            raise CheckFailed(fail("Bad Request", 400)) from None
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            raise CheckFailed(fail("personalizations is required", field_name="personalizations"))
        for personalization in personalizations:
            recipients = personalization.get("to")
            if not isinstance(recipients, list) or not recipients:
                raise CheckFailed(fail("to is required", field_name="personalizations.0.to"))
            addresses = [
                item["email"].lower()
                for name in ("to", "cc", "bcc")
                for item in personalization.get(name, [])
            ]
            if len(addresses) != len(set(addresses)):
                raise CheckFailed(
                    fail(
                        "Each email address in the personalization block should be unique"
                        " between to, cc, and bcc.",
                        field_name="personalizations.0",
                    )
                )
        if not isinstance(body.get("from"), dict) or not body["from"].get("email"):
            raise CheckFailed(fail("The from object must be provided", field_name="from"))
        if not body.get("subject"):
            raise CheckFailed(fail("The subject is required", field_name="subject"))
        content = body.get("content")
        if not isinstance(content, list) or not content:
            raise CheckFailed(fail("content is required", field_name="content"))
        types = [item.get("type") for item in content]
        if "text/plain" in types and types[0] != "text/plain":
            raise CheckFailed(
                fail("If present, text/plain must be first", field_name="content.0.type")
            )
        if any(not item.get("value") for item in content):
            raise CheckFailed(fail("content value must be non-empty", field_name="content"))
        headers = body.get("headers", {})
        for name, value in headers.items():
            if name.lower() in SENDGRID_RESERVED_HEADERS:
                raise CheckFailed(fail(f"{name} is a reserved header", field_name="headers"))
            if not isinstance(value, str):
                raise CheckFailed(fail("header values must be strings", field_name="headers"))
        for index, attachment in enumerate(body.get("attachments", [])):
            where = f"attachments.{index}"
            decode_base64(
                attachment.get("content"),
                "The attachment content",
                lambda message, where=where: fail(message, field_name=f"{where}.content"),
            )
            if not attachment.get("filename"):
                raise CheckFailed(fail("filename is required", field_name=f"{where}.filename"))
            disposition = attachment.get("disposition", "attachment")
            if disposition not in ("inline", "attachment"):
                raise CheckFailed(fail("invalid disposition", field_name=f"{where}.disposition"))
            if disposition == "inline" and not attachment.get("content_id"):
                raise CheckFailed(
                    fail("content_id is required for inline", field_name=f"{where}.content_id")
                )
        message_id = secrets.token_urlsafe(16)
        self.accepted_ids.append(message_id)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    # Amazon SES v2: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html

    async def _ses(self, request: Request, recorded: RecordedRequest) -> Response:
        def fail(
            message: str, error_type: str = "BadRequestException", status: int = 400
        ) -> Response:
            return JSONResponse(
                {"message": message}, status, headers={"X-Amzn-ErrorType": error_type}
            )

        raw_path = request.scope.get("raw_path", recorded.path.encode()).decode("ascii")
        problem = verify_sigv4(
            recorded,
            path=raw_path,
            access_key_id=self.ses_access_key_id,
            secret=self.ses_secret,
            region=SES_REGION,
            service="ses",
        )
        if problem is not None:
            error_type, message = problem
            raise CheckFailed(fail(message, error_type, 403))
        if recorded.headers.get("content-type") != "application/json":
            raise CheckFailed(fail("Content-Type must be application/json"))
        try:
            body = recorded.json()
        except ValueError:
            raise CheckFailed(fail("The request body is not valid JSON")) from None
        raw = (body.get("Content") or {}).get("Raw") or {}
        data = decode_base64(raw.get("Data"), "Content.Raw.Data", fail)
        message = email.message_from_bytes(data, policy=email.policy.default)
        if message["From"] is None or message["To"] is None or message.defects:
            raise CheckFailed(
                fail("Illegal header or content in the raw message", "MessageRejected")
            )
        if any(len(line) > 998 for line in data.split(b"\r\n")):
            raise CheckFailed(fail("Line over 998 characters", "MessageRejected"))
        message_id = f"0102{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
        self.accepted_ids.append(message_id)
        return JSONResponse({"MessageId": message_id})

    # Mailgun: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages

    async def _mailgun(self, request: Request, recorded: RecordedRequest) -> Response:
        expected = "Basic " + base64.b64encode(f"api:{self.mailgun_key}".encode()).decode()
        if recorded.headers.get("authorization") != expected:
            return Response("Forbidden", 401)
        if request.path_params["domain"] != self.mailgun_domain:
            return JSONResponse({"message": "Domain not found"}, 404)
        if not recorded.headers.get("content-type", "").startswith("multipart/form-data"):
            return JSONResponse({"message": "Content-Type must be multipart/form-data"}, 400)
        if not recorded.form.get("to"):
            return JSONResponse({"message": "to parameter is missing"}, 400)
        if "message" not in recorded.files:
            return JSONResponse({"message": "message parameter is missing"}, 400)
        if not all("@" in address for address in recorded.form["to"]):
            return JSONResponse({"message": "'to' parameter is not a valid address"}, 400)
        message = email.message_from_bytes(
            recorded.files["message"][2], policy=email.policy.default
        )
        if message["From"] is None or message.defects:
            return JSONResponse({"message": "message is not a valid MIME message"}, 400)
        message_id = (
            f"{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{self.mailgun_domain}"
        )
        self.accepted_ids.append(message_id)
        return JSONResponse({"id": f"<{message_id}>", "message": "Queued. Thank you."})

    # Resend: https://resend.com/docs/api-reference/emails/send-email

    async def _resend(self, request: Request, recorded: RecordedRequest) -> Response:
        def fail(status: int, name: str, message: str) -> Response:
            return JSONResponse({"statusCode": status, "name": name, "message": message}, status)

        authorization = recorded.headers.get("authorization")
        if not authorization:
            raise CheckFailed(
                fail(401, "missing_api_key", "Missing API key in the authorization header.")
            )
        if authorization != f"Bearer {self.resend_key}":
            raise CheckFailed(fail(403, "invalid_api_key", "API key is invalid"))
        key = recorded.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 256:
            raise CheckFailed(
                fail(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
            )
        if recorded.headers.get("content-type") != "application/json":
            raise CheckFailed(fail(400, "validation_error", "Content-Type must be JSON"))
        try:
            body = recorded.json()
        except ValueError:
            raise CheckFailed(fail(400, "validation_error", "Invalid JSON")) from None
        unknown = set(body) - RESEND_FIELDS
        if unknown:
            raise CheckFailed(fail(422, "validation_error", f"Unknown fields {sorted(unknown)}"))
        for name in ("from", "to", "subject"):
            if not body.get(name):
                raise CheckFailed(fail(422, "missing_required_field", f"Missing `{name}` field."))
        if not body.get("html") and not body.get("text"):
            raise CheckFailed(fail(422, "validation_error", "Provide `html` or `text`."))
        if not all(isinstance(value, str) for value in body.get("headers", {}).values()):
            raise CheckFailed(fail(422, "validation_error", "Header values must be strings."))
        for attachment in body.get("attachments", []):
            decode_base64(
                attachment.get("content"),
                "attachments.content",
                lambda message: fail(422, "validation_error", message),
            )
            if not attachment.get("filename"):
                raise CheckFailed(fail(422, "validation_error", "Attachment filename missing."))
            content_id = attachment.get("content_id")
            if content_id is not None and not 0 < len(content_id) < 128:
                raise CheckFailed(fail(422, "validation_error", "content_id is too long."))
        if key is not None and key in self._resend_keys:
            first_body, first_reply = self._resend_keys[key]
            if first_body != body:
                raise CheckFailed(
                    fail(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                )
            return JSONResponse(first_reply)
        reply = {"id": str(uuid.uuid4())}
        self.accepted_ids.append(reply["id"])
        if key is not None:
            self._resend_keys[key] = (body, reply)
        return JSONResponse(reply)


_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def verify_sigv4(
    recorded: RecordedRequest,
    *,
    path: str,
    access_key_id: str,
    secret: str,
    region: str,
    service: str,
) -> tuple[str, str] | None:
    """Check an AWS Signature Version 4 header; return (error type, message) or None.

    Follows https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html:
    canonical request, string to sign, then the signing key derived from the secret.
    """
    match = _AUTHORIZATION.fullmatch(recorded.headers.get("authorization", ""))
    if match is None:
        return "IncompleteSignatureException", "Authorization header is missing or malformed"
    if match["key"] != access_key_id:
        return (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if match["region"] != region or match["service"] != service:
        return (
            "InvalidSignatureException",
            f"Credential should be scoped to region {region} and service {service}",
        )
    amz_date = recorded.headers.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "IncompleteSignatureException", "X-Amz-Date is missing or malformed"
    if not amz_date.startswith(match["date"]):
        return "InvalidSignatureException", "Credential date does not match X-Amz-Date"
    if abs(dt.datetime.now(dt.UTC) - signed_at) > SES_MAX_CLOCK_SKEW:
        return "InvalidSignatureException", "Signature expired"
    signed_headers = match["signed"].split(";")
    if "host" not in signed_headers or "x-amz-date" not in signed_headers:
        return "InvalidSignatureException", "host and x-amz-date must be signed"
    if signed_headers != sorted(signed_headers):
        return "InvalidSignatureException", "SignedHeaders must be sorted"
    missing = [name for name in signed_headers if name not in recorded.headers]
    if missing:
        return "InvalidSignatureException", f"signed headers are missing: {missing}"
    canonical_headers = "".join(
        f"{name}:{' '.join(recorded.headers[name].split())}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [
            recorded.method,
            path,
            "",
            canonical_headers,
            match["signed"],
            hashlib.sha256(recorded.body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret).encode("utf-8"), match["date"])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


@asynccontextmanager
async def serve_fake_providers(*, startup_timeout: float = 10.0) -> AsyncIterator[FakeProviders]:
    """Serve a fresh ``FakeProviders`` on 127.0.0.1 in the running event loop."""
    providers = FakeProviders()
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(providers.app, lifespan="off", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(startup_timeout):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.01)
        providers.url = f"http://{HOST}:{port}"
        yield providers
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        finally:
            sock.close()
