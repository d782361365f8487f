"""The realtime wire protocol: frame shapes, close codes and limits.

docs/realtime-protocol.md describes the same protocol for client developers; change both
together.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from frontdesk.conversations.formatting import MAX_ATTACHMENTS_PER_MESSAGE
from frontdesk.core.text import SURROGATE_MESSAGE, unpaired_surrogate_path


class CloseCode(IntEnum):
    """WebSocket close codes that the server sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011
    # Sent by uvicorn itself to open WebSockets when the server shuts down.
    SERVICE_RESTART = 1012
    AUTH_TIMEOUT = 4001
    # Invalid or expired access token, or the login session ended (logout, revocation, expiry).
    SESSION_ENDED = 4003
    # The token names no workspace, or the user is not (or no longer) a member of it.
    NOT_A_MEMBER = 4004
    # Too many invalid frames, or frames sent faster than the rate limit.
    POLICY_VIOLATION = 4008
    MESSAGE_TOO_BIG = 4009
    # The client read too slowly: its send queue filled up or one send timed out.
    SLOW_CONSUMER = 4010


def departure_reason(code: int) -> str:
    """Describe why a connection ended from the code seen on the disconnect."""
    if code == CloseCode.SERVICE_RESTART:
        return "server restarting"
    return "client closed"


# Largest text frame accepted from a client, in bytes of UTF-8. The largest frame is a send
# frame with a 10,000-character body. Written the way JSON.stringify writes it, one character
# takes at most 6 bytes: the escape "\u0001" of a control character is the longest, and any
# other character takes at most 4 bytes of UTF-8. So the body fits in 60,000 bytes and the
# other fields in the rest. A client that escapes characters outside the BMP as surrogate pairs
# (12 bytes) may go over.
MAX_FRAME_BYTES = 64 * 1024
# Invalid frames (malformed JSON, unknown type, binary) tolerated per connection; the next
# one closes the connection with POLICY_VIOLATION.
MAX_INVALID_FRAMES = 10
# Frames accepted per client in one RATE_WINDOW_SECONDS window; more close the connection.
MAX_FRAMES_PER_WINDOW = 120
RATE_WINDOW_SECONDS = 60.0
MAX_TOKEN_CHARS = 8192
# Most events sent in one replay; a client further behind gets a resync frame instead.
REPLAY_LIMIT = 1000
# A single send that waits this long for the client to read closes it as a slow consumer.
SEND_TIMEOUT_SECONDS = 30.0
# How long the server waits for its close frame to be written before giving up.
CLOSE_TIMEOUT_SECONDS = 5.0
# Send frames: a burst of SEND_BURST, then one more every SEND_REFILL_SECONDS. A send over
# the limit gets a rate_limited error; more than MAX_REJECTED_SENDS of those in one
# RATE_WINDOW_SECONDS window close the connection with POLICY_VIOLATION.
SEND_BURST = 10
SEND_REFILL_SECONDS = 1.0
MAX_REJECTED_SENDS = 20
# Conversations one connection may be subscribed to at once.
MAX_SUBSCRIPTIONS = 100
# A typing start is shown for this long unless the typist refreshes it.
TYPING_EXPIRES_SECONDS = 6.0
# At most one typing start per connection and conversation is forwarded in this interval.
TYPING_THROTTLE_SECONDS = 2.0


class Rejected(Exception):
    """Raised to end a connection with a close code."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ClientGone(Exception):
    """Raised when the client closed the connection or it dropped."""

    def __init__(self, code: int) -> None:
        super().__init__(f"client closed the connection with code {code}")
        self.code = code


@dataclass(frozen=True)
class FrameError:
    """A client frame that could not be used; the client gets an error frame."""

    code: str
    message: str
    field: str | None = None
    client_message_id: str | None = None
    conversation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AuthFrame:
    token: str
    last_event_id: str | None


@dataclass(frozen=True)
class PingFrame:
    pass


@dataclass(frozen=True)
class SubscribeFrame:
    conversation_id: uuid.UUID


@dataclass(frozen=True)
class UnsubscribeFrame:
    conversation_id: uuid.UUID


@dataclass(frozen=True)
class SendFrame:
    conversation_id: uuid.UUID
    client_message_id: str
    body: str
    kind: Literal["message", "note"]
    attachments: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class TypingFrame:
    conversation_id: uuid.UUID
    state: Literal["start", "stop"]
    # Typing an internal note: only staff see it.
    note: bool = False


@dataclass(frozen=True)
class ReadFrame:
    conversation_id: uuid.UUID
    seq: int


@dataclass(frozen=True)
class PresenceFrame:
    status: Literal["online", "away"]


ChatFrame = SubscribeFrame | UnsubscribeFrame | SendFrame | TypingFrame | ReadFrame | PresenceFrame
ClientFrame = AuthFrame | PingFrame | ChatFrame

FRAME_TYPES = ("auth", "ping", "subscribe", "unsubscribe", "send", "typing", "read", "presence")


def parse_client_frame(text: str) -> ClientFrame | FrameError:
    """Parse one text frame from a client."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: arrays or objects nested too deep for the parser.
        return FrameError("invalid_json", "The frame is not valid JSON.")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return FrameError("invalid_frame", 'A frame must be a JSON object with a string "type".')
    field = unpaired_surrogate_path(frame)
    if field is not None:
        # The error frame repeats a send's client_message_id, unless that is the bad text.
        client_message_id = (
            _client_message_id(frame)
            if frame["type"] == "send" and field != "client_message_id"
            else None
        )
        return FrameError("invalid_frame", SURROGATE_MESSAGE, field or None, client_message_id)
    kind = frame["type"]
    if kind == "ping":
        return PingFrame()
    if kind == "auth":
        return _parse_auth(frame)
    if kind == "presence":
        status = frame.get("status")
        if status not in ("online", "away"):
            return FrameError("invalid_frame", 'status must be "online" or "away".', "status")
        return PresenceFrame(status=status)
    if kind not in FRAME_TYPES:
        return FrameError(
            "unknown_type",
            f"Unknown frame type {kind[:40]!r}; expected one of {', '.join(FRAME_TYPES)}.",
        )
    conversation_id = _parse_uuid(frame.get("conversation_id"))
    if conversation_id is None:
        return FrameError(
            "invalid_frame",
            "conversation_id must be a conversation id (a UUID string).",
            "conversation_id",
            _client_message_id(frame) if kind == "send" else None,
        )
    if kind == "subscribe":
        return SubscribeFrame(conversation_id)
    if kind == "unsubscribe":
        return UnsubscribeFrame(conversation_id)
    if kind == "typing":
        state = frame.get("state")
        if state not in ("start", "stop"):
            return FrameError(
                "invalid_frame",
                'state must be "start" or "stop".',
                "state",
                conversation_id=conversation_id,
            )
        typing_kind = frame.get("kind", "message")
        if typing_kind not in ("message", "note"):
            return FrameError(
                "invalid_frame",
                'kind must be "message" or "note".',
                "kind",
                conversation_id=conversation_id,
            )
        return TypingFrame(conversation_id, state, note=typing_kind == "note")
    if kind == "read":
        seq = frame.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            return FrameError(
                "invalid_frame",
                "seq must be a message seq (an integer, 0 or more).",
                "seq",
                conversation_id=conversation_id,
            )
        return ReadFrame(conversation_id, seq)
    return _parse_send(frame, conversation_id)


