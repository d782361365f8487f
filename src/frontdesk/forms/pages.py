"""HTML of the public form pages: rendering and the security headers that go with it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from frontdesk.forms.i18n import texts_for
from frontdesk.forms.models import Form
from frontdesk.forms.spam import REFERRER_FIELD, RENDER_TOKEN_FIELD, honeypot_name
from frontdesk.forms.validation import DEFAULT_MAX_LENGTH

CSS = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;padding:1rem;color:#1a1a1a;"
    "background:#fff}main{max-width:40rem;margin:0 auto}"
    ".field{margin:0 0 1.25rem}fieldset{border:0;padding:0}legend,label{font-weight:600}"
    ".option label{font-weight:400;margin-left:.4rem}"
    "input[type=text],input[type=email],input[type=tel],input[type=number],input[type=date],"
    "textarea{display:block;box-sizing:border-box;width:100%;padding:.5rem;font:inherit;"
    "border:1px solid #6b6b6b;border-radius:4px}"
    "input:focus,textarea:focus,button:focus{outline:3px solid #1d4ed8;outline-offset:2px}"
    ".help{margin:.2rem 0;color:#4a4a4a}.error{margin:.2rem 0;color:#b00020;font-weight:600}"
    "[aria-invalid=true]{border-color:#b00020}.req{color:#b00020}"
    ".summary{border:2px solid #b00020;padding:.5rem 1rem;margin:0 0 1rem}"
    "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:4px;background:#1d4ed8;"
    "color:#fff;cursor:pointer}"
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);"
    "white-space:nowrap}"
    ".hp{position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden}"
)
# The stylesheet is inline and fixed, so the policy allows exactly it by its hash.
CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()

_environment = Environment(
    loader=PackageLoader("frontdesk.forms", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

_INPUT_TYPES = {
    "text": "text",
    "email": "email",
    "phone": "tel",
    "number": "number",
    "date": "date",
}
_AUTOCOMPLETE = {
    "name": "name",
    "full_name": "name",
    "first_name": "given-name",
    "last_name": "family-name",
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_headers(form: Form | None, public_url: str) -> dict[str, str]:
    """Return the headers of a public page.

    Framing: a form with ``allowed_origins`` may be embedded only by those origins and by
    Frontdesk itself; a form without them may be embedded by any site, because the page
    only collects what its owner wants to receive. ``form-action`` lists the form's
    redirect origin because browsers apply it to the redirect after a post too.
    """
    form_action = ["'self'", _origin(public_url)]
    if form is not None and form.redirect_url:
        form_action.append(_origin(form.redirect_url))
    if form is not None and form.allowed_origins:
        frame_ancestors = " ".join(["'self'", *form.allowed_origins])
    else:
        frame_ancestors = "*"
    policy = (
        f"default-src 'none'; style-src '{CSS_HASH}'; form-action {' '.join(form_action)}; "
        f"base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _field_context(field: Mapping[str, Any], value: Any) -> dict[str, Any]:
    key = field["key"]
    kind = field["type"]
    rules = field.get("validation") or {}
    context = {
        **field,
        "input_id": f"f-{key}",
        "help_id": f"f-{key}-help",
        "error_id": f"f-{key}-error",
        "input_type": _INPUT_TYPES.get(kind, "text"),
        "autocomplete": _AUTOCOMPLETE.get(key) or {"email": "email", "phone": "tel"}.get(kind),
        "max_length": rules.get("max_length") or DEFAULT_MAX_LENGTH.get(kind),
        "min": rules.get("min"),
        "max": rules.get("max"),
        "options": field.get("options") or [],
        "value": "",
        "selected": [],
        "checked": False,
    }
    if kind == "file":
        options = field.get("file") or {}
        context["accept"] = ",".join(options.get("content_types") or [])
        context["multiple"] = options.get("max_files", 1) > 1
    elif kind == "choice" and isinstance(value, str):
        context["selected"] = [value]
    elif kind == "multi_choice" and isinstance(value, list):
        context["selected"] = value
    elif kind in ("checkbox", "consent"):
        context["checked"] = value is True
    elif isinstance(value, str):
        context["value"] = value
    return context


def render_form_page(
    form: Form,
    *,
    public_url: str,
    render_token: str,
    referrer: str | None,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render the form; on a failed post, with the errors beside the fields and the values kept."""
    values = values or {}
    errors = errors or {}
    texts = texts_for(form.language)
    fields = [_field_context(field, values.get(field["key"])) for field in form.fields]
    html = _environment.get_template("form.html").render(
        lang=form.language,
        title=form.name,
        css=Markup(CSS),  # noqa: S704  (a constant of this module)
        form=form,
        fields=fields,
        has_files=any(field["type"] == "file" for field in form.fields),
        errors=errors,
        t=texts,
        action=f"{public_url}/f/{form.public_id}",
        honeypot=honeypot_name(field["key"] for field in form.fields),
        token_field=RENDER_TOKEN_FIELD,
        render_token=render_token,
        referrer_field=REFERRER_FIELD,
        referrer=referrer,
    )
    return HTMLResponse(html, status_code=status_code, headers=page_headers(form, public_url))


def render_message_page(
    *,
    language: str,
    title: str,
    message: str,
    form: Form | None,
    public_url: str,
    status_code: int,
    alert: bool = False,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    html = _environment.get_template("message.html").render(
        lang=language,
        title=title,
        message=message,
        alert=alert,
        css=Markup(CSS),  # noqa: S704  (a constant of this module)
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={**page_headers(form, public_url), **(headers or {})},
    )
