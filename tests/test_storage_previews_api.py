"""GET /api/v1/storage/objects/{id}/preview: thumbnails, caching and rejected files."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from factories import Staff, owner
from test_storage_links_api import assert_rejected, make_bucket, upload
from test_storage_previews_render import bomb_png, image_bytes


@pytest.fixture
async def staff(client: httpx.AsyncClient) -> Staff:
    return await owner(client)


@pytest.fixture
async def bucket_id(client: httpx.AsyncClient, staff: Staff) -> str:
    return await make_bucket(client, staff)


async def preview(
    client: httpx.AsyncClient, staff: Staff, object_id: str, **query: Any
) -> httpx.Response:
    return await client.get(
        f"/api/v1/storage/objects/{object_id}/preview", headers=staff.headers, params=query
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
async def test_default_preview_webp(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, fmt: str
) -> None:
    stored = await upload(client, staff, bucket_id, "photo", image_bytes((1000, 500), fmt))

    response = await preview(client, staff, stored["id"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    assert image.size == (320, 160)


async def test_box_and_format(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    stored = await upload(client, staff, bucket_id, "tall.png", image_bytes((200, 800), "PNG"))

    response = await preview(client, staff, stored["id"], width=100, height=100, format="jpeg")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (25, 100)


async def test_etag_revalidates(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    stored = await upload(client, staff, bucket_id, "a.png", image_bytes((50, 50), "PNG"))
    first = await preview(client, staff, stored["id"])

    second = await client.get(
        f"/api/v1/storage/objects/{stored['id']}/preview",
        headers={**staff.headers, "If-None-Match": first.headers["etag"]},
    )
    other_size = await preview(client, staff, stored["id"], width=10)

    assert second.status_code == 304
    assert other_size.headers["etag"] != first.headers["etag"]


async def test_bomb_rejected(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    stored = await upload(client, staff, bucket_id, "bomb.png", bomb_png(50_000, 50_000))

    response = await preview(client, staff, stored["id"])

    assert_rejected(response, 422, "validation_failed")
    problem = response.json()
    assert problem["errors"][0]["code"] == "image_too_large"
    assert "decompression bomb" in problem["detail"]


async def test_bomb_detail_names_size(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str
) -> None:
    stored = await upload(client, staff, bucket_id, "big.png", bomb_png(7000, 7000))

    response = await preview(client, staff, stored["id"])

    assert_rejected(response, 422, "validation_failed")
    assert "7000x7000" in response.json()["detail"]


async def test_non_image_415(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    stored = await upload(client, staff, bucket_id, "notes.txt", b"just some text")

    response = await preview(client, staff, stored["id"])

    assert_rejected(response, 415, "unsupported_media_type")


async def test_damaged_image_422(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    damaged = image_bytes((100, 100), "PNG")[:60]
    stored = await upload(client, staff, bucket_id, "cut.png", damaged)

    response = await preview(client, staff, stored["id"])

    assert_rejected(response, 422, "validation_failed")
    assert response.json()["errors"][0]["code"] == "invalid_image"


@pytest.mark.parametrize(
    ("query", "field"),
    [({"width": 0}, "width"), ({"height": 5000}, "height"), ({"format": "bmp"}, "format")],
)
async def test_invalid_query(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, query: dict[str, Any], field: str
) -> None:
    stored = await upload(client, staff, bucket_id, "a.png", image_bytes((10, 10), "PNG"))

    response = await preview(client, staff, stored["id"], **query)

    assert_rejected(response, 422, "validation_failed")
    assert response.json()["errors"][0]["field"] == field


async def test_other_workspace_404(client: httpx.AsyncClient, staff: Staff, bucket_id: str) -> None:
    stored = await upload(client, staff, bucket_id, "a.png", image_bytes((10, 10), "PNG"))
    stranger = await owner(client)

    theirs = await preview(client, stranger, stored["id"])
    unknown = await preview(client, staff, str(uuid.uuid4()))

    assert_rejected(theirs, 404, "not_found")
    assert_rejected(unknown, 404, "not_found")