def _parse_uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str) or len(value) > 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _client_message_id(frame: dict[str, Any]) -> str | None:
    value = frame.get("client_message_id")
    return value if isinstance(value, str) else None


def _parse_send(frame: dict[str, Any], conversation_id: uuid.UUID) -> SendFrame | FrameError:
    client_message_id = _client_message_id(frame)

    def invalid(field: str, message: str, code: str = "invalid_frame") -> FrameError:
        return FrameError(code, message, field, client_message_id, conversation_id)

    if client_message_id is None:
        id_present = "client_message_id" in frame
        return invalid(
            "client_message_id",
            (
                "client_message_id must be a string"
                if id_present
                else "client_message_id is required"
            )
            + ": a string of your choice (a UUID) that the sent frame repeats, so a resent "
            "frame is stored once.",
        )
    body = frame.get("body", "")
    if not isinstance(body, str):
        return invalid("body", "body must be a string.")
    kind = frame.get("kind", "message")
    if kind not in ("message", "note"):
        return invalid("kind", 'kind must be "message" or "note".')
    raw_attachments = frame.get("attachments", [])
    if not isinstance(raw_attachments, list):
        return invalid("attachments", "attachments must be a list of object ids.")
    if len(raw_attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
        return invalid(
            "attachments",
            f"A message has at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments.",
            "too_many",
        )
    attachments = []
    for index, value in enumerate(raw_attachments):
        object_id = _parse_uuid(value)
        if object_id is None:
            return invalid(f"attachments.{index}", "An attachment is an uploaded object's id.")
        attachments.append(object_id)
    return SendFrame(conversation_id, client_message_id, body, kind, tuple(attachments))


def _parse_auth(frame: dict[str, Any]) -> AuthFrame | FrameError:
    token = frame.get("token")
    # A missing or oversized token is an invalid token: authentication fails with 4003.
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        token = ""
    raw_id = frame.get("last_event_id")
    last_event_id: str | None
    if raw_id is None:
        last_event_id = None
    elif isinstance(raw_id, str):
        last_event_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        last_event_id = str(raw_id)
    else:
        return FrameError(
            "invalid_frame", "last_event_id must be a string or null.", "last_event_id"
        )
    return AuthFrame(token=token, last_event_id=last_event_id)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def ready_frame(
    *,
    user_id: str | None,
    workspace_id: str,
    role: str,
    last_event_id: int,
    visitor_id: str | None = None,
) -> str:
    frame: dict[str, Any] = {"type": "ready"}
    if user_id is not None:
        frame["user_id"] = user_id
    if visitor_id is not None:
        frame["visitor_id"] = visitor_id
    frame.update({"workspace_id": workspace_id, "role": role, "last_event_id": str(last_event_id)})
    return encode(frame)


def resync_frame(*, last_event_id: int) -> str:
    return encode({"type": "resync", "last_event_id": str(last_event_id)})


def error_frame(
    code: str,
    message: str,
    *,
    field: str | None = None,
    client_message_id: str | None = None,
    **extra: Any,
) -> str:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if field is not None:
        frame["field"] = field
    if client_message_id is not None:
        frame["client_message_id"] = client_message_id
    frame.update(extra)
    return encode(frame)


def frame_error_text(error: FrameError) -> str:
    extra = {} if error.conversation_id is None else {"conversation_id": str(error.conversation_id)}
    return error_frame(
        error.code,
        error.message,
        field=error.field,
        client_message_id=error.client_message_id,
        **extra,
    )


PONG_FRAME = encode({"type": "pong"})
