"""Small public HTML pages behind the links in account emails.

Link scanners in mail systems follow every GET, so a GET only shows a page. The change
happens when the person presses the button, which POSTs a plain HTML form. The pages use no
JavaScript and escape every value (Jinja2 autoescape). They ask browsers to send no Referer,
so that the token in the address does not leak to other sites.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from jinja2 import DictLoader, Environment, select_autoescape

from frontdesk.auth import service
from frontdesk.auth.schemas import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, TOKEN_MAX_LENGTH
from frontdesk.auth.tokens import ExpiredToken, InvalidToken
from frontdesk.core.api import ClientIpDep, RuntimeDep, UowDep, read_only
from frontdesk.core.errors import ProblemError
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.workspaces import invitations

pages_router = APIRouter(include_in_schema=False)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_TEMPLATES = {
    "layout.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} | Frontdesk</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1a1a1a; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { font: inherit; width: 100%; padding: .5rem; box-sizing: border-box; }
button { font: inherit; margin-top: 1.5rem; padding: .6rem 1.2rem; cursor: pointer; }
.error { color: #a40000; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{% block content %}{% endblock %}
</main>
</body>
</html>
""",
    "message.html": """{% extends "layout.html" %}
{% block content %}<p{% if error %} class="error" role="alert"{% endif %}>{{ message }}</p>{% endblock %}
""",
    "verify_email.html": """{% extends "layout.html" %}
{% block content %}
<p>Press the button to confirm your email address for Frontdesk.</p>
<form method="post" action="/verify-email">
<input type="hidden" name="token" value="{{ token }}">
<button type="submit">Verify my email address</button>
</form>
{% endblock %}
""",
    "reset_password.html": """{% extends "layout.html" %}
{% block content %}
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<p>Choose a new password of {{ min_length }} to {{ max_length }} characters. Every device signed in to your account will be signed out.</p>
<form method="post" action="/reset-password">
<input type="hidden" name="token" value="{{ token }}">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{{ min_length }}" maxlength="{{ max_length }}"{% if error %} aria-describedby="form-error"{% endif %}>
<label for="password_confirmation">Repeat the new password</label>
<input id="password_confirmation" name="password_confirmation" type="password" autocomplete="new-password" required minlength="{{ min_length }}" maxlength="{{ max_length }}">
<button type="submit">Set the new password</button>
</form>
{% endblock %}
""",
    "accept_invitation.html": """{% extends "layout.html" %}
{% block content %}
<p>You are invited to join <strong>{{ invitation.workspace_name }}</strong> on Frontdesk as <strong>{{ invitation.role }}</strong>.</p>
<p>The invitation is for <strong>{{ invitation.email }}</strong> and is valid until {{ invitation.expires_at.strftime("%Y-%m-%d %H:%M") }} UTC.</p>
<p>To accept it, open the Frontdesk app: sign up with this email address, or log in if you already have an account with it, and accept the invitation there.</p>
{% endblock %}
""",
}

