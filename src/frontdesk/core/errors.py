"""Typed errors rendered as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from frontdesk.core.fields import DATE_MESSAGE, DATETIME_MESSAGE
from frontdesk.core.routing import allowed_methods

log = structlog.get_logger()

PROBLEM_CONTENT_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str
    code: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[FieldError] = []
    request_id: str | None = None


class ProblemError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(ProblemError):
    pass


class InvalidGrant(ProblemError):
    code = "invalid_grant"
    title = "Invalid grant"


class Unauthorized(ProblemError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(
        self, detail: str = "Send a valid access token as 'Authorization: Bearer <token>'."
    ) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict"


class UnsupportedMediaType(ProblemError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class PayloadTooLarge(ProblemError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class ValidationFailed(ProblemError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"

    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        super().__init__(
            f"Invalid value for '{field}': {message}",
            errors=[FieldError(field=field, message=message, code=code)],
        )

    @classmethod
    def many(cls, errors: list[FieldError]) -> ValidationFailed:
        error = cls(errors[0].field, errors[0].message, errors[0].code)
        error.errors = errors
        if len(errors) > 1:
            error.detail = f"{len(errors)} fields are invalid; see 'errors'."
        return error


class RateLimited(ProblemError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many requests; retry after {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    body = Problem(
        type=f"urn:frontdesk:problem:{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        errors=errors or [],
        request_id=request_id,
    )
    return JSONResponse(
        body.model_dump(),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _route_path(request: Request) -> str:
    """Return the request's path below the root path, as routes match it."""
    path: str = request.scope.get("path", "")
    root_path: str = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


_VALIDATION_MESSAGES = {
    "missing": "This field is required.",
    "json_invalid": "The body is not valid JSON.",
    "extra_forbidden": "This field is not allowed; remove it.",
    "uuid_parsing": "Use an id in UUID form, such as 01a242cf-2ef3-7317-a8ce-e8c709823530.",
    "uuid_type": "Use an id in UUID form, such as 01a242cf-2ef3-7317-a8ce-e8c709823530.",
    # A JSON body's flags must be the JSON values true or false. Query flags are words, and
    # pydantic also reads 1, 0, yes, no, on and off there.
    "bool_type": "Send true or false.",
    "bool_parsing": "Use true or false.",
    # Whole numbers in a JSON body must be JSON numbers without a fraction.
    "int_type": "Send a whole number, such as 5, not text or true and false.",
    "float_type": "Send a number, such as 2.5, not text or true and false.",
}

_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_UNREADABLE_BODY = (
    "The body could not be read as JSON: it is not UTF-8 text, or it has an integer of over "
    "4,300 digits or arrays and objects nested too deep to parse."
)

EMAIL_MESSAGE = "Enter a valid email address, like name@example.com."


# Pydantic's parse errors of dates and times, reported with one code and message per kind:
# its own messages ("unexpected extra characters at the end of the input") give no fix.
_TIME_ERRORS = {
    "date_parsing": ("date_parsing", DATE_MESSAGE),
    "date_from_datetime_parsing": ("date_parsing", DATE_MESSAGE),
    "date_from_datetime_inexact": ("date_parsing", DATE_MESSAGE),
    "datetime_parsing": ("datetime_parsing", DATETIME_MESSAGE),
    "datetime_from_date_parsing": ("datetime_parsing", DATETIME_MESSAGE),
    "datetime_object_invalid": ("datetime_parsing", DATETIME_MESSAGE),
}
# A time whose "+01:00" offset arrived as " 01:00": a + in a query string decodes to a space.
_DECODED_PLUS_OFFSET = re.compile(r"[0-9] [0-9]{2}(:?[0-9]{2})?$")


