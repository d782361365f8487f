"""Live chat on the gateway: subscriptions, chat frames, typing and presence.

The hub handles the chat frames of a connection (subscribe, unsubscribe, send, read, typing,
presence) and moves typing and presence between processes as ephemeral broker messages.
Messages and read positions are stored through the conversations service; their events then
reach clients through the normal event delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from frontdesk.core.errors import NotFound
from frontdesk.realtime import chat
from frontdesk.realtime.connection import Connection
from frontdesk.realtime.presence import PresenceTracker
from frontdesk.realtime.protocol import (
    MAX_SUBSCRIPTIONS,
    TYPING_EXPIRES_SECONDS,
    TYPING_THROTTLE_SECONDS,
    ChatFrame,
    PresenceFrame,
    ReadFrame,
    SendFrame,
    SubscribeFrame,
    TypingFrame,
    UnsubscribeFrame,
    encode,
    error_frame,
)
from frontdesk.realtime.typing import TypingTracker, participant_for, typing_frame
from frontdesk.runtime import Runtime

log = structlog.get_logger()

# Ephemeral messages waiting to be published; more are dropped, as a lost typing signal is.
OUTBOX_SIZE = 1000


class ChatHub:
    """Chat state of one process: local subscribers, typing states and presence."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        workspace_connections: Callable[[uuid.UUID], Iterable[Connection]],
    ) -> None:
        self.runtime = runtime
        self.node = uuid.uuid4().hex
        self._workspace_connections = workspace_connections
        self._subscribers: dict[uuid.UUID, set[Connection]] = {}
        self.typing = TypingTracker()
        settings = runtime.settings
        self.presence = PresenceTracker(
            self.node,
            grace=settings.realtime_presence_grace_seconds,
            interval=settings.realtime_presence_interval_seconds,
            announce=self._announce_presence,
            publish=self._publish,
        )
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._dropped = 0
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        self.runtime.broker.subscribe_ephemeral(self._on_message)
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="frontdesk-realtime-publisher"),
            asyncio.create_task(self._tick_loop(), name="frontdesk-realtime-ticker"),
        ]
        # Other processes reply with their presence, so this one starts with a full picture.
        self._publish({"kind": "presence_request"})

    async def stop(self) -> None:
        """Publish what is queued (at most 1 s), then stop the background tasks."""
        self.runtime.broker.unsubscribe_ephemeral(self._on_message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), 1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # Connection lifecycle

    def connection_opened(self, connection: Connection) -> None:
        """Send a staff connection the presence snapshot and count it as online."""
        if connection.is_visitor or connection.user_id is None:
            return
        self.presence.set_local(
            connection.id, connection.workspace_id, connection.user_id, "online", self.now()
        )
        connection.offer_ephemeral(
            encode(
                {
                    "type": "presence_snapshot",
                    "users": self.presence.snapshot(connection.workspace_id),
                }
            )
        )
        connection.receives_presence = True

    def connection_closed(self, connection: Connection) -> None:
        """Send a typing stop on the connection's behalf and drop its subscriptions."""
        for conversation_id in list(connection.subscriptions):
            self._leave(connection, conversation_id)
        if connection.receives_presence and connection.user_id is not None:
            self.presence.set_local(
                connection.id, connection.workspace_id, connection.user_id, None, self.now()
            )

    # Frames

    async def handle_frame(self, connection: Connection, frame: ChatFrame) -> None:
        if isinstance(frame, SubscribeFrame):
            await self._subscribe(connection, frame.conversation_id)
        elif isinstance(frame, UnsubscribeFrame):
            self._leave(connection, frame.conversation_id)
            await connection.send_text(
                encode({"type": "unsubscribed", "conversation_id": str(frame.conversation_id)})
            )
        elif isinstance(frame, SendFrame):
            await self._send(connection, frame)
        elif isinstance(frame, ReadFrame):
            error = await chat.mark_read(self.runtime, connection, frame)
            if error is not None:
                await connection.send_text(error)
        elif isinstance(frame, TypingFrame):
            await self._typing(connection, frame)
        elif isinstance(frame, PresenceFrame):
            await self._set_presence(connection, frame)

    async def _subscribe(self, connection: Connection, conversation_id: uuid.UUID) -> None:
        if (
            conversation_id not in connection.subscriptions
            and len(connection.subscriptions) >= MAX_SUBSCRIPTIONS
        ):
            await connection.send_text(
                error_frame(
                    "too_many_subscriptions",
                    f"A connection follows at most {MAX_SUBSCRIPTIONS} conversations; "
                    "unsubscribe from one first.",
                    conversation_id=str(conversation_id),
                )
            )
            return
        try:
            async with self.runtime.read_sessionmaker() as session:
                conversation = await chat.get_conversation_for(session, connection, conversation_id)
                state = await chat.subscription_state(session, connection, conversation)
        except NotFound as exc:
            await connection.send_text(
                error_frame(exc.code, exc.detail, conversation_id=str(conversation_id))
            )
            return
        connection.subscriptions.add(conversation_id)
        self._subscribers.setdefault(conversation_id, set()).add(connection)
        state["typing"] = [
            participant_for(participant, visitor_viewer=connection.is_visitor)
            for participant in self.typing.typing_now(
                conversation_id,
                self.now(),
                exclude=connection.id,
                include_notes=not connection.is_visitor,
            )
        ]
        await connection.send_text(encode(state))

    def _leave(self, connection: Connection, conversation_id: uuid.UUID) -> None:
        if self._is_typing(connection, conversation_id):
            note = connection.typing_active[conversation_id]
            self._typing_changed(connection, conversation_id, "stop", note=note)
        connection.typing_active.pop(conversation_id, None)
        connection.typing_since.pop(conversation_id, None)
        connection.subscriptions.discard(conversation_id)
        subscribers = self._subscribers.get(conversation_id)
        if subscribers is not None:
            subscribers.discard(connection)
            if not subscribers:
                del self._subscribers[conversation_id]

    async def _send(self, connection: Connection, frame: SendFrame) -> None:
        retry_after = connection.send_limiter.take(self.now())
        if retry_after > 0:
            await connection.send_text(
                error_frame(
                    "rate_limited",
                    "Too many messages; wait retry_after seconds and send again.",
                    client_message_id=frame.client_message_id,
                    conversation_id=str(frame.conversation_id),
                    retry_after=math.ceil(retry_after * 10) / 10,
                )
            )
            return
        reply = await chat.send_message(self.runtime, connection, frame)
        # A sent message ends the typing that led to it.
        if self._is_typing(connection, frame.conversation_id):
            note = connection.typing_active.pop(frame.conversation_id)
            self._typing_changed(connection, frame.conversation_id, "stop", note=note)
        await connection.send_text(reply)

    async def _set_presence(self, connection: Connection, frame: PresenceFrame) -> None:
        if connection.is_visitor or connection.user_id is None:
            await connection.send_text(
                error_frame("forbidden", "Only staff connections report presence.")
            )
            return
        connection.presence_status = frame.status
        if connection.receives_presence:
            self.presence.set_local(
                connection.id, connection.workspace_id, connection.user_id, frame.status, self.now()
            )

    # Typing

    async def _typing(self, connection: Connection, frame: TypingFrame) -> None:
        conversation_id = frame.conversation_id
        if conversation_id not in connection.subscriptions:
            await connection.send_text(
                error_frame(
                    "not_subscribed",
                    "Subscribe to the conversation before sending typing frames.",
                    conversation_id=str(conversation_id),
                )
            )
            return
        if frame.note and connection.is_visitor:
            await connection.send_text(
                error_frame(
                    "invalid_kind",
                    "Only members write internal notes.",
                    field="kind",
                    conversation_id=str(conversation_id),
                )
            )
            return
        now = self.now()
        typing = self._is_typing(connection, conversation_id)
        if frame.state == "start":
            was_note = connection.typing_active.get(conversation_id) if typing else None
            last = connection.typing_since.get(conversation_id)
            if was_note is not None and was_note != frame.note:
                # Switching between a message and a note: the earlier audience gets a stop, and
                # the new start goes out at once.
                self._typing_changed(connection, conversation_id, "stop", note=was_note)
            elif last is not None and now - last < TYPING_THROTTLE_SECONDS:
                return
            connection.typing_since[conversation_id] = now
            connection.typing_active[conversation_id] = frame.note
            self._typing_changed(connection, conversation_id, "start", note=frame.note)
        elif typing:
            note = connection.typing_active.pop(conversation_id)
            self._typing_changed(connection, conversation_id, "stop", note=note)

    def _is_typing(self, connection: Connection, conversation_id: uuid.UUID) -> bool:
        """Tell whether the connection's last start in the conversation is still shown."""
        if conversation_id not in connection.typing_active:
            return False
        started = connection.typing_since.get(conversation_id)
        return started is not None and self.now() - started < TYPING_EXPIRES_SECONDS

    def _typing_changed(
        self, connection: Connection, conversation_id: uuid.UUID, state: str, *, note: bool
    ) -> None:
        participant = typing_participant(connection)
        self._apply_typing(
            conversation_id, connection.id, participant, state, note=note, exclude=connection
        )
        self._publish(
            {
                "kind": "typing",
                "conversation_id": str(conversation_id),
                "connection_id": connection.id,
                "participant": participant,
                "state": state,
                "note": note,
            }
        )

    def _apply_typing(
        self,
        conversation_id: uuid.UUID,
        connection_id: str,
        participant: dict[str, Any],
        state: str,
        *,
        note: bool,
        exclude: Connection | None = None,
    ) -> None:
        """Record a typing change and send it to this process's subscribers.

        Typing a note goes to staff subscribers only.
        """
        if state == "start":
            expires_at = self.now() + TYPING_EXPIRES_SECONDS
            self.typing.start(conversation_id, connection_id, participant, expires_at, note=note)
        else:
            self.typing.stop(conversation_id, connection_id)
        for subscriber in list(self._subscribers.get(conversation_id, ())):
            if subscriber is exclude or (note and subscriber.is_visitor):
                continue
            subscriber.offer_ephemeral(
                typing_frame(
                    conversation_id,
                    state,
                    participant,
                    expires_in=TYPING_EXPIRES_SECONDS,
                    visitor_viewer=subscriber.is_visitor,
                    note=note,
                )
            )

    # Presence

    def _announce_presence(self, workspace_id: uuid.UUID, user_id: uuid.UUID, status: str) -> None:
        text = encode({"type": "presence", "user_id": str(user_id), "status": status})
        for connection in list(self._workspace_connections(workspace_id)):
            if connection.receives_presence and not connection.is_visitor:
                connection.offer_ephemeral(text)

    # Between processes

    def _publish(self, message: dict[str, Any]) -> None:
        try:
            self._outbox.put_nowait({**message, "node": self.node})
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("realtime.ephemeral_dropped", dropped=self._dropped)

    async def _publish_loop(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self.runtime.broker.publish_ephemeral(message)
            except Exception as exc:
                # Typing and presence are best effort; presence repairs itself by republishing.
                log.warning("realtime.ephemeral_publish_failed", error=repr(exc))
            finally:
                self._outbox.task_done()

    async def _tick_loop(self) -> None:
        settings = self.runtime.settings
        tick = min(
            1.0,
            settings.realtime_presence_grace_seconds / 5,
            settings.realtime_presence_interval_seconds / 5,
        )
        while True:
            await asyncio.sleep(max(tick, 0.02))
            now = self.now()
            try:
                self.presence.tick(now)
                self.typing.prune(now)
            except Exception as exc:
                log.error("realtime.tick_failed", error=repr(exc), exc_info=exc)

    def _on_message(self, message: dict[str, Any]) -> None:
        """Apply an ephemeral message from another process."""
        if message.get("node") == self.node:
            return
        kind = message.get("kind")
        if kind == "presence":
            self.presence.receive(message, self.now())
        elif kind == "presence_request":
            self.presence.republish(self.now())
        elif kind == "typing":
            self._on_remote_typing(message)

    def _on_remote_typing(self, message: dict[str, Any]) -> None:
        participant = message.get("participant")
        connection_id = message.get("connection_id")
        state = message.get("state")
        try:
            conversation_id = uuid.UUID(str(message.get("conversation_id")))
        except ValueError:
            return
        if not isinstance(participant, dict) or not isinstance(connection_id, str):
            return
        if state not in ("start", "stop"):
            return
        note = message.get("note") is True
        self._apply_typing(conversation_id, connection_id, participant, state, note=note)


def typing_participant(connection: Connection) -> dict[str, Any]:
    if connection.is_visitor:
        return {"type": "visitor", "id": str(connection.visitor_id), "name": connection.name}
    return {"type": "member", "id": str(connection.user_id), "name": connection.name}
