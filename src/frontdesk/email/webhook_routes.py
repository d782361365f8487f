"""Public email endpoints: provider event webhooks, open pixels, click redirects, unsubscribe.

None of them needs a login. A webhook address names its workspace by a random token and is
verified the way its provider signs. Tracking and unsubscribe addresses carry signed tokens
(see ``frontdesk.email.tracking``).
"""

from __future__ import annotations

import base64
import html
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from frontdesk.core.api import ClientIpDep, UowDep
from frontdesk.core.errors import Conflict, NotFound, ProblemError, ValidationFailed
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import inbound, tracking, webhooks
from frontdesk.email.events import record_engagement, store_provider_events
from frontdesk.email.inbound_routes import read_limited
from frontdesk.email.inbound_service import receive
from frontdesk.email.models import EmailMessage, EmailProviderSetting
from frontdesk.email.provider_settings import decrypt_webhook_secret
from frontdesk.email.suppressions import suppress

log = structlog.get_logger()

router = APIRouter(tags=["email webhooks and tracking"])

SNS_CONFIRM_JOB = "email.sns.confirm"
SNS_CONFIRM_TIMEOUT_SECONDS = 10.0
# The 43-byte transparent GIF that open pixels return.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


class WebhookRejectedProblem(ProblemError):
    status = 401
    code = "signature_invalid"
    title = "Webhook rejected"


async def _setting(uow: UnitOfWork, provider: str, token: str) -> EmailProviderSetting:
    setting: EmailProviderSetting | None = await uow.session.scalar(
        sa.select(EmailProviderSetting).where(EmailProviderSetting.webhook_token == token)
    )
    if setting is None or setting.kind != provider or provider == "smtp":
        raise NotFound(
            "No webhook exists at this address; copy it again from the provider settings."
        )
    return setting


def _sns_fetcher(request: Request) -> webhooks.FetchCertificate:
    """Return the app's SNS certificate fetcher, made on first use; tests put their own."""
    fetch: webhooks.FetchCertificate | None = getattr(
        request.app.state, "sns_fetch_certificate", None
    )
    if fetch is None:
        fetch = request.app.state.sns_fetch_certificate = webhooks.HttpxCertificateFetcher()
    return fetch


def _is_notification(
    uow: UnitOfWork, setting: EmailProviderSetting, message: dict[str, Any]
) -> bool:
    """Return whether a verified SNS message carries a notification.

    A SubscriptionConfirmation queues the job that confirms the subscription; other control
    messages are ignored.
    """
    if message.get("Type") == "SubscriptionConfirmation":
        uow.enqueue(
            SNS_CONFIRM_JOB,
            {"url": webhooks.confirmation_url(message), "topic_arn": message.get("TopicArn")},
            workspace_id=setting.workspace_id,
        )
        log.info("email.sns_subscription_confirming", workspace_id=str(setting.workspace_id))
        return False
    return message.get("Type") == "Notification"


def _rejected(exc: webhooks.WebhookRejected) -> ProblemError:
    status = 400 if exc.code == "payload_invalid" else 401
    problem = WebhookRejectedProblem(exc.message, code=exc.code)
    problem.status = status
    return problem


async def _verify_and_parse(
    request: Request, uow: UnitOfWork, setting: EmailProviderSetting, body: bytes
) -> list[webhooks.ProviderEvent]:
    secret = decrypt_webhook_secret(uow, setting)
    headers = dict(request.headers)
    now = uow.now()
    kind = setting.kind
    if secret is None and kind != "ses":
        log.warning("email.webhook_secret_missing", workspace_id=str(setting.workspace_id))
        raise Conflict(
            "The workspace has no webhook secret for this provider; set webhook_secret in "
            "PUT /api/v1/email/provider.",
            code="webhook_secret_missing",
        )
    if kind == "sendgrid":
        assert secret is not None
        webhooks.verify_sendgrid(body, headers, public_key=secret, now=now)
        return webhooks.parse_sendgrid(body)
    if kind == "mailgun":
        assert secret is not None
        data = webhooks.verify_mailgun(body, signing_key=secret, now=now)
        return webhooks.parse_mailgun(data)
    if kind == "resend":
        assert secret is not None
        webhooks.verify_resend(body, headers, secret=secret, now=now)
        return webhooks.parse_resend(body, svix_id=headers.get("svix-id", ""))
    if kind == "postmark":
        assert secret is not None
        username, _, password = secret.partition(":")
        webhooks.verify_postmark(headers, username=username, password=password)
        return webhooks.parse_postmark(body)
    fetch = _sns_fetcher(request)
    message = await webhooks.verify_sns_message(
        body, fetch_certificate=fetch, expected_topic_arn=secret or None, now=now
    )
    if not _is_notification(uow, setting, message):
        return []
    return webhooks.parse_ses_sns(message)


