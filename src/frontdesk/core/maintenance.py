"""Periodic housekeeping jobs of the shared kernel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from frontdesk.core.events import prune_events
from frontdesk.core.jobs import periodic
from frontdesk.core.models import Job, RateLimitCounter
from frontdesk.core.uow import UnitOfWork


@periodic("events.sequence", every_seconds=30)
async def sequence_events(uow: UnitOfWork, _payload: dict[str, Any]) -> None:
    """Publish events whose process died between commit and publish."""
    await uow.rt.publish_pending_events()


@periodic("maintenance.prune", every_seconds=3600)
async def prune(uow: UnitOfWork, _payload: dict[str, Any]) -> None:
    """Delete events past the replay window, finished jobs after a week, old counters."""
    now = uow.now()
    window = uow.settings.event_replay_window_seconds
    await prune_events(uow.session, older_than=now - timedelta(seconds=window + 3600))
    await uow.session.execute(
        sa.delete(Job).where(Job.status == "succeeded", Job.finished_at < now - timedelta(days=7))
    )
    await uow.session.execute(
        sa.delete(RateLimitCounter).where(RateLimitCounter.expires_at < int(now.timestamp()))
    )
