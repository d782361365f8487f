"""The public form: its page, submissions from browsers and JSON clients, CORS and thanks."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from frontdesk.core.api import ClientIpDep, UowDep
from frontdesk.core.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    UnsupportedMediaType,
    ValidationFailed,
)
from frontdesk.core.origins import normalize_origin
from frontdesk.core.ratelimit import Limit
from frontdesk.core.text import JsonTooDeep, load_json
from frontdesk.core.uow import UnitOfWork
from frontdesk.forms.i18n import error_message, texts_for
from frontdesk.forms.models import Form
from frontdesk.forms.pages import render_form_page, render_message_page
from frontdesk.forms.schemas import FormUploadOut
from frontdesk.forms.service import find_published_form
from frontdesk.forms.spam import (
    REFERRER_FIELD,
    RENDER_TOKEN_FIELD,
    honeypot_filled,
    honeypot_name,
    issue_render_token,
    render_token_problem,
)
from frontdesk.forms.submissions import submit_form
from frontdesk.forms.uploads import file_field, store_upload
from frontdesk.storage import sniffing
from frontdesk.storage.service import blob_path

log = structlog.get_logger()

public_router = APIRouter(tags=["public forms"])

SUBMIT_LIMIT_PER_IP = Limit("form_submit_ip", 20, 600)
SUBMIT_LIMIT_PER_FORM_AND_IP = Limit("form_submit_form_ip", 5, 600)
UPLOAD_LIMIT_PER_IP = Limit("form_upload_ip", 30, 600)
_HTML_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_TRUE_VALUES = ("true", "on", "1", "yes")
_NOT_FOUND_DETAIL = "This form does not exist or no longer accepts answers."


def _public_url(uow: UnitOfWork) -> str:
    return uow.settings.resolved_public_url


def _not_found_page(uow: UnitOfWork) -> Response:
    texts = texts_for("en")
    return render_message_page(
        language="en",
        title=texts["not_found_title"],
        message=texts["not_found_message"],
        form=None,
        public_url=_public_url(uow),
        status_code=404,
    )


def _clean_referrer(value: str | None, public_url: str) -> str | None:
    """Return an http(s) referrer of at most 2000 characters that is not a page of this form."""
    if not value:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(value) > 2000
        or not value.isprintable()
    ):
        return None
    if value.startswith(f"{public_url}/f/"):
        return None
    return value


def _allowed_origins(uow: UnitOfWork, form: Form) -> set[str]:
    origins = set(form.allowed_origins)
    for origin in uow.settings.cors_allow_origins:
        try:
            origins.add(normalize_origin(origin))
        except ValueError:
            log.warning("forms.cors_origin_ignored", reason="invalid origin in settings")
    return origins


def _cors_headers(uow: UnitOfWork, form: Form, origin: str | None) -> dict[str, str]:
    if origin and origin.lower() in _allowed_origins(uow, form):
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": "Retry-After",
            "Vary": "Origin",
        }
    return {"Vary": "Origin"}


async def _check_rate(uow: UnitOfWork, form: Form, ip: str) -> None:
    await uow.rt.limiter.check(
        (SUBMIT_LIMIT_PER_IP, ip), (SUBMIT_LIMIT_PER_FORM_AND_IP, f"{form.id}:{ip}")
    )


def _log_spam(form: Form, reason: str) -> None:
    log.info("form.spam_rejected", form_id=str(form.id), reason=reason)


@public_router.get("/f/{public_id}", response_class=Response)
async def show_form(public_id: str, request: Request, uow: UowDep) -> Response:
    """Serve the form page: plain HTML that works without JavaScript and can be framed."""
    form = await find_published_form(uow, public_id)
    if form is None:
        return _not_found_page(uow)
    public_url = _public_url(uow)
    return render_form_page(
        form,
        public_url=public_url,
        render_token=issue_render_token(uow.rt.secrets.secret_key, form.id, uow.now()),
        referrer=_clean_referrer(request.headers.get("referer"), public_url),
    )


@public_router.get("/f/{public_id}/thanks", response_class=Response)
async def show_thanks(public_id: str, uow: UowDep) -> Response:
    """Serve the page shown after a browser submission, in the form's language."""
    form = await find_published_form(uow, public_id)
    if form is None:
        return _not_found_page(uow)
    texts = texts_for(form.language)
    return render_message_page(
        language=form.language,
        title=texts["thanks_title"],
        message=form.success_message or texts["thanks_message"],
        form=form,
        public_url=_public_url(uow),
        status_code=200,
    )


@public_router.options("/f/{public_id}", status_code=204, response_class=Response)
@public_router.options("/f/{public_id}/uploads", status_code=204, response_class=Response)
async def preflight(public_id: str, request: Request, uow: UowDep) -> Response:
    """Respond to a CORS preflight, which succeeds only for the form's origins and the global list."""
    form = await find_published_form(uow, public_id)
    if form is None:
        raise NotFound(_NOT_FOUND_DETAIL)
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method", "POST").upper()
    if not origin or origin.lower() not in _allowed_origins(uow, form):
        raise Forbidden(
            "This origin may not submit this form from a browser; add it to the form's "
            "allowed_origins.",
            code="origin_not_allowed",
        )
    if method != "POST":
        raise Forbidden("Only POST is allowed on a form.", code="method_not_allowed")
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type, Accept, X-Request-ID",
            "Access-Control-Expose-Headers": "Retry-After",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )


@public_router.post(
    "/f/{public_id}",
    status_code=201,
    response_class=Response,
    responses={
        201: {"description": 'JSON submission received: {"status": "received"}.'},
        303: {"description": "Browser submission received; go to the thanks page."},
        422: {"description": "Invalid answers; errors[].field is the field key."},
        429: {"description": "Too many submissions; see Retry-After."},
    },
)
async def submit(public_id: str, request: Request, uow: UowDep, ip: ClientIpDep) -> Response:
    """Submit answers as JSON (an object keyed by field key) or as a browser form post."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_html = content_type in _HTML_CONTENT_TYPES
    form = await find_published_form(uow, public_id)
    if form is None:
        if is_html:
            return _not_found_page(uow)
        raise NotFound(_NOT_FOUND_DETAIL)
    if is_html:
        return await _submit_html(form, request, uow, ip)
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _submit_json(form, request, uow, ip)
    raise UnsupportedMediaType(
        "Send the answers as application/json, application/x-www-form-urlencoded or "
        "multipart/form-data."
    )


@public_router.post(
    "/f/{public_id}/uploads",
    status_code=201,
    response_model=FormUploadOut,
    responses={
        404: {"description": "No such published form or file field."},
        413: {"description": "The file is larger than the field's max_bytes."},
        415: {"description": "The field does not accept this type of file."},
        429: {"description": "Too many uploads; see Retry-After."},
    },
)
async def upload_file(
    public_id: str,
    request: Request,
    uow: UowDep,
    ip: ClientIpDep,
    field: Annotated[str, Query(max_length=63, description="Key of a 'file' field.")],
    filename: Annotated[
        str | None, Query(max_length=1000, description="The file's name on the visitor's device.")
    ] = None,
) -> Response:
    """Upload one file for a file field as the raw request body; returns a token for the answers.

    Put the token (or a list of tokens) in the field's answer when submitting the form. A
    token is valid for one submission within a day; unused uploads are deleted after that.
    """
    form = await find_published_form(uow, public_id)
    if form is None:
        raise NotFound(_NOT_FOUND_DETAIL)
    cors = _cors_headers(uow, form, request.headers.get("origin"))
    try:
        definition = file_field(form, field)
        await uow.rt.limiter.check((UPLOAD_LIMIT_PER_IP, ip))
        claimed = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            result = await store_upload(
                uow,
                form=form,
                field=definition,
                file_name=filename,
                claimed_type=claimed,
                chunks=request.stream(),
            )
        except ClientDisconnect as exc:
            raise BadRequest(
                "The client disconnected during the upload.", code="upload_aborted"
            ) from exc
    except ProblemError as exc:
        exc.headers.update(cors)
        raise
    body = FormUploadOut(
        token=result.token,
        field=field,
        name=result.upload.file_name,
        size=result.stored.size,
        content_type=result.stored.content_type,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=201, headers=cors)


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = load_json(await request.body())
    except JsonTooDeep as exc:
        raise ValidationFailed(
            "body", "The body nests arrays or objects too deep to parse.", "json_invalid"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("body", "The body is not valid JSON.", "json_invalid") from exc
    if not isinstance(body, dict):
        raise ValidationFailed(
            "body", "Send a JSON object whose keys are the form's field keys.", "invalid_type"
        )
    return body


async def _submit_json(form: Form, request: Request, uow: UnitOfWork, ip: str) -> Response:
    cors = _cors_headers(uow, form, request.headers.get("origin"))
    try:
        await _check_rate(uow, form, ip)
        raw = await _read_json(request)
        honeypot = honeypot_name(field["key"] for field in form.fields)
        if honeypot_filled(raw, honeypot):
            _log_spam(form, "honeypot")
            return JSONResponse({"status": "received"}, status_code=201, headers=cors)
        # Keys that start with an underscore are reserved for the page (render token,
        # referrer) and cannot be field keys, so they are dropped here.
        answers = {
            key: value for key, value in raw.items() if key != honeypot and not key.startswith("_")
        }
        referrer = _clean_referrer(request.headers.get("referer"), _public_url(uow))
        await submit_form(
            uow,
            form=form,
            answers=answers,
            source_details={"referrer": referrer} if referrer else {},
        )
    except ProblemError as exc:
        exc.headers.update(cors)
        raise
    return JSONResponse({"status": "received"}, status_code=201, headers=cors)


def _html_answers(form: Form, raw: dict[str, list[str]]) -> dict[str, Any]:
    """Convert a browser's form post to JSON-like answers; keys not in the form are ignored."""
    answers: dict[str, Any] = {}
    for field in form.fields:
        key, kind = field["key"], field["type"]
        values = raw.get(key, [])
        if kind == "multi_choice":
            answers[key] = values
        elif kind in ("checkbox", "consent"):
            answers[key] = any(value.strip().lower() in _TRUE_VALUES for value in values)
        elif values:
            answers[key] = values[0]
    return answers


