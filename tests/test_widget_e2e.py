"""The website chat widget, end to end: headless Chromium on a host page, a live server, staff.

A second server serves the host page at ``http://localhost:PORT1`` while Frontdesk listens on
``http://127.0.0.1:PORT2``, so the widget works cross-origin, with CORS, as on a customer's
site. Both are loopback addresses, so Chromium's Local Network Access rules let the page
reach the server. A staff member talks back over a real WebSocket.

Also here, without a browser: the routes of the script and of the demo page.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from browser import launch_chromium, require_chromium
from conftest import bearer, make_settings, signup, truncate_all
from frontdesk.app import create_app
from frontdesk.conversations import service
from frontdesk.core.migrate import upgrade
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.realtime.gateway import Gateway
from frontdesk.runtime import Runtime
from live_server import InProcessServer, serve_in_process

# The browser tests share one Chromium, which lives in the module's event loop.
module_loop = pytest.mark.asyncio(loop_scope="module")

WAIT = 10.0
TITLE = "Ask Harbour Light"
ACCENT = "#0f766e"
ACCENT_RGB = "rgb(15, 118, 110)"
BLOB_URL = re.compile(r"^blob:http://localhost:\d+/")
# Page styles that would change the widget if they reached into it.
HOST_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Harbour Light shop</title>
<style>
* {{ color: #ff00ff !important; font: 40px/1 serif !important; }}
button {{ background: #ff0000 !important; border-radius: 0 !important; }}
ol, li {{ display: none !important; }}
</style>
</head>
<body>
<h1>Harbour Light shop</h1>
<a href="#prints">Prints</a>
<script src="{script}" data-workspace="{key}" async></script>
</body>
</html>
"""


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only, unlike the rest of the suite.

    The widget reaches the database only through the HTTP and WebSocket API, whose own tests
    run on both databases. A PostgreSQL run would double the time of the slowest tests in the
    suite and test no more of the widget.
    """
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('widget-db') / 'frontdesk.db'}"
    upgrade(url)
    return url


# --- Server, staff and browser ---------------------------------------------------------------


@dataclass
class Site:
    live: InProcessServer
    host: InProcessServer
    runtime: Runtime
    gateway: Gateway
    http: httpx.AsyncClient
    staff_token: str
    staff_user_id: uuid.UUID
    workspace_id: uuid.UUID
    public_key: str

    @property
    def staff_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token}"}

    @property
    def host_origin(self) -> str:
        return f"http://localhost:{self.host.port}"

    @property
    def host_url(self) -> str:
        return f"{self.host_origin}/shop/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    require_chromium()
    async with launch_chromium() as chromium:
        yield chromium


def host_site(page: dict[str, str]) -> FastAPI:
    """A customer's website: one page that embeds the widget, filled in once the key exists."""
    website = FastAPI()

    @website.get("/shop/")
    async def shop() -> HTMLResponse:
        return HTMLResponse(HOST_PAGE.format(**page))

    return website


@pytest_asyncio.fixture(loop_scope="module")
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    await truncate_all(database_url)
    app = create_app(make_settings(database_url, tmp_path / "data"), run_worker=False)
    page: dict[str, str] = {}
    async with (
        serve_in_process(app) as live,
        serve_in_process(host_site(page)) as host,
        httpx.AsyncClient(base_url=live.http_url, trust_env=False) as http,
    ):
        tokens = await signup(http, full_name="Robin Keeper")
        headers = bearer(tokens)
        response = await http.put(
            "/api/v1/chat/settings",
            headers=headers,
            json={
                "theme": {"title": TITLE, "color": ACCENT, "greeting": "Hello from the studio!"},
                "allowed_origins": [f"http://localhost:{host.port}"],
            },
        )
        assert response.status_code == 200, response.text
        page["key"] = response.json()["public_key"]
        page["script"] = f"{live.http_url}/chat/widget.js"
        yield Site(
            live=live,
            host=host,
            runtime=app.state.runtime,
            gateway=app.state.gateway,
            http=http,
            staff_token=tokens["access_token"],
            staff_user_id=uuid.UUID(tokens["user"]["id"]),
            workspace_id=uuid.UUID(tokens["workspace"]["id"]),
            public_key=response.json()["public_key"],
        )