@router.post(
    "/webhooks/email/{provider}/{token}/events",
    responses={
        200: {"description": '{"received": n, "stored": m}; repeated events are not stored again.'},
        400: {"description": "The payload is not what the provider sends."},
        401: {"description": "The signature, timestamp or credentials do not verify."},
        404: {"description": "No webhook at this address."},
    },
)
async def receive_events(
    provider: str, token: str, request: Request, uow: UowDep
) -> dict[str, int]:
    """Receive a provider's delivery events, verified the way that provider signs them."""
    setting = await _setting(uow, provider, token)
    body = await request.body()
    try:
        events = await _verify_and_parse(request, uow, setting, body)
    except webhooks.WebhookRejected as exc:
        log.warning(
            "email.webhook_rejected",
            workspace_id=str(setting.workspace_id),
            provider=provider,
            code=exc.code,
        )
        raise _rejected(exc) from exc
    except ValueError as exc:
        # The stored secret itself is unusable (not a key, wrong format).
        log.error(
            "email.webhook_secret_invalid", workspace_id=str(setting.workspace_id), error=str(exc)
        )
        raise Conflict(
            f"The stored webhook secret cannot verify {provider} deliveries: {exc} Set it again.",
            code="webhook_secret_invalid",
        ) from exc
    stored = await store_provider_events(uow, workspace_id=setting.workspace_id, events=events)
    log.info(
        "email.webhook_received",
        workspace_id=str(setting.workspace_id),
        provider=provider,
        received=len(events),
        stored=stored,
    )
    return {"received": len(events), "stored": stored}


async def _tracked_message(
    uow: UnitOfWork, token: str, purpose: str
) -> tuple[EmailMessage, dict[str, Any]] | None:
    try:
        data = tracking.verify(uow.rt.secrets.secret_key, purpose, token)
        email_id = tracking.email_id_of(data)
    except tracking.InvalidToken:
        return None
    message = await uow.session.get(EmailMessage, email_id)
    if message is None or message.workspace_id is None:
        return None
    return message, data


# Links inside sent emails, not part of the API: left out of the OpenAPI document, where
# the GET and HEAD of one route would share an operation id.
@router.api_route(
    "/e/o/{token}.gif", methods=["GET", "HEAD"], response_class=Response, include_in_schema=False
)
async def open_pixel(token: str, request: Request, uow: UowDep, ip: ClientIpDep) -> Response:
    """Return a transparent pixel and record an open; an invalid token still gets the pixel."""
    found = await _tracked_message(uow, token, "open")
    if found is not None:
        message, _data = found
        await record_engagement(
            uow,
            message=message,
            event_type="opened",
            url=None,
            user_agent=request.headers.get("user-agent"),
            ip=ip,
            method=request.method,
        )
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.api_route(
    "/e/c/{token}", methods=["GET", "HEAD"], response_class=Response, include_in_schema=False
)
async def click_redirect(token: str, request: Request, uow: UowDep, ip: ClientIpDep) -> Response:
    """Redirect to the link's address and record a click; a token that does not verify is a 404."""
    found = await _tracked_message(uow, token, "click")
    target = found[1].get("u") if found else None
    if (
        found is None
        or not isinstance(target, str)
        or not target.lower().startswith(("http://", "https://"))
    ):
        return HTMLResponse(
            "<!doctype html><title>Link not found</title><p>This link is not valid.</p>",
            status_code=404,
            headers=_NO_STORE,
        )
    await record_engagement(
        uow,
        message=found[0],
        event_type="clicked",
        url=target,
        user_agent=request.headers.get("user-agent"),
        ip=ip,
        method=request.method,
    )
    return RedirectResponse(target, status_code=302, headers=_NO_STORE)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>",
        status_code=status_code,
        headers=_NO_STORE,
    )