def _success_redirect(uow: UnitOfWork, form: Form) -> Response:
    location = form.redirect_url or f"{_public_url(uow)}/f/{form.public_id}/thanks"
    return RedirectResponse(location, status_code=303)


async def _submit_html(form: Form, request: Request, uow: UnitOfWork, ip: str) -> Response:
    public_url = _public_url(uow)
    try:
        await _check_rate(uow, form, ip)
    except RateLimited as exc:
        texts = texts_for(form.language)
        retry_after = int(exc.headers["Retry-After"])
        return render_message_page(
            language=form.language,
            title=texts["rate_limited_title"],
            message=texts["rate_limited_message"].format(
                minutes=max(1, math.ceil(retry_after / 60))
            ),
            form=form,
            public_url=public_url,
            status_code=429,
            alert=True,
            headers=exc.headers,
        )

    file_keys = {field["key"] for field in form.fields if field["type"] == "file"}
    max_files = sum((field.get("file") or {}).get("max_files", 1) for field in form.fields)
    posted = await request.form(max_files=max(1, max_files))
    raw: dict[str, list[str]] = {}
    files: dict[str, list[UploadFile]] = {}
    for key, value in posted.multi_items():
        if isinstance(value, str):
            raw.setdefault(key, []).append(value)
        elif key in file_keys and (value.filename or value.size):
            # A file input left empty still sends a part, without a name or bytes.
            files.setdefault(key, []).append(value)
    token = (raw.get(RENDER_TOKEN_FIELD) or [""])[0]
    reason = None
    if honeypot_filled(raw, honeypot_name(field["key"] for field in form.fields)):
        reason = "honeypot"
    else:
        reason = render_token_problem(
            uow.rt.secrets.secret_key,
            form.id,
            token,
            now=uow.now(),
            min_fill_seconds=uow.settings.form_min_fill_seconds,
        )
    if reason is not None:
        _log_spam(form, reason)
        return _success_redirect(uow, form)

    answers = _html_answers(form, raw)
    referrer = _clean_referrer((raw.get(REFERRER_FIELD) or [""])[0], public_url)
    written: list[str] = []
    try:
        for key, uploads in files.items():
            answers[key] = await _store_posted_files(uow, form, key, uploads, written)
        await submit_form(
            uow,
            form=form,
            answers=answers,
            source_details={"referrer": referrer} if referrer else {},
        )
    except ValidationFailed as exc:
        for path in written:
            await uow.rt.storage.delete(path)
        for key in files:
            answers.pop(key, None)
        page = render_form_page(
            form,
            public_url=public_url,
            # The original token is kept, so a quick correction is not taken for a bot.
            render_token=token,
            referrer=referrer,
            values=answers,
            errors={error.field: error.message for error in exc.errors},
            status_code=422,
        )
        # Nothing is written before the answers are valid; the rollback makes sure of it.
        # It expires the loaded rows, so it comes after rendering.
        await uow.session.rollback()
        return page
    except BaseException:
        for path in written:
            await uow.rt.storage.delete(path)
        raise
    return _success_redirect(uow, form)


async def _store_posted_files(
    uow: UnitOfWork, form: Form, key: str, uploads: list[UploadFile], written: list[str]
) -> list[str]:
    """Store the files a browser posted for one field; return their upload tokens.

    The blob path of each stored file is added to ``written``, so the caller can remove the
    blobs when the submission fails. Type and size problems become ValidationFailed for the
    field, in the form's language.
    """
    definition = file_field(form, key)
    options = definition.get("file") or {}
    if len(uploads) > options.get("max_files", 1):
        raise ValidationFailed(
            key,
            error_message(form.language, "too_many_files", max=options.get("max_files", 1)),
            "too_many_files",
        )
    tokens = []
    for upload in uploads:
        try:
            result = await store_upload(
                uow,
                form=form,
                field=definition,
                file_name=upload.filename,
                claimed_type=(upload.content_type or "").split(";")[0].strip().lower(),
                chunks=_file_chunks(upload),
            )
        except sniffing.UnsupportedMediaType as exc:
            types = ", ".join(options.get("content_types") or [])
            message = error_message(form.language, "file_type", types=types)
            raise ValidationFailed(key, message, "file_type") from exc
        except PayloadTooLarge as exc:
            size = _megabytes(options.get("max_bytes", 0))
            message = error_message(form.language, "file_too_large", max=size)
            raise ValidationFailed(key, message, "file_too_large") from exc
        written.append(blob_path(result.stored.workspace_id, result.stored.id))
        tokens.append(result.token)
    return tokens


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1024 * 1024):
        yield chunk


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.3g} MB"
