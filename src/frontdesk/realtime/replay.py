"""Event visibility rules and the replay of missed events for resuming clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.events import events_after, find_event_at, latest_position, replay_cutoff
from frontdesk.core.models import Event
from frontdesk.realtime.protocol import REPLAY_LIMIT

# A position has at most 19 digits (BIGINT).
_MAX_POSITION_DIGITS = 19


@dataclass(frozen=True)
class Viewer:
    """The identity of a connection, as far as event visibility goes.

    Staff have ``user_id``. A visitor has ``visitor_id`` and ``conversation_ids``, the
    visitor's conversations, which the gateway grows as conversations are created.
    """

    workspace_id: uuid.UUID
    user_id: uuid.UUID | None = None
    visitor_id: uuid.UUID | None = None
    conversation_ids: set[uuid.UUID] | None = None


def is_visible(event: Event, viewer: Viewer) -> bool:
    """Tell whether the viewer may receive the event.

    Staff receive their workspace's "staff" events, narrowed to one user by ``user_id``. A
    visitor receives only "visitor" events of the visitor's own conversations.
    """
    if event.name.startswith("internal."):
        return False
    if event.workspace_id != viewer.workspace_id:
        return False
    if viewer.visitor_id is not None:
        return (
            event.audience == "visitor"
            and event.conversation_id is not None
            and event.conversation_id in (viewer.conversation_ids or ())
        )
    if event.audience != "staff":
        return False
    return event.user_id is None or event.user_id == viewer.user_id


def track_visitor_conversation(event: Event, viewer: Viewer) -> None:
    """Add a conversation created for the viewing visitor to ``viewer.conversation_ids``.

    conversation.created is a staff event, so the visitor never receives it, but its data
    names the visitor, and the visitor's events for that conversation follow it.
    """
    if viewer.visitor_id is None or viewer.conversation_ids is None:
        return
    if event.name != "conversation.created" or event.conversation_id is None:
        return
    if event.workspace_id != viewer.workspace_id:
        return
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("visitor_id") == str(viewer.visitor_id):
        viewer.conversation_ids.add(event.conversation_id)


def parse_position(value: str) -> int | None:
    """Read an event id as a position; None when it is not a plain non-negative integer."""
    if not value or len(value) > _MAX_POSITION_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


@dataclass(frozen=True)
class ReplayPlan:
    """The frames that a new connection receives before live events."""

    # Events to replay, in position order, already filtered for the connection.
    events: list[Event]
    resync: bool
    # The position that the client is caught up to once the plan is sent; live events at or
    # below it are skipped.
    caught_up_to: int


async def plan_replay(
    session: AsyncSession,
    *,
    last_event_id: str | None,
    viewer: Viewer,
    now: datetime,
    window_seconds: int,
) -> ReplayPlan:
    """Read the events after ``last_event_id``, or decide that the client must resync.

    The client must resync when the id is malformed or ahead of the newest position. It must
    also resync when the event that the id names (position 1 for id 0) is gone or older than
    the replay window, or when it missed more than REPLAY_LIMIT events.
    """
    latest = await latest_position(session)
    if last_event_id is None:
        return ReplayPlan(events=[], resync=False, caught_up_to=latest)
    after = parse_position(last_event_id)
    if after is None or after > latest:
        return ReplayPlan(events=[], resync=True, caught_up_to=latest)
    if after == latest:
        return ReplayPlan(events=[], resync=False, caught_up_to=latest)

    anchor = await find_event_at(session, max(after, 1))
    if anchor is None or anchor.created_at < replay_cutoff(now, window_seconds):
        return ReplayPlan(events=[], resync=True, caught_up_to=latest)
    missed = await events_after(session, after, REPLAY_LIMIT + 1)
    # Pruning deletes by created_at, which follows record time rather than commit time, so a
    # missed event can be gone while the anchor is still there: the positions then have a gap.
    contiguous = all(
        event.position == after + offset for offset, event in enumerate(missed, start=1)
    )
    if len(missed) > REPLAY_LIMIT or not contiguous:
        return ReplayPlan(events=[], resync=True, caught_up_to=latest)

    # On Postgres each statement reads a fresh snapshot, so the replay may reach past
    # ``latest``.
    caught_up_to = max(latest, missed[-1].position or 0) if missed else latest
    visible = []
    for event in missed:
        track_visitor_conversation(event, viewer)
        if is_visible(event, viewer):
            visible.append(event)
    return ReplayPlan(events=visible, resync=False, caught_up_to=caught_up_to)