_environment = Environment(
    loader=DictLoader(_TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)


def _page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _message(title: str, message: str, *, status_code: int = 200) -> HTMLResponse:
    return _page(
        "message.html", status_code, title=title, message=message, error=status_code >= 400
    )


def _problem_page(title: str, exc: ProblemError) -> HTMLResponse:
    response = _message(title, exc.detail, status_code=exc.status)
    response.headers.update(exc.headers)  # Retry-After of a 429
    return response


def _usable_token(token: str | None) -> str | None:
    return token if token and len(token) <= TOKEN_MAX_LENGTH else None


_MISSING_TOKEN = "This link is incomplete. Open the link from the email again, or copy all of it into the address bar."


_DEAD_VERIFICATION_LINK = (
    "This link is invalid, expired or was already used. Log in to the app and request a new "
    "verification email."
)
_DEAD_RESET_LINK = (
    "This link is invalid, expired or was already used. Request a new password reset in the app."
)


@pages_router.get("/verify-email", response_class=HTMLResponse)
@read_only
async def verify_email_page(
    uow: UowDep, ip: ClientIpDep, token: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    title = "Verify your email address"
    usable, error_page = await _live_link(
        uow, ip, token, service.EMAIL_VERIFICATION, title, _DEAD_VERIFICATION_LINK
    )
    if error_page is not None:
        return error_page
    return _page("verify_email.html", title=title, token=usable)


async def _live_link(
    uow: UnitOfWork, ip: str, token: str | None, purpose: str, title: str, dead_message: str
) -> tuple[str, HTMLResponse | None]:
    """Check a link's token for its GET page. Return the token and, for a bad one, its error
    page."""
    usable = _usable_token(token)
    if usable is None:
        return "", _message(title, _MISSING_TOKEN, status_code=400)
    try:
        await service.check_link_token(uow, token=usable, purpose=purpose, client_ip=ip)
    except (InvalidToken, ExpiredToken):
        return usable, _message(title, dead_message, status_code=400)
    except ProblemError as exc:
        return usable, _problem_page(title, exc)
    return usable, None


@pages_router.post("/verify-email", response_class=HTMLResponse)
async def verify_email_submit(
    runtime: RuntimeDep, ip: ClientIpDep, token: Annotated[str, Form()] = ""
) -> HTMLResponse:
    title = "Verify your email address"
    usable = _usable_token(token)
    if usable is None:
        return _message(title, _MISSING_TOKEN, status_code=400)
    try:
        # A unit of work of its own, so that an error rolls back before the page is shown.
        async with unit_of_work(runtime) as uow:
            await service.verify_email(uow, token=usable, client_ip=ip)
    except (InvalidToken, ExpiredToken):
        return _message(title, _DEAD_VERIFICATION_LINK, status_code=400)
    except ProblemError as exc:
        return _problem_page(title, exc)
    return _message(
        "Email address verified",
        "Thank you: your email address is verified. You can close this page.",
    )


@pages_router.get("/reset-password", response_class=HTMLResponse)
@read_only
async def reset_password_page(
    uow: UowDep, ip: ClientIpDep, token: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    usable, error_page = await _live_link(
        uow, ip, token, service.PASSWORD_RESET, "Reset your password", _DEAD_RESET_LINK
    )
    if error_page is not None:
        return error_page
    return _reset_form(usable)


def _reset_form(token: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return _page(
        "reset_password.html",
        status_code,
        title="Reset your password",
        token=token,
        error=error,
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
    )


@pages_router.post("/reset-password", response_class=HTMLResponse)
async def reset_password_submit(
    runtime: RuntimeDep,
    ip: ClientIpDep,
    token: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_confirmation: Annotated[str, Form()] = "",
) -> HTMLResponse:
    title = "Reset your password"
    usable = _usable_token(token)
    if usable is None:
        return _message(title, _MISSING_TOKEN, status_code=400)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        return _reset_form(
            usable,
            f"The password must have {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
            422,
        )
    if password != password_confirmation:
        return _reset_form(usable, "The two passwords differ; type the same password twice.", 422)
    try:
        async with unit_of_work(runtime) as uow:
            await service.reset_password(uow, token=usable, password=password, client_ip=ip)
    except (InvalidToken, ExpiredToken):
        return _message(title, _DEAD_RESET_LINK, status_code=400)
    except ProblemError as exc:
        return _problem_page(title, exc)
    return _message(
        "Password changed",
        "Your password is changed and every device was signed out. Log in to the app with the new password.",
    )


@pages_router.get("/accept-invitation", response_class=HTMLResponse)
async def accept_invitation_page(
    uow: UowDep, ip: ClientIpDep, token: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    title = "Invitation to Frontdesk"
    usable = _usable_token(token)
    if usable is None:
        return _message(title, _MISSING_TOKEN, status_code=400)
    try:
        invitation = await invitations.lookup_invitation(uow, token=usable, client_ip=ip)
    except InvalidToken:
        return _message(
            title,
            "This invitation is invalid, or was already accepted or withdrawn. Ask the person who invited you for a new one.",
            status_code=400,
        )
    except ExpiredToken:
        return _message(
            title,
            "This invitation has expired. Ask the person who invited you to send it again.",
            status_code=400,
        )
    except ProblemError as exc:
        return _problem_page(title, exc)
    return _page("accept_invitation.html", title=title, invitation=invitation)
