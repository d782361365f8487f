"""One client's WebSocket: reading its frames under limits and writing its event queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from frontdesk.realtime.protocol import (
    CLOSE_TIMEOUT_SECONDS,
    MAX_FRAME_BYTES,
    MAX_FRAMES_PER_WINDOW,
    MAX_INVALID_FRAMES,
    PONG_FRAME,
    RATE_WINDOW_SECONDS,
    SEND_TIMEOUT_SECONDS,
    AuthFrame,
    ClientFrame,
    ClientGone,
    CloseCode,
    FrameError,
    PingFrame,
    Rejected,
    departure_reason,
    error_frame,
    parse_client_frame,
)

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


class Connection:
    """An authenticated client: who it is, its bounded send queue and how it closes.

    The gateway registers a connection before it reads the replay, and offers it live events
    from then on. Until ``go_live`` names the position that the replay reaches, offered events
    are held in a list, because most of them may turn out to be part of the replay. After
    that, events above ``last_sent`` go to the bounded queue, and ``run`` sends them in order.
    Anyone may call ``request_close``; ``run`` then returns and the gateway closes the socket
    with the requested code.
    """

    def __init__(
        self,
        websocket: WebSocket,
        reader: FrameReader,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        workspace_id: uuid.UUID,
        queue_size: int,
    ) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.websocket = websocket
        self.reader = reader
        self.user_id = user_id
        self.session_id = session_id
        self.workspace_id = workspace_id
        self.session_expires_at: datetime | None = None
        self.last_sent = 0
        self.events_sent = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.client_gone = False
        self.closing = asyncio.Event()
        self.finished = asyncio.Event()
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=queue_size)
        self._pending_live: list[tuple[int, str]] | None = []
        self._send_lock = asyncio.Lock()

    @property
    def queue_full(self) -> bool:
        return self._queue.full()

    def offer(self, position: int, text: str) -> None:
        """Queue an event for sending; a full queue closes the connection as a slow consumer."""
        if self.closing.is_set() or position <= self.last_sent:
            return
        if self._pending_live is not None:
            self._pending_live.append((position, text))
            return
        try:
            self._queue.put_nowait((position, text))
        except asyncio.QueueFull:
            log.warning("realtime.slow_consumer", connection_id=self.id, user_id=str(self.user_id))
            self.request_close(CloseCode.SLOW_CONSUMER, "send queue full")

    def go_live(self, caught_up_to: int) -> None:
        """Skip live events up to ``caught_up_to`` (sent by the replay) and queue the rest."""
        self.last_sent = caught_up_to
        pending, self._pending_live = self._pending_live or [], None
        for position, text in pending:
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
                    await self.send_text(error_frame(frame.code, frame.message))
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
