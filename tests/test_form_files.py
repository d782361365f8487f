"""File fields of forms: definitions, uploads with tokens, browser posts, cleanup and scanning."""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from clamd_server import FakeClamd
from clamd_server import clamd as clamd
from conftest import run_jobs
from factories import Staff, count_rows, create_form, enquiries, field, form_path, owner, submit
from frontdesk.core.clock import FrozenClock
from frontdesk.core.uow import unit_of_work
from frontdesk.forms.models import FormUpload
from frontdesk.forms.uploads import PENDING_UPLOAD_LIFETIME, discard_pending, safe_file_name
from frontdesk.runtime import Runtime
from frontdesk.storage.backends.base import BlobNotFound
from frontdesk.storage.models import StoredObject
from frontdesk.storage.service import blob_path

FILE_FIELDS = [
    field("name", required=True),
    field("email", "email"),
    field("photos", "file", file={"max_files": 2, "max_bytes": 50_000}),
    field("contract", "file", file={"content_types": ["application/pdf"]}),
]


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def file_form(client: httpx.AsyncClient) -> tuple[Staff, dict[str, Any]]:
    staff = await owner(client)
    form = await create_form(client, staff, FILE_FIELDS, name="Quote request")
    return staff, form


async def upload(
    client: httpx.AsyncClient,
    form: dict[str, Any],
    field_key: str,
    content: bytes,
    *,
    filename: str = "photo.png",
    content_type: str = "image/png",
) -> httpx.Response:
    return await client.post(
        f"{form_path(form)}/uploads",
        params={"field": field_key, "filename": filename},
        content=content,
        headers={"Content-Type": content_type},
    )


async def upload_token(
    client: httpx.AsyncClient, form: dict[str, Any], field_key: str, content: bytes, **kwargs: Any
) -> str:
    response = await upload(client, form, field_key, content, **kwargs)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def render_token(html: str) -> str:
    match = re.search(r'name="_render_token" value="([^"]+)"', html)
    assert match, "no render token in the page"
    return match.group(1)


async def test_file_field_gets_default_limits(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("photo", "file")])
    assert form["fields"][0]["file"] == {
        "max_files": 1,
        "max_bytes": 10 * 1024 * 1024,
        "content_types": ["image/*", "application/pdf"],
    }


