"""Background work of the storage domain."""

from __future__ import annotations

from typing import Any

from frontdesk.core.jobs import job_handler
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage.service import DELETE_BLOB_JOB


@job_handler(DELETE_BLOB_JOB)
async def delete_blob(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Delete the blob of an object whose row was deleted; a missing blob is fine."""
    await uow.rt.storage.delete(payload["path"])
