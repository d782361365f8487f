"""The WebSocket gateway: authenticates clients and delivers sequenced events to them live.

Each process runs one gateway. It remembers the highest position it has dispatched and, on
every broker signal and every ``realtime_poll_interval_seconds``, reads the events after it
from the events table in position order. Every process therefore sends the same events in the
same order, whichever process recorded them, and a lost signal only delays delivery until the
next poll.

Typing and presence are not events: they travel between processes as ephemeral broker
messages, each marked with the sending process's ``node`` id, and are never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import sqlalchemy as sa
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketDisconnect

from frontdesk.auth.dependencies import resolve_token
from frontdesk.auth.models import AuthSession
from frontdesk.auth.tokens import InvalidAccessToken, decode_access_token
from frontdesk.conversations.visitors import (
    InvalidVisitorToken,
    decode_visitor_token,
    is_visitor_token,
)
from frontdesk.core.errors import Unauthorized
from frontdesk.core.events import event_payload, events_after, latest_position
from frontdesk.core.models import Event
from frontdesk.realtime import chat
from frontdesk.realtime.connection import (
    Connection,
    FrameReader,
    close_websocket,
    send_with_timeout,
)
from frontdesk.realtime.hub import ChatHub
from frontdesk.realtime.protocol import (
    CLOSE_TIMEOUT_SECONDS,
    PONG_FRAME,
    AuthFrame,
    ClientGone,
    CloseCode,
    FrameError,
    PingFrame,
    Rejected,
    departure_reason,
    encode,
    error_frame,
    frame_error_text,
    ready_frame,
    resync_frame,
)
from frontdesk.realtime.replay import is_visible, plan_replay, track_visitor_conversation
from frontdesk.runtime import Runtime

log = structlog.get_logger()

OPEN_CONNECTIONS = Gauge(
    "frontdesk_realtime_connections", "Authenticated realtime WebSocket connections"
)
CLOSED_CONNECTIONS = Counter(
    "frontdesk_realtime_closed_total", "Realtime WebSocket connections closed, by code", ["code"]
)

# Events read from the table per query while catching up.
DISPATCH_BATCH_SIZE = 500
# Events handed over in memory beyond this many wait for a database read instead.
MAX_HANDED_EVENTS = 5_000


class Gateway:
    """Registry of open connections and the task that dispatches events to them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._position = 0
        # Highest position announced by a broker signal. The database is read when it is
        # ahead of what this process's own events covered.
        self._announced = 0
        self._read_database = True
        # Events this process committed, by position, waiting to be dispatched without a read.
        self._handed: dict[int, Event] = {}
        self._connections: set[Connection] = set()
        self._by_workspace: dict[uuid.UUID, set[Connection]] = {}
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.hub = ChatHub(runtime, workspace_connections=lambda w: self._by_workspace.get(w, ()))

    @property
    def position(self) -> int:
        """The highest event position dispatched by this process."""
        return self._position

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections)

    async def start(self) -> None:
        """Begin at the newest position: clients that need older events ask for a replay."""
        async with self.runtime.read_sessionmaker() as session:
            self._position = await latest_position(session)
        self.runtime.broker.subscribe(self._on_signal)
        self.runtime.event_sink = self._take_events
        self._task = asyncio.create_task(self._run(), name="frontdesk-realtime-dispatcher")
        await self.hub.start()
        log.info("realtime.started", position=self._position)

    async def stop(self) -> None:
        """Stop dispatching and close every connection with 1001 (going away)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.runtime.broker.unsubscribe(self._on_signal)
        if self.runtime.event_sink == self._take_events:
            self.runtime.event_sink = None
        self._handed.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        open_connections = list(self._connections)
        for connection in open_connections:
            connection.request_close(CloseCode.GOING_AWAY, "server shutting down")
        if open_connections:
            waiters = [asyncio.create_task(c.finished.wait()) for c in open_connections]
            _done, pending = await asyncio.wait(waiters, timeout=CLOSE_TIMEOUT_SECONDS + 1)
            for waiter in pending:
                waiter.cancel()
        await self.hub.stop()
        log.info("realtime.stopped", closed=len(open_connections))

    # Dispatching

    def _on_signal(self, position: int) -> None:
        # -1 comes from a broker that reconnected and may have missed signals.
        if position < 0:
            self._read_database = True
            self._wake.set()
        elif position > self._position:
            self._announced = max(self._announced, position)
            self._wake.set()

    def _take_events(self, events: list[Event]) -> None:
        """Keep events this process committed until the dispatcher reaches their positions."""
        if len(self._handed) >= MAX_HANDED_EVENTS:
            # The dispatcher is far behind, so it reads these from the database instead.
            return
        for event in events:
            if event.position is not None and event.position > self._position:
                self._handed[event.position] = event

    async def _run(self) -> None:
        interval = self.settings.realtime_poll_interval_seconds
        while not self._stopped.is_set():
            try:
                # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that arrives
                # just as the event is set, and stop() then waits for this loop forever.
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                # The poll finds events whose signal was lost.
                self._read_database = True
            self._wake.clear()
            try:
                await self._advance()
                await self._close_expired_sessions()
            except Exception as exc:
                # The loop must survive a database outage; the next signal or poll retries.
                self._read_database = True
                log.error("realtime.dispatch_failed", error=repr(exc), exc_info=exc)
                await asyncio.sleep(min(interval, 1.0))

    async def _advance(self) -> None:
        """Dispatch handed-over events in position order, and read the database for the rest."""
        while True:
            event = self._handed.pop(self._position + 1, None)
            if event is not None:
                await self._dispatch(event)
                self._position += 1
                continue
            for stale in [p for p in self._handed if p <= self._position]:
                del self._handed[stale]
            if not self._read_database and self._announced <= self._position:
                return
            self._read_database = False
            announced = self._announced
            await self.catch_up()
            if self._announced == announced and self._position < announced:
                # The announced events cannot be read (pruned, for example), so wait for the
                # next signal or poll instead of reading again at once.
                self._announced = self._position

    async def catch_up(self) -> None:
        """Dispatch every event after the current position, in position order."""
        while True:
            # One short session per batch, so the read never holds SQLite's write lock long.
            async with self.runtime.read_sessionmaker() as session:
                batch = await events_after(session, self._position, DISPATCH_BATCH_SIZE)
            for event in batch:
                await self._dispatch(event)
                self._position = event.position or self._position
            if len(batch) < DISPATCH_BATCH_SIZE:
                return

    async def _dispatch(self, event: Event) -> None:
        if event.name.startswith("internal."):
            self._apply_internal(event)
            return
        if event.workspace_id is None or event.position is None:
            return
        audience = self._by_workspace.get(event.workspace_id)
        if not audience:
            return
        text = encode(event_payload(event))
        for connection in list(audience):
            track_visitor_conversation(event, connection.viewer)
            if is_visible(event, connection.viewer):
                if connection.queue_full:
                    # A client that keeps up empties its queue as soon as its writer task
                    # runs. One pass of the event loop separates a burst from a slow consumer.
                    await asyncio.sleep(0)
                connection.offer(event.position, text)
            elif (
                connection.is_visitor
                and connection.awaiting_replay
                and event.audience == "visitor"
                and event.conversation_id is not None
            ):
                # The visitor's conversations are still being read: go_live decides.
                connection.offer(event.position, text, visitor_conversation=event.conversation_id)

    def _apply_internal(self, event: Event) -> None:
        data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
        if event.name == "internal.sessions_revoked":
            raw_ids = data.get("session_ids")
            session_ids = {_parse_uuid(value) for value in raw_ids or []} - {None}
            for connection in list(self._connections):
                if connection.session_id in session_ids:
                    connection.request_close(CloseCode.SESSION_ENDED, "session ended")
        elif event.name == "internal.visitor_revoked" and event.workspace_id is not None:
            visitor_id = _parse_uuid(data.get("visitor_id"))
            for connection in list(self._by_workspace.get(event.workspace_id, ())):
                if visitor_id is not None and connection.visitor_id == visitor_id:
                    connection.request_close(CloseCode.SESSION_ENDED, "visitor revoked")
        elif event.name == "internal.chat_disabled" and event.workspace_id is not None:
            for connection in list(self._by_workspace.get(event.workspace_id, ())):
                if connection.is_visitor:
                    connection.request_close(CloseCode.NOT_A_MEMBER, "chat disabled")
        elif event.name == "internal.member_removed" and event.workspace_id is not None:
            user_id = _parse_uuid(data.get("user_id"))
            for connection in list(self._by_workspace.get(event.workspace_id, ())):
                if user_id is not None and connection.user_id == user_id:
                    connection.request_close(CloseCode.NOT_A_MEMBER, "removed from workspace")

    async def _close_expired_sessions(self) -> None:
        """Close connections whose login session expired; re-read sessions that may be extended."""
        now = self.runtime.clock.now()
        due = [
            c
            for c in self._connections
            if c.session_expires_at is not None and c.session_expires_at <= now
        ]
        if not due:
            return
        async with self.runtime.read_sessionmaker() as session:
            rows = await session.scalars(
                sa.select(AuthSession).where(AuthSession.id.in_({c.session_id for c in due}))
            )
            sessions = {row.id: row for row in rows}
        for connection in due:
            login = sessions.get(connection.session_id) if connection.session_id else None
            if login is None or login.revoked_at is not None or login.expires_at <= now:
                connection.request_close(CloseCode.SESSION_ENDED, "session expired")
            else:
                connection.session_expires_at = login.expires_at

    def _register(self, connection: Connection) -> None:
        self._connections.add(connection)
        self._by_workspace.setdefault(connection.workspace_id, set()).add(connection)
        OPEN_CONNECTIONS.inc()

    def _unregister(self, connection: Connection) -> None:
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        members = self._by_workspace.get(connection.workspace_id)
        if members is not None:
            members.discard(connection)
            if not members:
                del self._by_workspace[connection.workspace_id]
        OPEN_CONNECTIONS.dec()

    # Serving one client

    async def serve(self, websocket: WebSocket) -> None:
        """Run one client's connection from the handshake to the close."""
        await websocket.accept()
        reader = FrameReader(websocket)
        connection: Connection | None = None
        try:
            if self._stopped.is_set():
                raise Rejected(CloseCode.GOING_AWAY, "server shutting down")
            frame = await self._receive_auth(websocket, reader)
            connection = self._admit(websocket, reader, frame.token)
            await self._open(connection, frame)
            await connection.run()
        except Rejected as rejected:
            if connection is None:
                await self._reject(websocket, rejected)
            else:
                connection.request_close(rejected.code, rejected.reason)
        except (ClientGone, WebSocketDisconnect) as gone:
            if connection is not None:
                connection.client_gone = True
                connection.request_close(gone.code, departure_reason(gone.code))
        except Exception as exc:
            log.error("realtime.connection_failed", error=repr(exc), exc_info=exc)
            if connection is None:
                await self._reject(websocket, Rejected(CloseCode.INTERNAL_ERROR, "internal error"))
            else:
                connection.request_close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if connection is not None:
                await self._finish(connection)

    async def _receive_auth(self, websocket: WebSocket, reader: FrameReader) -> AuthFrame:
        """Wait for the auth frame; pings before it get pongs and invalid frames get errors."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.realtime_auth_timeout_seconds
        while True:
            remaining = deadline - loop.time()
            receiving = asyncio.ensure_future(reader.receive())
            stopping = asyncio.ensure_future(self._stopped.wait())
            done, pending = await asyncio.wait(
                {receiving, stopping},
                timeout=max(remaining, 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if receiving not in done:
                if stopping in done:
                    raise Rejected(CloseCode.GOING_AWAY, "server shutting down")
                raise Rejected(CloseCode.AUTH_TIMEOUT, "no auth frame in time")
            frame = receiving.result()
            if isinstance(frame, AuthFrame):
                return frame
            if isinstance(frame, PingFrame):
                await send_with_timeout(websocket, PONG_FRAME)
            elif isinstance(frame, FrameError):
                await send_with_timeout(websocket, frame_error_text(frame))
            else:
                await send_with_timeout(
                    websocket,
                    error_frame("not_authenticated", "Send the auth frame first."),
                )

    def _admit(self, websocket: WebSocket, reader: FrameReader, token: str) -> Connection:
        """Check the token's signature and register the connection for live events.

        Registering before the database check closes a race: a logout or removal that commits
        after the check is dispatched to this connection, and one that committed before it
        fails the check. For a visitor, a conversation created after the registration is
        seen by the dispatcher, and one created before it is read by the check.
        """
        if is_visitor_token(token):
            return self._admit_visitor(websocket, reader, token)
        try:
            claims = decode_access_token(
                self.runtime.secrets.secret_key, token, now=self.runtime.clock.now()
            )
        except InvalidAccessToken as exc:
            raise Rejected(CloseCode.SESSION_ENDED, "invalid or expired token") from exc
        if claims.workspace_id is None:
            raise Rejected(CloseCode.NOT_A_MEMBER, "the token names no workspace")
        connection = Connection(
            websocket,
            reader,
            user_id=claims.user_id,
            session_id=claims.session_id,
            workspace_id=claims.workspace_id,
            queue_size=self.settings.realtime_send_queue_size,
            frame_handler=self.hub.handle_frame,
        )
        # Every later log line of this connection's task carries its id.
        structlog.contextvars.bind_contextvars(connection_id=connection.id)
        self._register(connection)
        return connection

    def _admit_visitor(self, websocket: WebSocket, reader: FrameReader, token: str) -> Connection:
        try:
            claims = decode_visitor_token(self.runtime.secrets.secret_key, token)
        except InvalidVisitorToken as exc:
            raise Rejected(CloseCode.SESSION_ENDED, "invalid visitor token") from exc
        connection = Connection(
            websocket,
            reader,
            visitor_id=claims.visitor_id,
            workspace_id=claims.workspace_id,
            queue_size=self.settings.realtime_send_queue_size,
            frame_handler=self.hub.handle_frame,
        )
        structlog.contextvars.bind_contextvars(connection_id=connection.id)
        self._register(connection)
        return connection

    async def _open(self, connection: Connection, frame: AuthFrame) -> None:
        """Check the session and membership (or the visitor), then send ready and the replay."""
        async with self.runtime.read_sessionmaker() as session:
            if connection.is_visitor:
                role = "visitor"
                visitor = await chat.find_visitor(session, connection)
                if visitor is None:
                    raise Rejected(CloseCode.SESSION_ENDED, "unknown or revoked visitor")
                rejection = await chat.visitor_rejection_reason(
                    session, connection, public_url=self.settings.resolved_public_url
                )
                if rejection is not None:
                    raise Rejected(CloseCode.NOT_A_MEMBER, rejection)
                connection.name = visitor.name
                # A union: the dispatcher may have added a conversation created meanwhile.
                connection.visitor_conversations |= await chat.visitor_conversation_ids(
                    session, connection
                )
            else:
                role = await self._check_member(session, connection, frame.token)
            plan = await plan_replay(
                session,
                last_event_id=frame.last_event_id,
                viewer=connection.viewer,
                now=self.runtime.clock.now(),
                window_seconds=self.settings.event_replay_window_seconds,
            )
        connection.go_live(plan.caught_up_to)
        if connection.closing.is_set():
            return
        await connection.send_text(
            ready_frame(
                user_id=str(connection.user_id) if connection.user_id is not None else None,
                visitor_id=str(connection.visitor_id) if connection.is_visitor else None,
                workspace_id=str(connection.workspace_id),
                role=role,
                last_event_id=plan.caught_up_to,
            )
        )
        if plan.resync:
            await connection.send_text(resync_frame(last_event_id=plan.caught_up_to))
        for event in plan.events:
            if connection.closing.is_set():
                break
            await connection.send_event(encode(event_payload(event)))
        self.hub.connection_opened(connection)
        log.info(
            "realtime.connected",
            connection_id=connection.id,
            user_id=str(connection.user_id) if connection.user_id else None,
            visitor_id=str(connection.visitor_id) if connection.visitor_id else None,
            workspace_id=str(connection.workspace_id),
            session_id=str(connection.session_id) if connection.session_id else None,
            replayed=len(plan.events),
            resync=plan.resync,
        )

    async def _check_member(self, session: AsyncSession, connection: Connection, token: str) -> str:
        """Check the login session and membership; return the member's role."""
        try:
            actor, role = await resolve_token(session, self.runtime, token)
        except Unauthorized as exc:
            raise Rejected(CloseCode.SESSION_ENDED, "session ended") from exc
        if role is None:
            raise Rejected(CloseCode.NOT_A_MEMBER, "not a member of the workspace")
        connection.session_expires_at = actor.session_expires_at
        connection.name = actor.full_name
        return role

    async def _reject(self, websocket: WebSocket, rejected: Rejected) -> None:
        log.info("realtime.rejected", code=int(rejected.code), reason=rejected.reason)
        CLOSED_CONNECTIONS.labels(code=str(int(rejected.code))).inc()
        await close_websocket(websocket, rejected.code, rejected.reason)

    async def _finish(self, connection: Connection) -> None:
        self._unregister(connection)
        self.hub.connection_closed(connection)
        if not connection.client_gone:
            await connection.close()
        code = connection.close_code or CloseCode.NORMAL
        CLOSED_CONNECTIONS.labels(code=str(int(code))).inc()
        log.info(
            "realtime.closed",
            connection_id=connection.id,
            user_id=str(connection.user_id) if connection.user_id else None,
            visitor_id=str(connection.visitor_id) if connection.visitor_id else None,
            workspace_id=str(connection.workspace_id),
            code=int(code),
            reason=connection.close_reason,
            closed_by=(
                "client"
                if connection.client_gone and code != CloseCode.SERVICE_RESTART
                else "server"
            ),
            events_sent=connection.events_sent,
        )
        connection.finished.set()


def _parse_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