@router.get("/e/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, uow: UowDep) -> HTMLResponse:
    """Show a confirmation button; a GET never unsubscribes, since link scanners follow GETs."""
    found = await _tracked_message(uow, token, "unsubscribe")
    if found is None:
        return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
    form = (
        f"<p>Stop emails like this to {html.escape(found[0].to_address)}?</p>"
        f'<form method="post"><button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@router.post("/e/u/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, uow: UowDep) -> HTMLResponse:
    """Unsubscribe the recipient: the page's button, or a one-click POST (RFC 8058)."""
    found = await _tracked_message(uow, token, "unsubscribe")
    if found is None:
        return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
    message = found[0]
    assert message.workspace_id is not None
    await suppress(
        uow,
        workspace_id=message.workspace_id,
        address=message.to_address,
        reason="unsubscribe",
        source="unsubscribe_link",
        email_id=message.id,
    )
    await record_engagement(
        uow,
        message=message,
        event_type="unsubscribed",
        url=None,
        user_agent=request.headers.get("user-agent"),
        ip=None,
        method="POST",
    )
    return _page("Unsubscribed", "<p>You will not receive these emails any more.</p>")


@job_handler(SNS_CONFIRM_JOB)
async def confirm_sns_subscription(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation, as SNS requires.

    The address passed the same host check as certificate addresses before it was queued.
    """
    url = webhooks.confirmation_url(
        {
            "Type": "SubscriptionConfirmation",
            "SubscribeURL": payload["url"],
            "TopicArn": payload.get("topic_arn"),
        }
    )
    async with httpx.AsyncClient(
        timeout=SNS_CONFIRM_TIMEOUT_SECONDS, follow_redirects=False
    ) as client:
        response = await client.get(url)
    response.raise_for_status()
    log.info("email.sns_subscription_confirmed")


async def _form_fields(
    request: Request,
) -> tuple[dict[str, str | bytes], dict[str, tuple[str, str, bytes]]]:
    form = await request.form(max_files=100, max_fields=1000, max_part_size=32 * 1024 * 1024)
    fields: dict[str, str | bytes] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields[name] = value
        else:
            files[name] = (value.filename or "", value.content_type or "", await value.read())
    return fields, files


async def _parse_inbound(
    request: Request, uow: UnitOfWork, setting: EmailProviderSetting, body: bytes
) -> tuple[inbound.ParsedEmail, bytes | None] | None:
    """Verify an inbound delivery and parse it; None for an SNS message that is no email."""
    secret = decrypt_webhook_secret(uow, setting)
    headers = dict(request.headers)
    now = uow.now()
    if setting.kind == "postmark":
        if secret is None:
            raise _secret_missing(setting)
        username, _, password = secret.partition(":")
        webhooks.verify_postmark(headers, username=username, password=password)
        payload = webhooks.verify.load_json_body(body, "Postmark")
        return inbound.from_postmark_inbound(payload), None
    if setting.kind == "sendgrid":
        # Inbound Parse signs nothing; the random token of the address is the secret.
        fields, files = await _form_fields(request)
        parsed = inbound.from_sendgrid_inbound(fields, files)
        raw = fields.get("email")
        return parsed, raw.encode() if isinstance(raw, str) else raw
    if setting.kind == "mailgun":
        if secret is None:
            raise _secret_missing(setting)
        fields, files = await _form_fields(request)
        webhooks.verify_mailgun_form(
            {name: value for name, value in fields.items() if isinstance(value, str)},
            signing_key=secret,
            now=now,
        )
        parsed = inbound.from_mailgun_route(fields, files)
        raw = fields.get("body-mime")
        return parsed, raw.encode() if isinstance(raw, str) else raw
    fetch = _sns_fetcher(request)
    message = await webhooks.verify_sns_message(
        body, fetch_certificate=fetch, expected_topic_arn=secret or None, now=now
    )
    if not _is_notification(uow, setting, message):
        return None
    return inbound.from_sns_ses(message), None


def _secret_missing(setting: EmailProviderSetting) -> Conflict:
    log.warning("email.webhook_secret_missing", workspace_id=str(setting.workspace_id))
    return Conflict(
        "The workspace has no webhook secret for this provider; set webhook_secret in "
        "PUT /api/v1/email/provider.",
        code="webhook_secret_missing",
    )


@router.post(
    "/webhooks/email/{provider}/{token}/inbound",
    responses={
        200: {
            "description": '{"inbound_email_id", "action", "enquiry_id"}; null ids for SNS control messages.'
        },
        400: {
            "description": "The payload is not what the provider sends; `errors` names the field."
        },
        401: {"description": "The signature or credentials do not verify."},
        404: {"description": "No inbound webhook at this address."},
        413: {"description": "The message is larger than FRONTDESK_INBOUND_MAX_BYTES."},
    },
)
async def receive_inbound(
    provider: str, token: str, request: Request, uow: UowDep
) -> dict[str, str | None]:
    """Receive an email from Postmark, SendGrid Inbound Parse, a Mailgun route or SES."""
    setting = await _setting(uow, provider, token)
    if provider not in ("postmark", "sendgrid", "mailgun", "ses"):
        raise NotFound(f"{provider} does not deliver inbound email to webhooks.")
    body = await read_limited(request, uow.settings.inbound_max_bytes)
    request._body = body  # the form parser reads the body already read here
    try:
        result = await _parse_inbound(request, uow, setting, body)
    except webhooks.WebhookRejected as exc:
        log.warning("email.webhook_rejected", workspace_id=str(setting.workspace_id), code=exc.code)
        raise _rejected(exc) from exc
    except inbound.InboundPayloadError as exc:
        raise ValidationFailed(
            exc.field,
            f"The payload is invalid: {exc.field} {exc.problem}; check the provider's inbound "
            "settings.",
            "payload_invalid",
        ) from exc
    if result is None:
        return {"inbound_email_id": None, "action": None, "enquiry_id": None}
    parsed, raw = result
    received = await receive(
        uow, workspace_id=setting.workspace_id, parsed=parsed, raw=raw, source=provider
    )
    return {
        "inbound_email_id": str(received.inbound.id),
        "action": received.inbound.action,
        "enquiry_id": str(received.enquiry_id) if received.enquiry_id else None,
    }