@dataclass
class Visitor:
    """A browser tab on the host page, and what its console reported."""

    page: Any
    errors: list[str] = field(default_factory=list)
    # Frames of the widget's WebSockets: (socket number from 0, "sent" or "received", frame).
    frames: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    sockets: int = 0

    def watch(self) -> None:
        self.page.on("console", lambda message: _keep_error(self, message))
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("websocket", self._record_socket)

    def _record_socket(self, websocket: Any) -> None:
        number = self.sockets
        self.sockets += 1
        for direction in ("sent", "received"):
            websocket.on(
                f"frame{direction}",
                lambda payload, d=direction: self.frames.append((number, d, json.loads(payload))),
            )

    def sent(self, frame_type: str) -> list[tuple[int, dict[str, Any]]]:
        return [(n, f) for n, d, f in self.frames if d == "sent" and f["type"] == frame_type]

    def widget(self, selector: str) -> Any:
        """Locate inside the widget's shadow root, which Playwright's CSS engine pierces."""
        return self.page.locator(f"[data-frontdesk-chat] {selector}")

    @property
    def bubble(self) -> Any:
        return self.widget("button.bubble")

    @property
    def input(self) -> Any:
        return self.page.get_by_label("Message", exact=True)

    @property
    def log(self) -> Any:
        return self.page.get_by_role("log", name="Messages")


@pytest_asyncio.fixture(loop_scope="module")
async def visitor(browser: Any, site: Site) -> AsyncIterator[Visitor]:
    """A new browser context (empty storage) on the host page with the widget."""
    context = await browser.new_context()
    page = await context.new_page()
    tab = Visitor(page)
    tab.watch()
    await page.goto(site.host_url)
    try:
        yield tab
    finally:
        await context.close()


def _keep_error(tab: Visitor, message: Any) -> None:
    # Neither site has a favicon, which Chromium requests by itself.
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        tab.errors.append(f"{message.text} ({message.location.get('url')})")


