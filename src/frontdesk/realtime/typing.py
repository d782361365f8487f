"""Typing states per conversation, from this process and from the others.

Typing signals are ephemeral: they travel through the broker and are never stored. Each
process keeps the typing states it has seen, local or remote, with their expiry, so that a
new subscriber learns who is typing now. A state is keyed by the typing connection's id, so
the same person typing in two tabs shows up once and stops when both stop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from frontdesk.realtime.protocol import encode


@dataclass(frozen=True)
class TypingState:
    # {"type": "member" | "visitor", "id": user or visitor id, "name": display name or None}
    participant: dict[str, Any]
    # Loop time after which the state is gone unless refreshed.
    expires_at: float
    # Typing an internal note, which visitors do not see.
    note: bool = False


def participant_for(participant: dict[str, Any], *, visitor_viewer: bool) -> dict[str, Any]:
    """Shape a typing participant for the receiver: visitors never see staff ids."""
    if visitor_viewer and participant.get("type") == "member":
        return {"type": "staff", "name": participant.get("name")}
    return dict(participant)


def typing_frame(
    conversation_id: uuid.UUID,
    state: str,
    participant: dict[str, Any],
    *,
    expires_in: float,
    visitor_viewer: bool,
    note: bool = False,
) -> str:
    frame: dict[str, Any] = {
        "type": "typing",
        "conversation_id": str(conversation_id),
        "state": state,
        "participant": participant_for(participant, visitor_viewer=visitor_viewer),
    }
    if note:
        frame["kind"] = "note"
    if state == "start":
        frame["expires_in"] = expires_in
    return encode(frame)


class TypingTracker:
    """Typing states per conversation, keyed by connection id."""

    def __init__(self) -> None:
        self._states: dict[uuid.UUID, dict[str, TypingState]] = {}

    def start(
        self,
        conversation_id: uuid.UUID,
        connection_id: str,
        participant: dict[str, Any],
        expires_at: float,
        *,
        note: bool = False,
    ) -> None:
        self._states.setdefault(conversation_id, {})[connection_id] = TypingState(
            participant, expires_at, note
        )

    def stop(self, conversation_id: uuid.UUID, connection_id: str) -> None:
        states = self._states.get(conversation_id)
        if states is None:
            return
        states.pop(connection_id, None)
        if not states:
            del self._states[conversation_id]

    def typing_now(
        self,
        conversation_id: uuid.UUID,
        now: float,
        *,
        exclude: str | None = None,
        include_notes: bool = True,
    ) -> list[dict[str, Any]]:
        """Return the participants typing in the conversation, each once; one typing a note
        has ``"kind": "note"``, as the live frames carry it."""
        seen: dict[tuple[object, object], dict[str, Any]] = {}
        for connection_id, state in self._states.get(conversation_id, {}).items():
            if state.expires_at <= now or connection_id == exclude:
                continue
            if state.note and not include_notes:
                continue
            key = (state.participant.get("type"), state.participant.get("id"))
            entry = {**state.participant, "kind": "note"} if state.note else state.participant
            seen.setdefault(key, entry)
        return list(seen.values())

    def prune(self, now: float) -> None:
        """Forget expired states, so that memory follows the number of active typists."""
        for conversation_id in list(self._states):
            states = self._states[conversation_id]
            for connection_id in [k for k, s in states.items() if s.expires_at <= now]:
                del states[connection_id]
            if not states:
                del self._states[conversation_id]