def _request_validation_errors(exc: RequestValidationError) -> list[FieldError]:
    errors = []
    for item in exc.errors():
        kind = str(item.get("type", "invalid"))
        message = _VALIDATION_MESSAGES.get(kind) or str(item.get("msg", "Invalid value."))
        if kind in _TIME_ERRORS:
            kind, message = _TIME_ERRORS[kind]
            value = item.get("input")
            location = item.get("loc", ())
            if location[:1] == ("query",) and isinstance(value, str):
                if _DECODED_PLUS_OFFSET.search(value):
                    message += " In a query string, write the + of the offset as %2B."
        reason = (item.get("ctx") or {}).get("error")
        if kind == "value_error" and reason is not None:
            # Pydantic's message is "Value error, " and then the validator's own message,
            # which already states the fix.
            message = str(reason)
        context = item.get("ctx") or {}
        if kind in ("too_long", "too_short") and isinstance(item.get("input"), str):
            # A length checked after a validator is reported in items, whatever the type.
            if kind == "too_long":
                message = f"Use at most {context.get('max_length')} characters."
            else:
                message = f"Use at least {context.get('min_length')} characters."
        if message.startswith("value is not a valid email address"):
            # email-validator's own reason is technical; the field name already says which.
            message = EMAIL_MESSAGE
        location = item.get("loc", ())
        if kind == "json_invalid":
            # Pydantic puts the character offset after "body"; the field is the body itself.
            location = ("body",)
        errors.append(FieldError(field=_field_name(location), message=message, code=kind))
    return errors


def check_not_null(body: Any, names: Iterable[str]) -> None:
    """Raise ValidationFailed naming each of ``names`` that ``body`` (a pydantic model of a
    change) sets to null, for fields whose value null cannot clear."""
    errors = [
        FieldError(field=name, message=f"'{name}' cannot be null; omit it to keep it.", code="null")
        for name in names
        if name in body.model_fields_set and getattr(body, name) is None
    ]
    if errors:
        raise ValidationFailed.many(errors)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _is_body_not_json(request: Request, errors: list[FieldError]) -> bool:
    """True when a JSON endpoint received a body of another content type (a form post), or
    a body without any content type, which FastAPI does not read as JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return False
    body_errors = [error for error in errors if error.field == "body"]
    if not content_type:
        # No body at all stays a 422 for the missing body.
        return any(error.code != "missing" for error in body_errors)
    return bool(body_errors)


def _database_unavailable(exc: Exception) -> bool:
    """Tell whether ``exc`` means the database could not serve the request at that moment:
    a lost connection, which SQLAlchemy replaces, or a pool with no free connection."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _request_validation_errors(exc)
        if _is_body_not_json(request, errors):
            return problem_response(
                request,
                status=415,
                code="unsupported_media_type",
                title="Unsupported media type",
                detail="Send a JSON body with the header 'Content-Type: application/json'.",
            )
        detail = (
            f"Invalid value for '{errors[0].field}': {errors[0].message}"
            if len(errors) == 1
            else f"{len(errors)} fields are invalid; see 'errors'."
        )
        return problem_response(
            request,
            status=422,
            code="validation_failed",
            title="Validation failed",
            detail=detail,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
            # FastAPI's error when the body is JSON that Python cannot read: bytes that are not
            # UTF-8, an integer of thousands of digits, nesting too deep for the parser.
            return problem_response(
                request,
                status=422,
                code="validation_failed",
                title="Validation failed",
                detail=f"Invalid value for 'body': {_UNREADABLE_BODY}",
                errors=[FieldError(field="body", message=_UNREADABLE_BODY, code="json_invalid")],
            )
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            methods = allowed_methods(request.app, _route_path(request)) or [
                method.strip() for method in headers.get("Allow", "").split(",")
            ]
            headers["Allow"] = ", ".join(methods)
            listed = methods[-1]
            if len(methods) > 1:
                listed = f"{', '.join(methods[:-1])} or {listed}"
            detail = f"{request.method} is not allowed on {request.url.path}; use {listed}."
        return problem_response(
            request,
            status=exc.status_code,
            code=code,
            title=title,
            detail=detail,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.failed", error=repr(exc), exc_info=exc)
        request_id = getattr(request.state, "request_id", None)
        # Starlette sends this response outside the middleware that adds the header to others.
        headers = {"X-Request-ID": request_id} if request_id else {}
        if _database_unavailable(exc):
            return problem_response(
                request,
                status=503,
                code="database_unavailable",
                title="Service unavailable",
                detail="The database connection was lost or none was free; retry the request.",
                headers={**headers, "Retry-After": "1"},
            )
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="The server failed to handle this request; the error is logged with its request id.",
            headers=headers,
        )