class StaffSocket:
    """A staff member's realtime connection that keeps frames it was not asked for yet."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.unread: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(frame))

    async def receive(
        self, matches: Callable[[dict[str, Any]], bool], description: str
    ) -> dict[str, Any]:
        for frame in self.unread:
            if matches(frame):
                self.unread.remove(frame)
                return frame
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    frame = json.loads(await self.websocket.recv())
                    if matches(frame):
                        return frame
                    self.unread.append(frame)
        except TimeoutError:
            seen = [f.get("event") or f.get("type") for f in self.unread]
            raise AssertionError(
                f"staff received no {description} within {WAIT} s; got {seen}"
            ) from None

    async def event(self, name: str, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        frame = await self.receive(
            lambda f: f.get("type") == "event" and f["event"] == name and where(f["data"]), name
        )
        data: dict[str, Any] = frame["data"]
        return data


async def staff_socket(site: Site) -> AsyncIterator[StaffSocket]:
    # An unbounded queue keeps the client reading frames that the test does not wait for, so
    # its close handshake completes at once instead of after the 10 s close timeout.
    async with connect(f"{site.live.ws_url}/api/v1/realtime", max_queue=None) as websocket:
        staff = StaffSocket(websocket)
        await staff.send({"type": "auth", "token": site.staff_token})
        await staff.receive(lambda f: f.get("type") == "ready", "ready")
        yield staff


@pytest_asyncio.fixture(loop_scope="module")
async def staff(site: Site) -> AsyncIterator[StaffSocket]:
    async for connection in staff_socket(site):
        yield connection


def expect(target: Any) -> Any:
    """Return Playwright's assertions, which retry for WAIT seconds instead of 5.

    Playwright is imported here, so that the module loads without it and its tests skip.
    """
    from playwright.async_api import expect as playwright_expect

    # The machine may be busy with other tests; a longer wait costs nothing when all is well.
    playwright_expect.set_options(timeout=WAIT * 1000)
    return playwright_expect(target)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


async def staff_messages(site: Site, conversation_id: str) -> list[dict[str, Any]]:
    response = await site.http.get(
        f"/api/v1/conversations/{conversation_id}/messages", headers=site.staff_headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- Browser tests ---------------------------------------------------------------------------


@module_loop
async def test_chat_with_staff_round_trip(site: Site, visitor: Visitor, staff: StaffSocket) -> None:
    page = visitor.page
    await expect(visitor.bubble).to_have_attribute("aria-expanded", "false")
    await expect(visitor.bubble).to_have_accessible_name(TITLE)
    # The page's CSS does not reach into the widget.
    assert await visitor.bubble.evaluate("e => getComputedStyle(e).backgroundColor") == ACCENT_RGB
    assert await visitor.bubble.evaluate("e => getComputedStyle(e).borderRadius") == "50%"
    assert await visitor.bubble.evaluate("e => getComputedStyle(e).transitionDuration") == "0.15s"

    await visitor.bubble.click()
    await expect(visitor.bubble).to_have_attribute("aria-expanded", "true")
    await expect(page.get_by_role("dialog", name=TITLE)).to_be_visible()
    await expect(visitor.input).to_be_focused()
    await expect(visitor.widget(".greeting")).to_have_text("Hello from the studio!")
    await expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    assert await visitor.input.evaluate("e => getComputedStyle(e).fontSize") != "40px"

    await visitor.input.fill("Are you open on Saturday?")
    await visitor.input.press("Enter")
    own = visitor.log.locator("li.own")
    await expect(own).to_have_count(1)
    await expect(own).to_contain_text("Are you open on Saturday?")
    await expect(own).to_have_attribute("data-status", "delivered")
    await expect(own).to_contain_text("Delivered")
    await expect(visitor.input).to_have_value("")

    created = await staff.event(
        "conversation.message.created",
        lambda data: data["message"]["author"]["type"] == "visitor",
    )
    assert created["message"]["body"] == "Are you open on Saturday?"
    client_message_id = created["message"]["client_message_id"]
    assert uuid.UUID(client_message_id).version == 4
    conversation_id = created["conversation"]["id"]

    await staff.send({"type": "subscribe", "conversation_id": conversation_id})
    await staff.receive(lambda f: f.get("type") == "subscribed", "subscribed")
    await staff.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    typing = page.get_by_role("status").filter(has_text="is typing")
    await expect(typing).to_have_text("Robin Keeper is typing…")

    reply_id = str(uuid.uuid4())
    await staff.send(
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_message_id": reply_id,
            "body": "Yes, **10 to 4**. <img src=x onerror=alert(1)>",
        }
    )
    sent = await staff.receive(lambda f: f.get("type") == "sent", "sent")
    reply_seq = sent["message"]["seq"]

    reply = visitor.log.locator("li:not(.own)")
    await expect(reply).to_have_count(1)
    await expect(reply).to_contain_text("Robin Keeper")
    await expect(reply.locator("strong")).to_have_text("10 to 4")
    await expect(reply.locator("img")).to_have_count(0)
    await expect(typing).to_have_count(0)

    # The visitor has the panel open at the newest message, so the widget marks it read.
    read = await staff.event(
        "conversation.read", lambda data: data["participant"]["type"] == "visitor"
    )
    assert read["conversation_id"] == conversation_id
    assert read["last_read_seq"] == reply_seq

    # Replying moved the staff member's read position past the visitor's message.
    await expect(own).to_have_attribute("data-status", "read")
    await expect(own).to_contain_text("Read")

    # Typing sends one "start" however many keys are pressed within 3 s, and a "stop" on send.
    await visitor.input.press_sequentially("Great, see you then")
    started = await staff.receive(lambda f: f.get("type") == "typing", "typing start")
    assert started["state"] == "start"
    assert started["participant"]["type"] == "visitor"
    await visitor.input.press("Enter")
    stopped = await staff.receive(lambda f: f.get("type") == "typing", "typing stop")
    assert stopped["state"] == "stop"
    typing_sent = [frame["state"] for _, frame in visitor.sent("typing")]
    assert typing_sent == ["start", "stop"]

    # A staff read event moves a later message from delivered to read.
    thanks = own.nth(1)
    await expect(thanks).to_have_attribute("data-status", "delivered")
    second = await staff.event(
        "conversation.message.created",
        lambda data: data["message"]["body"] == "Great, see you then",
    )
    await staff.send(
        {"type": "read", "conversation_id": conversation_id, "seq": second["message"]["seq"]}
    )
    await expect(thanks).to_have_attribute("data-status", "read")

    # A reload shows the history, each message stored once, with nothing unread.
    await page.reload()
    await expect(visitor.bubble).to_have_accessible_name(TITLE)
    await visitor.bubble.click()
    await expect(visitor.log.locator("li")).to_have_count(3)
    await expect(visitor.log.locator("li").nth(1)).to_contain_text("10 to 4")
    await expect(own.nth(1)).to_have_attribute("data-status", "read")
    stored = await staff_messages(site, conversation_id)
    assert [m["client_message_id"] for m in stored][:2] == [client_message_id, reply_id]
    assert [m["body"] for m in stored][2] == "Great, see you then"
    assert len(stored) == 3

    assert visitor.errors == []


@module_loop
async def test_keyboard_only_on_demo_page(browser: Any, site: Site) -> None:
    # The demo page is on the server's own origin with a strict Content-Security-Policy, so
    # the widget must work without inline styles or scripts. The visitor API accepts the
    # server's own origin only under the public URL (http://frontdesk.test in tests), so the
    # test allows the address that the browser uses.
    response = await site.http.put(
        "/api/v1/chat/settings",
        headers=site.staff_headers,
        json={"allowed_origins": [site.host_origin, site.live.http_url]},
    )
    assert response.status_code == 200, response.text
    context = await browser.new_context(reduced_motion="reduce")
    try:
        page = await context.new_page()
        tab = Visitor(page)
        tab.watch()
        loaded = await page.goto(f"{site.live.http_url}/chat/demo")
        assert loaded is not None and loaded.status == 200
        await expect(tab.bubble).to_be_visible()
        duration = await tab.bubble.evaluate("e => getComputedStyle(e).transitionDuration")
        assert duration == "0s"

        await page.keyboard.press("Tab")
        await expect(tab.bubble).to_be_focused()
        assert await tab.bubble.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
        controls = await tab.bubble.get_attribute("aria-controls")
        await expect(tab.widget(f"#{controls}")).to_have_attribute("role", "dialog")

        await page.keyboard.press("Enter")
        await expect(tab.bubble).to_have_attribute("aria-expanded", "true")
        await expect(tab.input).to_be_focused()
        await expect(tab.log).to_have_attribute("aria-live", "polite")
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        await expect(page.get_by_role("button", name="Attach a file")).to_be_visible()

        # Markup typed by the visitor stays text, both on its way and once stored.
        await page.keyboard.type("Typed <b>without</b> a mouse")
        await page.keyboard.press("Enter")
        await expect(tab.log.locator("li.own")).to_have_attribute("data-status", "delivered")
        await expect(tab.log.locator("li.own")).to_contain_text("Typed <b>without</b> a mouse")
        await expect(tab.log.locator("li.own b")).to_have_count(0)

        # Shift+Enter is a new line, not a send.
        await page.keyboard.type("line one")
        await page.keyboard.press("Shift+Enter")
        await page.keyboard.type("line two")
        await expect(tab.input).to_have_value("line one\nline two")
        await expect(tab.log.locator("li.own")).to_have_count(1)

        await page.keyboard.press("Escape")
        await expect(tab.bubble).to_have_attribute("aria-expanded", "false")
        await expect(page.get_by_role("dialog")).to_be_hidden()
        await expect(tab.bubble).to_be_focused()

        # The email form: shown after the first message, saved through PATCH /visitor.
        await page.keyboard.press("Enter")
        email = page.get_by_label("Leave your email so we can reply if you leave the page.")
        await email.fill("not an address")
        await email.press("Enter")
        await expect(email).to_have_attribute("aria-invalid", "true")
        await expect(email).to_be_focused()
        await expect(tab.widget("#fd-email-error")).not_to_be_empty()
        await email.fill("camille@example.org")
        await email.press("Enter")
        await expect(tab.widget(".email [role=status]")).to_contain_text("camille@example.org")

        # Chromium logs the rejected address (422); nothing else failed, CSP checks included.
        assert len(tab.errors) == 1
        assert "422" in tab.errors[0]
    finally:
        await context.close()


@module_loop
async def test_image_attachment_reaches_staff(
    site: Site, visitor: Visitor, staff: StaffSocket
) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.widget("input[type=file]").set_input_files(
        files=[{"name": "window.png", "mimeType": "image/png", "buffer": png_bytes()}]
    )
    await expect(page.get_by_role("button", name="Remove window.png")).to_be_visible()
    await expect(visitor.widget(".chip")).to_contain_text("window.png")
    await expect(visitor.widget(".chip")).not_to_contain_text("Uploading")
    await visitor.input.fill("The window I mean")
    await page.get_by_role("button", name="Send").click()

    created = await staff.event(
        "conversation.message.created", lambda data: data["message"]["attachments"]
    )
    attachment = created["message"]["attachments"][0]
    assert attachment["filename"] == "window.png"
    assert attachment["content_type"] == "image/png"
    assert attachment["kind"] == "image"
    assert created["message"]["body"] == "The window I mean"
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")

    # After a reload the image comes from the server with the visitor token, as a blob: URL.
    await page.reload()
    await visitor.bubble.click()
    image = visitor.log.locator("li.own img")
    await expect(image).to_have_attribute("alt", "window.png")
    await expect(image).to_have_attribute("src", BLOB_URL)
    loaded = await image.evaluate(
        "img => img.complete ? img.naturalWidth : new Promise(r => img.onload = () => r(img.naturalWidth))"
    )
    assert loaded > 0
    assert visitor.errors == []


@module_loop
async def test_reconnect_replays_missed_reply(
    site: Site, visitor: Visitor, staff: StaffSocket
) -> None:
    await visitor.bubble.click()
    await visitor.input.fill("Hello?")
    await visitor.input.press("Enter")
    created = await staff.event("conversation.message.created", lambda data: True)
    conversation_id = created["conversation"]["id"]
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")

    # Drop the visitor's connection; the reply is sent while the widget waits to reconnect.
    visitors = [c for c in site.gateway.connections if c.visitor_id is not None]
    assert len(visitors) == 1
    visitors[0].request_close(1012, "test restart")
    await staff.send(
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_message_id": str(uuid.uuid4()),
            "body": "Sent while you were away",
        }
    )
    await staff.receive(lambda f: f.get("type") == "sent", "sent")

    await expect(visitor.log.locator("li:not(.own)")).to_contain_text(
        "Sent while you were away", timeout=WAIT * 1000
    )
    reconnected = [c for c in site.gateway.connections if c.visitor_id is not None]
    assert len(reconnected) == 1
    assert reconnected[0] is not visitors[0]
    # The second connection resumed from the last event that the first one received.
    auths = visitor.sent("auth")
    assert [number for number, _ in auths] == [0, 1]
    assert "last_event_id" not in auths[0][1]
    first_events = [f["id"] for n, d, f in visitor.frames if n == 0 and f["type"] == "event"]
    assert auths[1][1]["last_event_id"] == first_events[-1]
    assert visitor.sent("subscribe")[-1][0] == 1
    assert visitor.errors == []


@module_loop
async def test_history_loads_older_pages(site: Site, visitor: Visitor, staff: StaffSocket) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.input.fill("Can I see the price list?")
    await visitor.input.press("Enter")
    created = await staff.event("conversation.message.created", lambda data: True)
    conversation_id = uuid.UUID(created["conversation"]["id"])
    # With the panel closed, the widget leaves the new lines unread.
    await page.keyboard.press("Escape")
    await expect(visitor.bubble).to_have_attribute("aria-expanded", "false")

    # 34 staff lines make 35 messages, more than the widget's page of 30.
    async with unit_of_work(site.runtime) as uow:
        conversation = await service.get_conversation(
            uow, workspace_id=site.workspace_id, conversation_id=conversation_id
        )
        author = service.Author(type="member", id=site.staff_user_id, name="Robin Keeper")
        for number in range(1, 35):
            await service.post_message(uow, conversation, author=author, body=f"Line {number}")

    # The bubble counts them as they arrive, and after a reload those of the newest page.
    await expect(visitor.widget(".badge")).to_have_text("34")
    await page.reload()
    await expect(visitor.widget(".badge")).to_have_text("30")
    await expect(visitor.bubble).to_have_accessible_name(f"{TITLE}, 30 unread messages")
    await visitor.bubble.click()
    await expect(visitor.widget(".badge")).to_be_hidden()
    items = visitor.log.locator("li")
    await expect(items).to_have_count(30)
    await expect(items.first).to_contain_text("Line 5")
    await expect(items.last).to_contain_text("Line 34")
    older = page.get_by_role("button", name="Load older messages")
    await expect(older).to_be_visible()

    await older.focus()
    await page.keyboard.press("Enter")
    await expect(items).to_have_count(35)
    await expect(items.first).to_contain_text("Can I see the price list?")
    await expect(older).to_be_hidden()
    await expect(items.first).to_be_focused()
    await expect(items.nth(1)).to_contain_text("Line 1")
    assert visitor.errors == []


@module_loop
async def test_resend_after_lost_reply_stores_once(
    site: Site, visitor: Visitor, staff: StaffSocket
) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.input.fill("First message")
    await visitor.input.press("Enter")
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")
    created = await staff.event("conversation.message.created", lambda data: True)
    conversation_id = created["conversation"]["id"]

    # From the next connection on, a proxy passes the "send" frame to the server but drops
    # everything the server sends back after it, then closes the page's side. The message
    # is stored, but the widget never hears so and must send it again.
    lost: list[dict[str, Any]] = []
    closing: list[asyncio.Task[None]] = []

    async def drop_reply(route: Any) -> None:
        server = route.connect_to_server()

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "send" and not lost:
                lost.append(frame)
            server.send(message)

        def to_page(message: str | bytes) -> None:
            if not lost:
                route.send(message)
            elif json.loads(message).get("type") == "sent":
                # Playwright calls message handlers without awaiting them.
                closing.append(asyncio.create_task(route.close(code=1012, reason="test proxy")))

        route.on_message(to_server)
        server.on_message(to_page)

    await page.route_web_socket(re.compile(r"/api/v1/realtime$"), drop_reply)
    [connection] = [c for c in site.gateway.connections if c.visitor_id is not None]
    connection.request_close(1012, "test restart")
    await until(lambda: connection not in site.gateway.connections, "the connection closed")
    await until(lambda: subscribed_visitors(site) == 1, "the widget subscribed again")

    posted: list[Any] = []
    page.on(
        "response",
        lambda response: (
            posted.append(response)
            if response.request.method == "POST" and response.url.endswith("/messages")
            else None
        ),
    )
    await visitor.input.fill("Second message")
    await visitor.input.press("Enter")

    second = visitor.log.locator("li.own").nth(1)
    await expect(second).to_have_attribute("data-status", "delivered")
    assert len(lost) == 1
    # The REST resend carried the same client_message_id and found the stored message.
    assert len(posted) == 1
    assert posted[0].status == 200
    resent = json.loads(posted[0].request.post_data)
    assert resent["client_message_id"] == lost[0]["client_message_id"]
    stored = await staff_messages(site, conversation_id)
    assert [m["body"] for m in stored] == ["First message", "Second message"]
    await asyncio.gather(*closing)
    assert visitor.errors == []


async def until(condition: Callable[[], bool], description: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT} s waiting until {description}") from None


def subscribed_visitors(site: Site) -> int:
    """Count the server's visitor connections that have subscribed to a conversation."""
    return sum(1 for c in site.gateway.connections if c.visitor_id is not None and c.subscriptions)


