"""Background work of the accounts domain."""

from __future__ import annotations

from typing import Any

from frontdesk.auth import service
from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork


@job_handler(service.PASSWORD_RESET_JOB)
async def send_password_reset(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    # A retry after a crash may send a second link; each works until it expires or is used.
    await service.send_password_reset(uow, email=str(payload["email"]))
