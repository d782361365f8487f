"""The embeddable chat widget's script and, in embedded mode, a demo page that embeds it."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from frontdesk.conversations.models import ChatSettings
from frontdesk.core.api import RuntimeDep
from frontdesk.core.errors import NotFound

router = APIRouter(include_in_schema=False)

# The script tag on customers' sites has no version in its URL, so a visitor's browser keeps
# a copy for a day and then revalidates it with the ETag. A year-long immutable cache would
# keep a fixed widget from reaching visitors for that year.
WIDGET_CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"

DEMO_CSS = (
    "body{font-family:Georgia,serif;margin:0;color:#222;background:#faf7f2;line-height:1.6}"
    "header{background:#2d2a26;color:#faf7f2;padding:1.5rem 2rem}header h1{margin:0}"
    "main{max-width:40rem;margin:0 auto;padding:2rem}code{background:#eee;padding:0 .2rem}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere}"
    ".note{border-left:4px solid #b45309;padding:.5rem 1rem;background:#fff}"
)
_DEMO_CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(DEMO_CSS.encode()).digest()).decode()

_environment = Environment(
    loader=PackageLoader("frontdesk.conversations", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@cache
def widget_script() -> tuple[bytes, str]:
    """Return the widget's bytes and their ETag, read once from the package."""
    body = files("frontdesk.conversations").joinpath("static/widget.js").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@router.get("/chat/widget.js")
async def get_widget_script(request: Request) -> Response:
    body, etag = widget_script()
    headers = {
        "Cache-Control": WIDGET_CACHE_CONTROL,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Customers' pages load the script from another site.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


def _demo_headers(request: Request) -> dict[str, str]:
    """Headers of the demo page, whose policy allows exactly what an embedding site must allow."""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    websocket_origin = origin.replace("http", "ws", 1)
    policy = (
        f"default-src 'none'; script-src {origin}; connect-src {origin} {websocket_origin}; "
        f"img-src {origin} blob:; style-src '{_DEMO_CSS_HASH}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


@router.get("/chat/demo")
async def get_demo_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Serve a sample website with the widget of the oldest enabled chat, on embedded installs.

    A scaled install (PostgreSQL, or the production environment) returns 404, because the
    page would show a workspace's chat to anyone.
    """
    if not runtime.settings.is_embedded_default:
        raise NotFound(
            "The chat demo page is served only in embedded mode (SQLite with "
            "FRONTDESK_ENV=development); embed the widget in a page of your own site instead."
        )
    async with runtime.read_sessionmaker() as session:
        public_key = await session.scalar(
            sa.select(ChatSettings.public_key)
            .where(ChatSettings.enabled.is_(True))
            .order_by(ChatSettings.created_at, ChatSettings.workspace_id)
            .limit(1)
        )
    html = _environment.get_template("chat_demo.html").render(
        css=DEMO_CSS,
        public_key=public_key,
        script_url=str(request.url_for("get_widget_script")),
    )
    return HTMLResponse(html, headers=_demo_headers(request))