@module_loop
async def test_resync_reloads_history(site: Site, visitor: Visitor, staff: StaffSocket) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.input.fill("Anyone there?")
    await visitor.input.press("Enter")
    created = await staff.event("conversation.message.created", lambda data: True)
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # Without the event that the widget would resume from, the server cannot replay.
    async with unit_of_work(site.runtime) as uow:
        await uow.session.execute(sa.delete(Event))
    [connection] = [c for c in site.gateway.connections if c.visitor_id is not None]
    connection.request_close(1012, "test restart")
    await staff.send(
        {
            "type": "send",
            "conversation_id": created["conversation"]["id"],
            "client_message_id": str(uuid.uuid4()),
            "body": "Back after the restart",
        }
    )
    await staff.receive(lambda f: f.get("type") == "sent", "sent")

    await expect(visitor.log.locator("li:not(.own)")).to_contain_text(
        "Back after the restart", timeout=WAIT * 1000
    )
    received = [(n, f["type"]) for n, d, f in visitor.frames if d == "received"]
    assert (1, "resync") in received
    newest_page = [url for url in requested if "/messages?limit=" in url and "after=" not in url]
    assert newest_page, f"no reload of the newest page after resync: {requested}"
    assert visitor.errors == []


@module_loop
async def test_widget_hidden_for_other_sites(site: Site, visitor: Visitor) -> None:
    page = visitor.page
    await expect(visitor.bubble).to_be_visible()
    response = await site.http.put(
        "/api/v1/chat/settings",
        headers=site.staff_headers,
        json={"allowed_origins": ["https://www.lumen-studio.example"]},
    )
    assert response.status_code == 200, response.text

    async with page.expect_console_message(
        lambda message: "widget stays hidden" in message.text
    ) as warning:
        await page.reload()

    assert (await warning.value).type == "warning"
    await expect(page.locator("[data-frontdesk-chat]")).to_have_count(0)
    # Chromium reports the CORS rejection of the config request.
    assert any("CORS" in error or "403" in error for error in visitor.errors)


