"""Background work of the storage domain."""

from __future__ import annotations

from typing import Any

from frontdesk.core.jobs import job_handler, periodic
from frontdesk.core.uow import UnitOfWork
from frontdesk.storage.service import DELETE_BLOB_JOB


@job_handler(DELETE_BLOB_JOB)
async def delete_blob(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Delete the blob of an object whose row was deleted; a missing blob is fine."""
    await uow.rt.storage.delete(payload["path"])


TEMP_FILE_MAX_AGE_SECONDS = 24 * 3600


@periodic("storage.temp_files.sweep", every_seconds=3600)
async def sweep_temp_files(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Delete the local backend's temporary files that a crash left behind a day ago or more.

    A write in progress touches its file as bytes arrive, so only a stalled or abandoned
    write is that old. The S3 backend has no temporary files; its unfinished multipart
    uploads need a bucket lifecycle rule (docs/storage-s3.md).
    """
    sweep = getattr(uow.rt.storage, "sweep_temp_files", None)
    if sweep is not None:
        await sweep(older_than_seconds=TEMP_FILE_MAX_AGE_SECONDS)
