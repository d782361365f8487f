"""The realtime wire protocol: frame shapes, close codes and limits.

docs/realtime-protocol.md describes the same protocol for client developers; change both
together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


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


# Largest text frame accepted from a client, in bytes of UTF-8. Clients only send auth and
# ping frames, and an access token is well under 2 KiB.
MAX_FRAME_BYTES = 16 * 1024
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


@dataclass(frozen=True)
class AuthFrame:
    token: str
    last_event_id: str | None


@dataclass(frozen=True)
class PingFrame:
    pass


ClientFrame = AuthFrame | PingFrame


def parse_client_frame(text: str) -> ClientFrame | FrameError:
    """Parse one text frame from a client."""
    try:
        frame = json.loads(text)
    except ValueError:
        return FrameError("invalid_json", "The frame is not valid JSON.")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return FrameError("invalid_frame", 'A frame must be a JSON object with a string "type".')
    kind = frame["type"]
    if kind == "ping":
        return PingFrame()
    if kind == "auth":
        return _parse_auth(frame)
    return FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}; expected auth or ping.")


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
        return FrameError("invalid_frame", "last_event_id must be a string or null.")
    return AuthFrame(token=token, last_event_id=last_event_id)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def ready_frame(*, user_id: str, workspace_id: str, role: str, last_event_id: int) -> str:
    return encode(
        {
            "type": "ready",
            "user_id": user_id,
            "workspace_id": workspace_id,
            "role": role,
            "last_event_id": str(last_event_id),
        }
    )


def resync_frame(*, last_event_id: int) -> str:
    return encode({"type": "resync", "last_event_id": str(last_event_id)})


def error_frame(code: str, message: str) -> str:
    return encode({"type": "error", "code": code, "message": message})


PONG_FRAME = encode({"type": "pong"})