@module_loop
async def test_widget_hides_when_chat_turned_off(site: Site, visitor: Visitor) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.input.fill("Hello")
    await visitor.input.press("Enter")
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")
    storage_key = f"frontdesk-chat:{site.public_key}"
    stored = json.loads(await page.evaluate(f"localStorage.getItem('{storage_key}')"))
    assert stored["visitor_token"].startswith("fdv1.")

    response = await site.http.put(
        "/api/v1/chat/settings", headers=site.staff_headers, json={"enabled": False}
    )
    assert response.status_code == 200, response.text

    # The server closes the visitor's connection with 4004, and the widget hides at once.
    await expect(visitor.bubble).to_be_hidden()
    await until(lambda: subscribed_visitors(site) == 0, "the visitor connection closed")
    # The visitor keeps their token for when the chat is back on, and does not reconnect.
    kept = json.loads(await page.evaluate(f"localStorage.getItem('{storage_key}')"))
    assert kept["visitor_token"] == stored["visitor_token"]
    # A reconnect would come within 1 s, the first backoff.
    await asyncio.sleep(1.5)
    assert visitor.sockets == 1
    assert visitor.errors == []


@module_loop
async def test_revoked_visitor_starts_over(
    site: Site, visitor: Visitor, staff: StaffSocket
) -> None:
    page = visitor.page
    await visitor.bubble.click()
    await visitor.input.fill("Before")
    await visitor.input.press("Enter")
    first = await staff.event("conversation.message.created", lambda data: True)
    visitor_id = first["conversation"]["visitor_id"]
    await expect(visitor.log.locator("li.own")).to_have_attribute("data-status", "delivered")

    response = await site.http.post(
        f"/api/v1/chat/visitors/{visitor_id}/revoke", headers=site.staff_headers
    )
    assert response.status_code == 200, response.text
    # The server closes the connection with 4003 and the widget forgets the token.
    storage_key = f"frontdesk-chat:{site.public_key}"
    await page.wait_for_function(
        f"!(localStorage.getItem('{storage_key}') || '').includes('visitor_token')"
    )

    # The next message comes from a new visitor in a new conversation.
    await visitor.input.fill("After")
    await visitor.input.press("Enter")
    second = await staff.event(
        "conversation.message.created", lambda data: data["message"]["body"] == "After"
    )
    assert second["conversation"]["visitor_id"] != visitor_id
    assert second["conversation"]["id"] != first["conversation"]["id"]
    await expect(visitor.log.locator("li.own")).to_have_count(1)
    await expect(visitor.log.locator("li.own")).to_contain_text("After")
    assert visitor.errors == []


