"""The consistency check between object rows and backend blobs (``frontdesk storage check``)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import structlog

from frontdesk.config import Settings
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.models import StoredObject
from frontdesk.storage.schemas import CheckReport
from frontdesk.storage.service import blob_path

log = structlog.get_logger()

TEMP_FILE_MAX_AGE_SECONDS = 3600


class PathsDisagree(Exception):
    """Blobs exist under other paths than their rows give, so --fix would delete good data."""


async def check_consistency(uow: UnitOfWork, *, fix: bool) -> CheckReport:
    """Compare object rows with backend blobs in every workspace.

    Reports blobs without a row (orphans) and rows without a blob (missing). With ``fix`` it
    deletes the orphan blobs, never rows, and sweeps temporary files older than an hour.
    """
    backend = uow.rt.storage
    # Blobs are listed before rows are read: an upload writes its blob first, so a row read
    # here whose blob was not listed is an upload that finished in between, not a loss.
    blobs = {path async for path in backend.list_paths()}
    rows = await uow.session.execute(sa.select(StoredObject.workspace_id, StoredObject.id))
    # Ids are parsed again, so that a driver that returns them as text builds the same paths.
    expected = {
        blob_path(uuid.UUID(str(workspace_id)), uuid.UUID(str(object_id))): uuid.UUID(
            str(object_id)
        )
        for workspace_id, object_id in rows
    }
    orphans = sorted(blobs - expected.keys())
    known_ids = {str(object_id) for object_id in expected.values()}
    misplaced = [path for path in orphans if path.rsplit("/", 1)[-1] in known_ids]
    if fix and misplaced:
        # A blob named after an existing object is never an orphan: the paths disagree.
        log.error("storage.check_paths_disagree", example=misplaced[0], count=len(misplaced))
        raise PathsDisagree(
            f"{len(misplaced)} blobs carry the id of an existing object under another path "
            f"(for example {misplaced[0]}); nothing was deleted. Check the storage settings."
        )
    missing = []
    for path, object_id in expected.items():
        if path not in blobs:
            try:
                await backend.size(path)
            except BlobNotFound:
                missing.append(object_id)
    deleted = 0
    swept = 0
    if fix:
        # NOTE: an upload whose blob is written but whose row has not committed yet looks like
        # an orphan, so --fix deletes it and that upload's object then reports a missing blob.
        for path in orphans:
            await backend.delete(path)
            deleted += 1
        sweep = getattr(backend, "sweep_temp_files", None)
        if sweep is not None:
            swept = await sweep(older_than_seconds=TEMP_FILE_MAX_AGE_SECONDS)
    log.info(
        "storage.checked",
        orphan_blobs=len(orphans),
        missing_blobs=len(missing),
        deleted_blobs=deleted,
    )
    return CheckReport(
        orphan_blobs=orphans,
        missing_blobs=sorted(missing),
        deleted_blobs=deleted,
        swept_temp_files=swept,
    )


async def run_check(settings: Settings, *, fix: bool) -> CheckReport:
    """Build a runtime from the settings and run the check in one transaction."""
    from frontdesk.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        async with unit_of_work(runtime) as uow:
            return await check_consistency(uow, fix=fix)
    finally:
        await runtime.close()


def format_report(report: CheckReport, *, fix: bool) -> str:
    lines = [f"orphan blob (no row): {path}" for path in report.orphan_blobs]
    lines += [f"missing blob (row without bytes): object {oid}" for oid in report.missing_blobs]
    summary = (
        f"{len(report.orphan_blobs)} orphan blobs, {len(report.missing_blobs)} objects "
        "without a blob."
    )
    if fix:
        summary += (
            f" Deleted {report.deleted_blobs} orphan blobs and "
            f"{report.swept_temp_files} stale temporary files; rows are never deleted."
        )
    elif report.orphan_blobs:
        summary += " Run with --fix to delete the orphan blobs."
    lines.append(summary)
    return "\n".join(lines)
