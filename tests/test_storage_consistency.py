"""The storage consistency check: orphan blobs, rows without blobs, --fix and the command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from factories import count_rows, owner
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime
from frontdesk.storage.consistency import PathsDisagree, check_consistency
from frontdesk.storage.jobs import sweep_temp_files
from frontdesk.storage.models import StoredObject
from test_storage_api import create_bucket, stored_files, upload_ok


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_check_reports_and_fixes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    kept = await upload_ok(client, staff, bucket["id"], "kept.txt", b"kept")
    lost = await upload_ok(client, staff, bucket["id"], "lost.txt", b"lost")
    await runtime.storage.delete(f"{staff.workspace_id}/{lost['id']}")
    orphan = f"{staff.workspace_id}/{uuid.uuid4()}"
    await runtime.storage.write(orphan, one_chunk(b"orphan"), max_bytes=100, content_type="x/y")
    temp_dir = runtime.settings.resolved_storage_dir / ".tmp"
    temp_dir.mkdir(exist_ok=True)
    stale, fresh = temp_dir / "stale", temp_dir / "fresh"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(stale, (1_000_000, 1_000_000))

    async with unit_of_work(runtime) as uow:
        report = await check_consistency(uow, fix=False)
    assert report.orphan_blobs == [orphan]
    assert report.missing_blobs == [uuid.UUID(lost["id"])]
    assert report.deleted_blobs == 0
    assert stale.exists()

    async with unit_of_work(runtime) as uow:
        report = await check_consistency(uow, fix=True)
    assert report.deleted_blobs == 1
    assert report.swept_temp_files == 1
    assert stored_files(runtime) == [".tmp/fresh", f"{staff.workspace_id}/{kept['id']}"]
    # Rows are never deleted, even without their blob.
    assert await count_rows(runtime, StoredObject) == 2


def test_command_check_and_fix(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")}
    env["FRONTDESK_DATA_DIR"] = str(data_dir)
    command = [sys.executable, "-m", "frontdesk"]
    migrated = subprocess.run([*command, "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    orphan = data_dir / "files" / str(uuid.uuid4()) / str(uuid.uuid4())
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"no row")

    checked = subprocess.run(
        [*command, "storage", "check"], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 1, checked.stderr
    assert f"orphan blob (no row): {orphan.parent.name}/{orphan.name}" in checked.stdout
    assert orphan.exists()

    fixed = subprocess.run(
        [*command, "storage", "check", "--fix"], env=env, capture_output=True, text=True
    )
    assert fixed.returncode == 0, fixed.stderr
    assert "Deleted 1 orphan blobs" in fixed.stdout
    assert not orphan.exists()


async def test_periodic_sweep_removes_stale_temp_files(runtime: Runtime) -> None:
    temp_dir = runtime.settings.resolved_storage_dir / ".tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    stale, fresh = temp_dir / "stale", temp_dir / "fresh"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    day_and_a_minute_ago = time.time() - 24 * 3600 - 60
    os.utime(stale, (day_and_a_minute_ago, day_and_a_minute_ago))

    async with unit_of_work(runtime) as uow:
        await sweep_temp_files(uow, {})

    assert not stale.exists()
    assert fresh.exists()


async def test_fix_refuses_when_paths_disagree(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    kept = await upload_ok(client, staff, bucket["id"], "kept.txt", b"kept")
    # The blob sits under another folder than its row gives, as after a bad migration.
    moved = f"{uuid.uuid4()}/{kept['id']}"
    await runtime.storage.write(moved, one_chunk(b"kept"), max_bytes=100, content_type="x/y")
    await runtime.storage.delete(f"{staff.workspace_id}/{kept['id']}")

    async with unit_of_work(runtime) as uow:
        with pytest.raises(PathsDisagree):
            await check_consistency(uow, fix=True)
    assert await runtime.storage.size(moved) == 4
