"""One client's WebSocket: reading its frames under limits and writing its event queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from frontdesk.realtime.protocol import (
    CLOSE_TIMEOUT_SECONDS,
    MAX_FRAME_BYTES,
    MAX_FRAMES_PER_WINDOW,
    MAX_INVALID_FRAMES,
    MAX_REJECTED_SENDS,
    PONG_FRAME,
    RATE_WINDOW_SECONDS,
    SEND_BURST,
    SEND_REFILL_SECONDS,
    SEND_TIMEOUT_SECONDS,
    AuthFrame,
    ChatFrame,
    ClientFrame,
    ClientGone,
    CloseCode,
    FrameError,
    PingFrame,
    Rejected,
    departure_reason,
    error_frame,
    frame_error_text,
    parse_client_frame,
)
from frontdesk.realtime.replay import Viewer

log = structlog.get_logger()


class FrameReader:
    """Receives client frames and enforces the size, validity and rate limits."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.invalid_frames = 0
        self._window_started = 0.0
        self._frames_in_window = 0

    async def receive(self) -> ClientFrame | FrameError:
        """Return the next frame, or the error to report for it.

        Raises ClientGone when the client disconnects and Rejected when a limit is broken.
        """
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise ClientGone(int(message.get("code") or 1005))
        self._count_frame()
        text = message.get("text")
        if text is None:
            return self._invalid(
                FrameError("binary_not_supported", "Send frames as JSON text, not binary.")
            )
        if len(text) > MAX_FRAME_BYTES or len(text.encode()) > MAX_FRAME_BYTES:
            raise Rejected(CloseCode.MESSAGE_TOO_BIG, f"frame over {MAX_FRAME_BYTES} bytes")
        frame = parse_client_frame(text)
        if isinstance(frame, FrameError):
            return self._invalid(frame)
        return frame

    def _count_frame(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._window_started >= RATE_WINDOW_SECONDS:
            self._window_started = now
            self._frames_in_window = 0
        self._frames_in_window += 1
        if self._frames_in_window > MAX_FRAMES_PER_WINDOW:
            raise Rejected(CloseCode.POLICY_VIOLATION, "too many frames")

    def _invalid(self, error: FrameError) -> FrameError:
        self.invalid_frames += 1
        if self.invalid_frames > MAX_INVALID_FRAMES:
            raise Rejected(CloseCode.POLICY_VIOLATION, "too many invalid frames")
        return error


class SendLimiter:
    """A token bucket for send frames: SEND_BURST at once, then one per SEND_REFILL_SECONDS.

    ``take`` returns 0 when the send may go ahead, else the seconds until it may. Rejections
    are counted per RATE_WINDOW_SECONDS window; past MAX_REJECTED_SENDS the client keeps
    sending regardless of the errors, and ``take`` raises Rejected to close the connection.
    """

    def __init__(self) -> None:
        self._tokens = float(SEND_BURST)
        self._updated = 0.0
        self._window_started = 0.0
        self._rejected_in_window = 0

    def take(self, now: float) -> float:
        if self._updated:
            elapsed = now - self._updated
            self._tokens = min(float(SEND_BURST), self._tokens + elapsed / SEND_REFILL_SECONDS)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        if now - self._window_started >= RATE_WINDOW_SECONDS:
            self._window_started = now
            self._rejected_in_window = 0
        self._rejected_in_window += 1
        if self._rejected_in_window > MAX_REJECTED_SENDS:
            raise Rejected(CloseCode.POLICY_VIOLATION, "too many send frames")
        return (1.0 - self._tokens) * SEND_REFILL_SECONDS


FrameHandler = Callable[["Connection", ChatFrame], Awaitable[None]]


class Connection:
    """An authenticated client: who it is, its bounded send queue and how it closes.

    A staff connection has ``user_id`` and ``session_id``; a visitor connection has
    ``visitor_id`` and the ids of the visitor's conversations. The gateway registers a
    connection before it reads the replay, and offers it live events from then on. Until
    ``go_live`` names the position that the replay reaches, offered events are held in a list,
    because most of them may turn out to be part of the replay. After that, events above
    ``last_sent`` go to the bounded queue, and ``run`` sends them in order. Typing and presence
    frames share that queue, so a client that does not read them is closed like one that does
    not read events. Anyone may call ``request_close``; ``run`` then returns and the gateway
    closes the socket with the requested code.
    """

    def __init__(
        self,
        websocket: WebSocket,
        reader: FrameReader,
        *,
        workspace_id: uuid.UUID,
        queue_size: int,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        visitor_id: uuid.UUID | None = None,
        frame_handler: FrameHandler | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.websocket = websocket
        self.reader = reader
        self.user_id = user_id
        self.session_id = session_id
        self.workspace_id = workspace_id
        self.visitor_id = visitor_id
        # The member's full name or the visitor's name, shown to others while typing.
        self.name: str | None = None
        self.visitor_conversations: set[uuid.UUID] = set()
        self.subscriptions: set[uuid.UUID] = set()
        # Loop time of the last typing start forwarded, per conversation, for throttling.
        self.typing_since: dict[uuid.UUID, float] = {}
        # Conversations where this connection's last typing frame was a start, each with
        # whether that start was for an internal note.
        self.typing_active: dict[uuid.UUID, bool] = {}
        self.presence_status = "online"
        # Set once the presence snapshot was queued; presence changes are sent from then on.
        self.receives_presence = False
        self.send_limiter = SendLimiter()
        self.frame_handler = frame_handler
        self.session_expires_at: datetime | None = None
        self.viewer = Viewer(
            workspace_id=workspace_id,
            user_id=user_id,
            visitor_id=visitor_id,
            conversation_ids=self.visitor_conversations if visitor_id is not None else None,
        )
        self.last_sent = 0
        self.events_sent = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.client_gone = False
        self.closing = asyncio.Event()
        self.finished = asyncio.Event()
        # Events carry their position; typing and presence frames carry None.
        self._queue: asyncio.Queue[tuple[int | None, str]] = asyncio.Queue(maxsize=queue_size)
        # (position, frame, conversation id of a visitor event whose visibility is decided
        # at go_live) for events offered before the replay was read.
        self._pending_live: list[tuple[int, str, uuid.UUID | None]] | None = []
        self._send_lock = asyncio.Lock()

    @property
    def is_visitor(self) -> bool:
        return self.visitor_id is not None

    @property
    def queue_full(self) -> bool:
        return self._queue.full()

    @property
    def queued(self) -> int:
        """Frames waiting in the send queue."""
        return self._queue.qsize()

    def offer_ephemeral(self, text: str) -> None:
        """Queue a typing or presence frame; a full queue closes the connection.

        Frames offered before ``go_live`` are dropped: the client has not received ready yet.
        """
        if self.closing.is_set() or self._pending_live is not None:
            return
        try:
            self._queue.put_nowait((None, text))
        except asyncio.QueueFull:
            log.warning("realtime.slow_consumer", connection_id=self.id, ephemeral=True)
            self.request_close(CloseCode.SLOW_CONSUMER, "send queue full")

    @property
    def awaiting_replay(self) -> bool:
        """Whether ``go_live`` has not run yet."""
        return self._pending_live is not None

    def offer(
        self, position: int, text: str, *, visitor_conversation: uuid.UUID | None = None
    ) -> None:
        """Queue an event for sending; a full queue closes the connection as a slow consumer.

        Before ``go_live`` the gateway may offer a visitor event with ``visitor_conversation``
        because the visitor's conversations are still being read. It is kept only if that
        conversation is the visitor's by then.
        """
        if self.closing.is_set() or position <= self.last_sent:
            return
        if self._pending_live is not None:
            self._pending_live.append((position, text, visitor_conversation))
            return
        try:
            self._queue.put_nowait((position, text))
        except asyncio.QueueFull:
            log.warning("realtime.slow_consumer", connection_id=self.id)
            self.request_close(CloseCode.SLOW_CONSUMER, "send queue full")

    def go_live(self, caught_up_to: int) -> None:
        """Skip live events up to ``caught_up_to`` (sent by the replay) and queue the rest."""
        self.last_sent = caught_up_to
        pending, self._pending_live = self._pending_live or [], None
        for position, text, visitor_conversation in pending:
            if visitor_conversation is None or visitor_conversation in self.visitor_conversations:
                self.offer(position, text)

    def request_close(self, code: int, reason: str) -> None:
        """Ask ``run`` to end; the first request's code wins."""
        if self.closing.is_set():
            return
        self.close_code = code
        self.close_reason = reason
        self.closing.set()

    async def send_text(self, text: str) -> None:
        """Send one frame; the reader and writer tasks both send, so sends take turns."""
        async with self._send_lock:
            await send_with_timeout(self.websocket, text)

    async def send_event(self, text: str) -> None:
        await self.send_text(text)
        self.events_sent += 1

    async def run(self) -> None:
        """Read frames and send queued events until a close is requested or the client leaves."""
        tasks = [
            asyncio.create_task(self._read_loop(), name=f"realtime-read-{self.id}"),
            asyncio.create_task(self._write_loop(), name=f"realtime-write-{self.id}"),
            asyncio.create_task(self.closing.wait(), name=f"realtime-closing-{self.id}"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                log.error(
                    "realtime.connection_failed",
                    connection_id=self.id,
                    error=repr(result),
                    exc_info=result,
                )
                self.request_close(CloseCode.INTERNAL_ERROR, "internal error")

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await self.reader.receive()
                if isinstance(frame, FrameError):
                    await self.send_text(frame_error_text(frame))
                elif isinstance(frame, PingFrame):
                    await self.send_text(PONG_FRAME)
                elif isinstance(frame, AuthFrame):
                    await self.send_text(
                        error_frame(
                            "already_authenticated",
                            "This connection is authenticated already; to use another token, "
                            "open a new connection.",
                        )
                    )
                elif self.frame_handler is not None:
                    await self.frame_handler(self, frame)
        except ClientGone as gone:
            self._mark_client_gone(gone.code)
        except WebSocketDisconnect as gone:
            self._mark_client_gone(gone.code)
        except Rejected as rejected:
            self.request_close(rejected.code, rejected.reason)

    async def _write_loop(self) -> None:
        try:
            while True:
                position, text = await self._queue.get()
                if position is None:
                    await self.send_text(text)
                    continue
                if position <= self.last_sent:
                    continue
                await self.send_event(text)
                self.last_sent = position
        except WebSocketDisconnect as gone:
            self._mark_client_gone(gone.code)
        except Rejected as rejected:
            self.request_close(rejected.code, rejected.reason)

    def _mark_client_gone(self, code: int) -> None:
        self.client_gone = True
        self.request_close(code, departure_reason(code))

    async def close(self) -> None:
        """Send the close frame with the requested code unless the client has left."""
        await close_websocket(
            self.websocket, self.close_code or CloseCode.NORMAL, self.close_reason
        )


async def send_with_timeout(websocket: WebSocket, text: str) -> None:
    """Send one text frame; raises Rejected when the client does not read it in time."""
    # asyncio.timeout rather than wait_for: on Python 3.11 wait_for runs the send in a new
    # task, so every frame would cost a trip through the event loop.
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await websocket.send_text(text)
    except TimeoutError as exc:
        raise Rejected(CloseCode.SLOW_CONSUMER, "send timed out") from exc


async def close_websocket(websocket: WebSocket, code: int, reason: str) -> None:
    """Close the socket, waiting at most CLOSE_TIMEOUT_SECONDS for a client that does not read."""
    if (
        websocket.application_state != WebSocketState.CONNECTED
        or websocket.client_state == WebSocketState.DISCONNECTED
    ):
        return
    try:
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT_SECONDS)
    except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError) as exc:
        log.info("realtime.close_failed", code=int(code), error=repr(exc))
