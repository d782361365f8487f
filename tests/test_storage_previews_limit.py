"""FRONTDESK_PREVIEW_MAX_PIXELS decides which images get a preview."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from factories import owner
from test_storage_links_api import assert_rejected, make_bucket, upload
from test_storage_previews_render import image_bytes


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"preview_max_pixels": 5_000}


async def test_lowered_limit_applies(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket_id = await make_bucket(client, staff)
    small = await upload(client, staff, bucket_id, "small.png", image_bytes((50, 100), "PNG"))
    large = await upload(client, staff, bucket_id, "large.png", image_bytes((50, 101), "PNG"))

    fits = await client.get(f"/api/v1/storage/objects/{small['id']}/preview", headers=staff.headers)
    too_large = await client.get(
        f"/api/v1/storage/objects/{large['id']}/preview", headers=staff.headers
    )

    assert fits.status_code == 200, fits.text
    assert_rejected(too_large, 422, "validation_failed")
    assert "50x101" in too_large.json()["detail"]