async def test_file_options_rejected_elsewhere(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/forms",
        headers=staff.headers,
        json={"name": "Bad", "fields": [field("name", file={"max_files": 2})]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "fields.0.file"


async def test_file_limit_above_instance_rejected(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await owner(client)
    too_large = runtime.settings.storage_max_object_bytes + 1
    response = await client.post(
        "/api/v1/forms",
        headers=staff.headers,
        json={"name": "Bad", "fields": [field("photo", "file", file={"max_bytes": too_large})]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "fields.0.file.max_bytes"


async def test_upload_then_submit_attaches_file(client: httpx.AsyncClient) -> None:
    staff, form = await file_form(client)
    image = png_bytes()
    response = await upload(client, form, "photos", image, filename="../../Été 2026.png")
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert uploaded["name"] == "Été 2026.png"
    assert uploaded["size"] == len(image)
    assert uploaded["content_type"] == "image/png"

    response = await submit(client, form, {"name": "Ada", "photos": [uploaded["token"]]})
    assert response.status_code == 201, response.text

    enquiry = (await enquiries(client, staff))["items"][0]
    [photo] = enquiry["answers"]["photos"]
    assert photo["name"] == "Été 2026.png"
    assert photo["size"] == len(image)
    assert photo["content_type"] == "image/png"
    content = await client.get(
        f"/api/v1/storage/objects/{photo['object_id']}/content", headers=staff.headers
    )
    assert content.status_code == 200
    assert content.content == image
    described = await client.get(
        f"/api/v1/storage/objects/{photo['object_id']}", headers=staff.headers
    )
    assert described.json()["key"].endswith("/Été 2026.png")
    assert described.json()["owner_id"] is None


async def test_files_keep_given_order(client: httpx.AsyncClient) -> None:
    staff, form = await file_form(client)
    for names in (["first.png", "second.png"], ["second.png", "first.png"]):
        tokens = {
            name: await upload_token(client, form, "photos", png_bytes(8 + n), filename=name)
            for n, name in enumerate(sorted(names))
        }
        response = await submit(client, form, {"name": "Ada", "photos": [tokens[n] for n in names]})
        assert response.status_code == 201, response.text
    newest, older = (await enquiries(client, staff))["items"][:2]
    assert [photo["name"] for photo in older["answers"]["photos"]] == ["first.png", "second.png"]
    assert [photo["name"] for photo in newest["answers"]["photos"]] == ["second.png", "first.png"]


async def test_token_single_use(client: httpx.AsyncClient) -> None:
    _staff, form = await file_form(client)
    token = await upload_token(client, form, "photos", png_bytes())
    first = await submit(client, form, {"name": "Ada", "photos": token})
    assert first.status_code == 201, first.text

    again = await submit(client, form, {"name": "Ada", "photos": token})
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "photos"
    assert again.json()["errors"][0]["code"] == "upload_invalid"


async def test_token_bound_to_form_and_field(client: httpx.AsyncClient) -> None:
    staff, form = await file_form(client)
    other = await create_form(client, staff, FILE_FIELDS, name="Other form")
    token = await upload_token(client, other, "photos", png_bytes())

    wrong_form = await submit(client, form, {"name": "Ada", "photos": token})
    assert wrong_form.status_code == 422
    assert wrong_form.json()["errors"][0]["code"] == "upload_invalid"

    pdf_token = await upload_token(
        client, form, "contract", PDF, filename="c.pdf", content_type="application/pdf"
    )
    wrong_field = await submit(client, form, {"name": "Ada", "photos": pdf_token})
    assert wrong_field.status_code == 422
    assert wrong_field.json()["errors"][0]["code"] == "upload_invalid"

    made_up = await submit(client, form, {"name": "Ada", "photos": "not-a-token"})
    assert made_up.status_code == 422
    assert made_up.json()["errors"][0]["code"] == "upload_invalid"


async def test_expired_token_rejected(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    _staff, form = await file_form(client)
    token = await upload_token(client, form, "photos", png_bytes())
    clock.advance(seconds=PENDING_UPLOAD_LIFETIME.total_seconds() + 1)
    response = await submit(client, form, {"name": "Ada", "photos": token})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "upload_invalid"


async def test_too_many_files_rejected(client: httpx.AsyncClient) -> None:
    _staff, form = await file_form(client)
    tokens = [await upload_token(client, form, "photos", png_bytes(8 + n)) for n in range(3)]
    response = await submit(client, form, {"name": "Ada", "photos": tokens})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "too_many_files"


async def test_required_file_missing(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, [field("photo", "file", required=True)])
    response = await submit(client, form, {"photo": []})
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "photo",
        "message": "This field is required.",
        "code": "required",
    }


async def test_upload_lying_about_type(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await file_form(client)
    response = await upload(
        client, form, "photos", b"MZ\x90\x00 not a picture at all", content_type="image/png"
    )
    assert response.status_code == 415
    assert await count_rows(runtime, StoredObject) == 0
    assert await count_rows(runtime, FormUpload) == 0


async def test_empty_upload_rejected(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await file_form(client)
    response = await upload(client, form, "photos", b"", content_type="image/png")
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "field": "body",
            "message": "The file is empty; send a file with content.",
            "code": "file_empty",
        }
    ]
    assert await count_rows(runtime, StoredObject) == 0
    assert await count_rows(runtime, FormUpload) == 0


async def test_oversized_upload_leaves_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _staff, form = await file_form(client)
    response = await upload(client, form, "photos", png_bytes() + b"\0" * 60_000)
    assert response.status_code == 413
    assert "50000 bytes" in response.json()["detail"]
    assert await count_rows(runtime, StoredObject) == 0
    assert await count_rows(runtime, FormUpload) == 0
    assert [path async for path in runtime.storage.list_paths()] == []


@pytest.mark.parametrize("field_key", ["name", "nothing"])
async def test_upload_needs_file_field(client: httpx.AsyncClient, field_key: str) -> None:
    _staff, form = await file_form(client)
    response = await upload(client, form, field_key, png_bytes())
    assert response.status_code == 404
    assert response.json()["code"] == "field_not_found"


async def test_upload_to_unpublished_form(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, FILE_FIELDS, published=False)
    response = await upload(client, form, "photos", png_bytes())
    assert response.status_code == 404


async def test_page_has_file_input(client: httpx.AsyncClient) -> None:
    _staff, form = await file_form(client)
    html = (await client.get(form_path(form))).text
    assert 'enctype="multipart/form-data"' in html
    assert (
        '<input id="f-photos" name="photos" type="file" accept="image/*,application/pdf" multiple>'
        in html
    )
    assert 'name="contract" type="file" accept="application/pdf">' in html


async def test_browser_post_with_files(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    staff, form = await file_form(client)
    page = await client.get(form_path(form))
    clock.advance(seconds=10)
    image = png_bytes()
    response = await client.post(
        form_path(form),
        data={"name": "Ada", "_render_token": render_token(page.text)},
        files=[
            ("photos", ("garden.png", image, "image/png")),
            ("contract", ("", b"", "application/octet-stream")),
        ],
    )
    assert response.status_code == 303, response.text
    enquiry = (await enquiries(client, staff))["items"][0]
    [photo] = enquiry["answers"]["photos"]
    assert photo["name"] == "garden.png"
    assert photo["size"] == len(image)
    assert "contract" not in enquiry["answers"]
    assert await count_rows(runtime, FormUpload, FormUpload.enquiry_id.is_not(None)) == 1


async def test_browser_post_wrong_type_stores_nothing(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    staff = await owner(client)
    form = await create_form(client, staff, FILE_FIELDS, name="Devis", language="fr")
    page = await client.get(form_path(form))
    clock.advance(seconds=10)
    response = await client.post(
        form_path(form),
        data={"name": "Ada", "_render_token": render_token(page.text)},
        files=[
            ("photos", ("a.png", png_bytes(), "image/png")),
            ("contract", ("contract.pdf", png_bytes(), "application/pdf")),
        ],
    )
    assert response.status_code == 422
    assert "Ce type de fichier n’est pas accepté" in response.text  # noqa: RUF001
    assert "application/pdf" in response.text
    assert await count_rows(runtime, StoredObject) == 0
    assert await count_rows(runtime, FormUpload) == 0
    assert [path async for path in runtime.storage.list_paths()] == []


async def test_pending_uploads_discarded(
    client: httpx.AsyncClient, clock: FrozenClock, runtime: Runtime
) -> None:
    _staff, form = await file_form(client)
    kept = await upload_token(client, form, "photos", png_bytes(9))
    response = await submit(client, form, {"name": "Ada", "photos": kept})
    assert response.status_code == 201
    await upload_token(client, form, "photos", png_bytes(10))
    async with runtime.sessionmaker() as session:
        abandoned = (
            await session.scalars(sa.select(FormUpload).where(FormUpload.enquiry_id.is_(None)))
        ).one()

    clock.advance(seconds=PENDING_UPLOAD_LIFETIME.total_seconds() - 60)
    async with unit_of_work(runtime) as uow:
        assert await discard_pending(uow, older_than=PENDING_UPLOAD_LIFETIME) == 0
    clock.advance(seconds=120)
    async with unit_of_work(runtime) as uow:
        assert await discard_pending(uow, older_than=PENDING_UPLOAD_LIFETIME) == 1
    await run_jobs(runtime)

    assert await count_rows(runtime, FormUpload) == 1
    assert await count_rows(runtime, StoredObject) == 1
    with pytest.raises(BlobNotFound):
        await runtime.storage.size(blob_path(abandoned.workspace_id, abandoned.object_id))


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("photo.png", "photo.png"),
        ("C:\\Users\\ada\\photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("..", "upload"),
        (".hidden", "hidden"),
        ("a\x00b\nc.png", "abc.png"),
        ("", "upload"),
        (None, "upload"),
        ("e\u0301te\u0301.png", "été.png"),
        ("x" * 300 + ".jpeg", "x" * 145 + ".jpeg"),
    ],
)
def test_safe_file_name(sent: str | None, stored: str) -> None:
    assert safe_file_name(sent) == stored


class TestScanning:
    @pytest.fixture
    def settings_overrides(self, clamd: FakeClamd) -> dict[str, Any]:
        return clamd.settings()

    async def test_visitor_file_quarantined(
        self, client: httpx.AsyncClient, runtime: Runtime, clamd: FakeClamd
    ) -> None:
        staff, form = await file_form(client)
        image = png_bytes()
        token = await upload_token(client, form, "photos", image)
        assert (await submit(client, form, {"name": "Ada", "photos": token})).status_code == 201
        [photo] = (await enquiries(client, staff))["items"][0]["answers"]["photos"]
        url = f"/api/v1/storage/objects/{photo['object_id']}/content"

        locked = await client.get(url, headers=staff.headers)
        assert locked.status_code == 423
        assert locked.json()["code"] == "object_quarantined"

        await run_jobs(runtime)
        assert clamd.scanned == [image]
        available = await client.get(url, headers=staff.headers)
        assert available.status_code == 200
        assert available.content == image
