"""Quarantine and the storage.scan job against the fake clamd of tests/clamd_server.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from clamd_server import EICAR, SIGNATURE, FakeClamd
from clamd_server import clamd as clamd
from conftest import run_jobs
from factories import Staff, owner
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Event, Job
from frontdesk.runtime import Runtime
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.service import blob_path
from test_storage_links_api import assert_rejected, make_bucket, upload, upload_link


@pytest.fixture
def settings_overrides(clamd: FakeClamd) -> dict[str, Any]:
    return clamd.settings()


@pytest.fixture
async def staff(client: httpx.AsyncClient) -> Staff:
    return await owner(client)


@pytest.fixture
async def bucket_id(client: httpx.AsyncClient, staff: Staff) -> str:
    return await make_bucket(client, staff)


async def public_upload(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, content: bytes
) -> dict[str, Any]:
    path = await upload_link(client, staff, bucket_id, key=f"{uuid.uuid4().hex}.txt")
    response = await client.put(path, content=content)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def scan_state(client: httpx.AsyncClient, staff: Staff, object_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/storage/objects/{object_id}/scan", headers=staff.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def download(client: httpx.AsyncClient, staff: Staff, object_id: str) -> httpx.Response:
    response = await client.post(
        f"/api/v1/storage/objects/{object_id}/links", headers=staff.headers, json={}
    )
    assert response.status_code == 201, response.text
    return await client.get(response.json()["url"].removeprefix("http://frontdesk.test"))


async def test_clean_file_available(
    client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd, staff: Staff, bucket_id: str
) -> None:
    stored = await public_upload(client, staff, bucket_id, b"an ordinary file")
    assert stored["status"] == "quarantined"
    assert (await scan_state(client, staff, stored["id"]))["status"] == "quarantined"
    assert_rejected(await download(client, staff, stored["id"]), 423, "object_quarantined")

    await run_jobs(runtime)

    state = await scan_state(client, staff, stored["id"])
    assert state["status"] == "available"
    assert state["scanned_at"] is not None
    assert clamd.scanned == [b"an ordinary file"]
    response = await download(client, staff, stored["id"])
    assert response.status_code == 200
    assert response.content == b"an ordinary file"


async def test_eicar_infected(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    stored = await public_upload(client, staff, bucket_id, EICAR)

    await run_jobs(runtime)

    state = await scan_state(client, staff, stored["id"])
    assert state["status"] == "infected"
    assert state["signature"] == SIGNATURE
    assert_rejected(await download(client, staff, stored["id"]), 409, "object_infected")
    with pytest.raises(BlobNotFound):
        await runtime.storage.size(blob_path(staff.workspace_id, uuid.UUID(stored["id"])))
    async with runtime.sessionmaker() as session:
        names = list(await session.scalars(sa.select(Event.name)))
    assert "storage.object.infected" in names


async def test_infected_no_preview(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    path = await upload_link(client, staff, bucket_id, key="virus.png")
    response = await client.put(path, content=b"\x89PNG\r\n\x1a\n" + EICAR)
    assert response.status_code == 201, response.text
    object_id = response.json()["id"]
    quarantined = await client.get(
        f"/api/v1/storage/objects/{object_id}/preview", headers=staff.headers
    )

    await run_jobs(runtime)

    infected = await client.get(
        f"/api/v1/storage/objects/{object_id}/preview", headers=staff.headers
    )
    assert_rejected(quarantined, 423, "object_quarantined")
    assert_rejected(infected, 409, "object_infected")


async def test_unscanned_file_not_copied(
    client: httpx.AsyncClient, runtime: Runtime, staff: Staff, bucket_id: str
) -> None:
    waiting = await public_upload(client, staff, bucket_id, b"waiting for the scan")
    infected = await public_upload(client, staff, bucket_id, EICAR)

    quarantined_copy = await client.post(
        f"/api/v1/storage/objects/{waiting['id']}/copy", headers=staff.headers, json={"key": "a"}
    )
    assert_rejected(quarantined_copy, 423, "object_quarantined")
    await run_jobs(runtime)
    infected_copy = await client.post(
        f"/api/v1/storage/objects/{infected['id']}/copy", headers=staff.headers, json={"key": "b"}
    )
    assert_rejected(infected_copy, 409, "object_infected")
    clean_copy = await client.post(
        f"/api/v1/storage/objects/{waiting['id']}/copy", headers=staff.headers, json={"key": "c"}
    )
    assert clean_copy.status_code == 201, clean_copy.text


@pytest.mark.parametrize("failure", ["down", "error", "drop"])
async def test_clamd_failure_retries(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    clamd: FakeClamd,
    staff: Staff,
    bucket_id: str,
    failure: str,
) -> None:
    stored = await public_upload(client, staff, bucket_id, b"waiting for clamd")
    if failure == "down":
        await clamd.stop()
    else:
        clamd.mode = failure  # type: ignore[assignment]

    await run_jobs(runtime)

    assert (await scan_state(client, staff, stored["id"]))["status"] == "quarantined"
    async with runtime.sessionmaker() as session:
        job = await session.scalar(sa.select(Job).where(Job.name == "storage.scan"))
    assert job is not None
    assert job.status == "pending"
    assert job.attempts == 1
    assert job.last_error is not None

    if failure == "down":
        await clamd.start()
    clamd.mode = "normal"
    clock.advance(seconds=60)
    await run_jobs(runtime)

    assert (await scan_state(client, staff, stored["id"]))["status"] == "available"


async def test_staff_upload_not_quarantined(
    client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "staff.txt", b"from staff")

    state = await scan_state(client, staff, stored["id"])

    await run_jobs(runtime)
    async with runtime.sessionmaker() as session:
        scans = await session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.name == "storage.scan")
        )
    assert state["status"] == "available"
    assert scans == 0
    assert clamd.scanned == []


async def test_deleted_before_scan(
    client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd, staff: Staff, bucket_id: str
) -> None:
    stored = await public_upload(client, staff, bucket_id, b"short-lived")
    deleted = await client.delete(f"/api/v1/storage/objects/{stored['id']}", headers=staff.headers)
    assert deleted.status_code == 204

    await run_jobs(runtime)

    assert clamd.scanned == []
    async with runtime.sessionmaker() as session:
        jobs = list(await session.scalars(sa.select(Job).where(Job.name == "storage.scan")))
    assert [job.status for job in jobs] == ["succeeded"]


async def test_staff_download_waits_for_scan(
    client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd, staff: Staff, bucket_id: str
) -> None:
    stored = await public_upload(client, staff, bucket_id, b"a file from the public")
    content_url = f"/api/v1/storage/objects/{stored['id']}/content"

    assert_rejected(await client.get(content_url, headers=staff.headers), 423, "object_quarantined")

    await run_jobs(runtime)

    response = await client.get(content_url, headers=staff.headers)
    assert response.status_code == 200
    assert response.content == b"a file from the public"
