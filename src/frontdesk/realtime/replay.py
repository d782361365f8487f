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


def is_visible(event: Event, *, user_id: uuid.UUID, workspace_id: uuid.UUID) -> bool:
    """Tell whether a member acting in ``workspace_id`` may receive the event."""
    if event.name.startswith("internal."):
        return False
    if event.workspace_id != workspace_id:
        return False
    return event.user_id is None or event.user_id == user_id


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
    user_id: uuid.UUID,
    workspace_id: uuid.UUID,
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
    visible = [e for e in missed if is_visible(e, user_id=user_id, workspace_id=workspace_id)]
    return ReplayPlan(events=visible, resync=False, caught_up_to=caught_up_to)
