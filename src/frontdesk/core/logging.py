"""Structured logging with structlog: readable in a terminal, JSON in production."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import structlog
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdesk.config import Environment, Settings
from frontdesk.core.routing import route_template, template_for_path


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto"
        and (settings.env == Environment.production or not sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


HTTP_REQUESTS = Histogram(
    "frontdesk_http_request_duration_seconds",
    "HTTP request duration by method, route template and status",
    ["method", "route", "status"],
)


# Paths whose segments are secrets: tracking and unsubscribe tokens, webhook addresses and
# signed storage links. Logs show the route with the secret part replaced.
_SECRET_PATHS = re.compile(r"^(/e/[ocu]/|/webhooks/email/[^/]+/|/storage/links/)[^/]+")


def redact_path(path: str) -> str:
    """Return ``path`` with a token segment replaced by ``[token]``."""
    return _SECRET_PATHS.sub(r"\1[token]", path)


class RequestLogMiddleware:
    """Give each request an id (or keep the caller's X-Request-ID) and log one summary line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            supplied if 0 < len(supplied) <= 100 and supplied.isprintable() else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The error handler outside this middleware responds 500 to an unhandled error.
            if status == 0:
                status = 500
            raise
        finally:
            duration = time.perf_counter() - started
            if scope["type"] == "http":
                # The route template, not the path, keeps the label set small.
                matched = scope.get("route")
                if matched is not None:
                    route = route_template(scope["app"], matched)
                else:
                    # Rejected before routing, such as a body that the text check turned away.
                    route = (
                        template_for_path(scope["app"], scope.get("method", ""), scope["path"])
                        or "unmatched"
                    )
                HTTP_REQUESTS.labels(scope.get("method"), route, str(status)).observe(duration)
            if scope["type"] == "http" and scope.get("path") not in ("/healthz", "/metrics"):
                self.log.info(
                    "http.request",
                    method=scope.get("method"),
                    path=redact_path(scope.get("path", "")),
                    status=status,
                    duration_ms=round(duration * 1000, 1),
                )