# --- Routes ----------------------------------------------------------------------------------


async def test_widget_script_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/chat/widget.js")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=86400" in response.headers["cache-control"]
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "data-workspace" in response.text

    again = await client.get("/chat/widget.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_demo_page_embeds_oldest_chat(client: httpx.AsyncClient) -> None:
    empty = await client.get("/chat/demo")
    assert empty.status_code == 200
    assert "No workspace has website chat set up yet" in empty.text
    assert "<script" not in empty.text

    tokens = await signup(client)
    settings = await client.get("/api/v1/chat/settings", headers=bearer(tokens))
    key = settings.json()["public_key"]

    response = await client.get("/chat/demo")
    assert response.status_code == 200
    assert f'data-workspace="{key}"' in response.text
    assert 'src="http://frontdesk.test/chat/widget.js"' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src http://frontdesk.test;" in policy
    assert "connect-src http://frontdesk.test ws://frontdesk.test;" in policy
    assert "'unsafe-inline'" not in policy


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}, id="postgres"
        ),
        pytest.param({"env": "production", "smtp_host": "127.0.0.1"}, id="production"),
    ],
)
async def test_demo_page_404_when_scaled(tmp_path: Path, overrides: dict[str, Any]) -> None:
    values = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/unused.db", **overrides}
    settings = make_settings(values.pop("database_url"), tmp_path, **values)
    app = create_app(settings, run_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as http:
        response = await http.get("/chat/demo")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "embedded mode" in response.json()["detail"]
