"""Storage API: buckets, uploads, downloads, keys, listing, move, copy, quotas and roles."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from conftest import run_jobs
from factories import Staff, count_rows, events_named, member, owner
from frontdesk.runtime import Runtime
from frontdesk.storage.downloads import content_disposition
from frontdesk.storage.models import StoredObject

MAX_OBJECT = 100_000
QUOTA = 250_000


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "storage_max_object_bytes": MAX_OBJECT,
        "storage_workspace_quota_bytes": QUOTA,
        "rate_limits_enabled": False,
    }


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 200
EXE = b"MZ\x90\x00\x03" + b"\x00" * 58 + b"\x80" + b"\x00" * 200


def stored_files(runtime: Runtime) -> list[str]:
    """Every file under the storage folder, temporary files included."""
    root = runtime.settings.resolved_storage_dir
    if not root.exists():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


async def create_bucket(client: httpx.AsyncClient, staff: Staff, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"bucket-{uuid.uuid4().hex[:8]}")
    response = await client.post("/api/v1/storage/buckets", headers=staff.headers, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def upload(
    client: httpx.AsyncClient,
    staff: Staff,
    bucket_id: str,
    key: str,
    content: bytes,
    content_type: str = "application/octet-stream",
    **params: Any,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/storage/buckets/{bucket_id}/objects",
        headers=staff.headers | {"Content-Type": content_type},
        params={"key": key, **params},
        content=content,
    )


async def upload_ok(
    client: httpx.AsyncClient, staff: Staff, bucket_id: str, key: str, content: bytes, **kw: Any
) -> dict[str, Any]:
    response = await upload(client, staff, bucket_id, key, content, **kw)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def field_names(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


# --- Buckets --------------------------------------------------------------------------------


async def test_bucket_bad_content_type_message(client: httpx.AsyncClient) -> None:
    staff = await owner(client)

    response = await client.post(
        "/api/v1/storage/buckets",
        headers=staff.headers,
        json={"name": "photos", "allowed_content_types": ["image/*", "pictures"]},
    )

    [error] = problem(response, 422)["errors"]
    assert error["field"] == "allowed_content_types.1"
    assert error["code"] == "value_error"
    assert error["message"] == (
        "'pictures' is not a media type; write it like 'application/pdf' or 'image/*'."
    )


async def test_bucket_crud(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(
        client, staff, name="photos", allowed_content_types=["image/*", "Application/PDF"]
    )
    assert bucket["visibility"] == "private"
    assert bucket["allowed_content_types"] == ["image/*", "application/pdf"]

    duplicate = await client.post(
        "/api/v1/storage/buckets", headers=staff.headers, json={"name": "photos"}
    )
    assert problem(duplicate, 409)["code"] == "bucket_exists"

    changed = await client.patch(
        f"/api/v1/storage/buckets/{bucket['id']}",
        headers=staff.headers,
        json={"visibility": "public", "allowed_content_types": None},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["visibility"] == "public"
    assert changed.json()["allowed_content_types"] is None

    listed = await client.get("/api/v1/storage/buckets", headers=staff.headers)
    assert [item["name"] for item in listed.json()["items"]] == ["photos"]

    deleted = await client.delete(f"/api/v1/storage/buckets/{bucket['id']}", headers=staff.headers)
    assert deleted.status_code == 204
    missing = await client.get(f"/api/v1/storage/buckets/{bucket['id']}", headers=staff.headers)
    problem(missing, 404)


@pytest.mark.parametrize("name", ["a", "Photos", "-photos", "ph_otos", "x" * 64, "fotos/1"])
async def test_bucket_name_rules(client: httpx.AsyncClient, name: str) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/storage/buckets", headers=staff.headers, json={"name": name}
    )
    assert field_names(problem(response, 422)) == ["name"]


async def test_bucket_delete_needs_empty(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    await upload_ok(client, staff, bucket["id"], "a.txt", b"hello")
    response = await client.delete(f"/api/v1/storage/buckets/{bucket['id']}", headers=staff.headers)
    assert problem(response, 409)["code"] == "bucket_not_empty"


async def test_agent_cannot_manage_buckets(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    agent = await member(client, runtime, staff.workspace_id)
    bucket = await create_bucket(client, staff)
    response = await client.post(
        "/api/v1/storage/buckets", headers=agent.headers, json={"name": "mine"}
    )
    problem(response, 403)
    response = await client.delete(f"/api/v1/storage/buckets/{bucket['id']}", headers=agent.headers)
    problem(response, 403)

    listed = await client.get("/api/v1/storage/buckets", headers=agent.headers)
    assert listed.status_code == 200
    stored = await upload_ok(client, agent, bucket["id"], "agent.txt", b"from the agent")
    assert stored["owner_id"] == str(agent.user_id)
    deleted = await client.delete(f"/api/v1/storage/objects/{stored['id']}", headers=agent.headers)
    assert deleted.status_code == 204


async def test_other_workspace_is_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    alice, bob = await owner(client), await owner(client)
    bucket = await create_bucket(client, alice)
    stored = await upload_ok(client, alice, bucket["id"], "private.txt", b"secret")
    requests = [
        ("GET", f"/api/v1/storage/buckets/{bucket['id']}", None),
        ("PATCH", f"/api/v1/storage/buckets/{bucket['id']}", {"visibility": "public"}),
        ("DELETE", f"/api/v1/storage/buckets/{bucket['id']}", None),
        ("GET", f"/api/v1/storage/buckets/{bucket['id']}/objects", None),
        ("GET", f"/api/v1/storage/objects/{stored['id']}", None),
        ("GET", f"/api/v1/storage/objects/{stored['id']}/content", None),
        ("PATCH", f"/api/v1/storage/objects/{stored['id']}", {"metadata": {}}),
        ("POST", f"/api/v1/storage/objects/{stored['id']}/move", {"key": "x"}),
        ("POST", f"/api/v1/storage/objects/{stored['id']}/copy", {"key": "x"}),
        ("DELETE", f"/api/v1/storage/objects/{stored['id']}", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, headers=bob.headers, json=body)
        assert response.status_code == 404, f"{method} {path}: {response.text}"
    response = await upload(client, bob, bucket["id"], "x.txt", b"x")
    problem(response, 404)
    # Moving into another workspace's bucket names the field, like an absent bucket.
    own = await create_bucket(client, bob)
    mine = await upload_ok(client, bob, own["id"], "mine.txt", b"mine")
    response = await client.post(
        f"/api/v1/storage/objects/{mine['id']}/move",
        headers=bob.headers,
        json={"key": "stolen.txt", "bucket_id": bucket["id"]},
    )
    assert field_names(problem(response, 422)) == ["bucket_id"]
    assert await count_rows(runtime, StoredObject) == 2


# --- Uploads --------------------------------------------------------------------------------


async def test_upload_and_download(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    image = png_bytes()
    stored = await upload_ok(
        client, staff, bucket["id"], "photos/red.bin", image, content_type="text/plain"
    )
    assert stored["content_type"] == "image/png"
    assert stored["size"] == len(image)
    assert stored["etag"] == f'"{stored["sha256"]}"'
    assert stored["bucket"] == bucket["name"]
    assert stored_files(runtime) == [f"{staff.workspace_id}/{stored['id']}"]

    meta = await client.get(f"/api/v1/storage/objects/{stored['id']}", headers=staff.headers)
    assert meta.json() == stored

    response = await client.get(
        f"/api/v1/storage/objects/{stored['id']}/content", headers=staff.headers
    )
    assert response.status_code == 200
    assert response.content == image
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == stored["etag"]
    assert response.headers["content-length"] == str(len(image))

    created = await events_named(runtime, "storage.object.created")
    assert [event.data for event in created] == [json.loads(json.dumps(stored))]


async def test_oversized_upload_leaves_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff, max_object_bytes=20_000)
    # Larger than the app's 1 MiB body limit too, which upload routes skip.
    for size, limit in [(20_001, 20_000), (2 * 1024 * 1024, 20_000)]:
        response = await upload(client, staff, bucket["id"], "big.txt", b"a" * size)
        body = problem(response, 413)
        assert body["code"] == "object_too_large"
        assert str(limit) in body["detail"]
    unlimited = await create_bucket(client, staff)
    response = await upload(client, staff, unlimited["id"], "big.txt", b"a" * (MAX_OBJECT + 1))
    assert str(MAX_OBJECT) in problem(response, 413)["detail"]
    assert stored_files(runtime) == []
    assert await count_rows(runtime, StoredObject) == 0


async def test_body_limit_still_applies_elsewhere(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    response = await client.post(
        "/api/v1/storage/buckets",
        headers=staff.headers | {"Content-Type": "application/json"},
        content=b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}',
    )
    problem(response, 413)


@pytest.mark.parametrize(
    ("allowed", "content", "claimed", "key"),
    [
        (["application/pdf"], "png", "application/pdf", "scan.pdf"),
        (["image/*"], "elf", "image/png", "photo.png"),
        (["image/*"], "exe", "image/jpeg", "photo.jpg"),
        (["image/*"], "pdf", "image/png", "photo.png"),
        (["text/plain"], "elf", "text/plain", "notes.txt"),
        (["image/*"], "text", "image/png", "photo.png"),
    ],
)
async def test_lying_content_type_rejected(
    client: httpx.AsyncClient,
    runtime: Runtime,
    allowed: list[str],
    content: str,
    claimed: str,
    key: str,
) -> None:
    data = {"png": png_bytes(), "elf": ELF, "exe": EXE, "pdf": PDF, "text": b"plain words"}
    staff = await owner(client)
    bucket = await create_bucket(client, staff, allowed_content_types=allowed)
    response = await upload(client, staff, bucket["id"], key, data[content], content_type=claimed)
    body = problem(response, 415)
    assert body["code"] == "unsupported_media_type"
    assert field_names(body) == ["content"]
    assert stored_files(runtime) == []
    assert await count_rows(runtime, StoredObject) == 0


async def test_allowed_types_accepted(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(
        client, staff, allowed_content_types=["image/*", "application/pdf", "text/csv"]
    )
    png = await upload_ok(client, staff, bucket["id"], "a.png", png_bytes())
    pdf = await upload_ok(client, staff, bucket["id"], "a.pdf", PDF, content_type="image/png")
    csv = await upload_ok(client, staff, bucket["id"], "a.csv", "name,city\nZoë,Köln\n".encode())
    assert png["content_type"] == "image/png"
    assert pdf["content_type"] == "application/pdf"
    assert csv["content_type"] == "text/csv"
    response = await upload(
        client, staff, bucket["id"], "a.txt", b"plain", content_type="text/plain"
    )
    problem(response, 415)


async def test_text_must_be_utf8(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff, allowed_content_types=["text/plain"])
    # Valid text for the first 8 KiB, then a byte that is never UTF-8.
    data = b"a" * 9000 + b"\xff" + b"b" * 100
    response = await upload(client, staff, bucket["id"], "a.txt", data, content_type="text/plain")
    problem(response, 415)
    latin1 = "café".encode("latin-1")
    response = await upload(client, staff, bucket["id"], "b.txt", latin1, content_type="text/plain")
    problem(response, 415)
    assert stored_files(runtime) == []


async def test_upload_cut_off_leaves_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    runtime: Runtime = app.state.runtime
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"a" * 30_000, "more_body": True},
        {"type": "http.request", "body": b"b" * 30_000, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (name.lower().encode(), value.encode())
        for name, value in (staff.headers | {"Content-Type": "text/plain"}).items()
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1/storage/buckets/{bucket['id']}/objects",
        "raw_path": f"/api/v1/storage/buckets/{bucket['id']}/objects".encode(),
        "query_string": b"key=cut.txt",
        "headers": [*headers, (b"host", b"frontdesk.test"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 5000),
        "server": ("frontdesk.test", 80),
        "root_path": "",
        "state": {},
        "app": app,
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert stored_files(runtime) == []
    assert await count_rows(runtime, StoredObject) == 0


# --- Keys -----------------------------------------------------------------------------------

GOOD_KEYS = [
    "report final.pdf",
    "what? yes#1 +plus &and=",
    "folder/sub folder/naïve ☃.txt",
    "100%25 literal percent %2F",
    "日本語/ファイル.txt",
    "a" * 1024,
    "trailing space ",
    # Zero width non-joiner and joiner, which Persian words and emoji sequences need.
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467.jpg",
]
BAD_KEYS = [
    ("", "key_empty"),
    ("/leading", "key_leading_slash"),
    ("a/../b", "key_dot_segment"),
    ("..", "key_dot_segment"),
    ("./a", "key_dot_segment"),
    ("a/.", "key_dot_segment"),
    ("a\\b", "key_backslash"),
    ("..\\..\\windows", "key_backslash"),
    ("tab\tkey", "key_control_character"),
    ("nul\x00key", "key_control_character"),
    ("del\x7fkey", "key_control_character"),
    ("invoice\u202efdp.exe", "key_bidi_character"),
    ("isolate\u2066key", "key_bidi_character"),
    ("a\u200b.pdf", "key_invisible_character"),
    ("mark\u200fkey", "key_invisible_character"),
    ("\ufeffbom.txt", "key_invisible_character"),
    ("soft\u00adhyphen", "key_invisible_character"),
    ("c1\x85key", "key_control_character"),
    ("line\nbreak", "key_control_character"),
    ("a//b", "key_empty_segment"),
    ("folder/", "key_empty_segment"),
    ("é" * 513, "key_too_long"),
]


async def test_unusual_keys_round_trip(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    ids = []
    for key in GOOD_KEYS:
        stored = await upload_ok(client, staff, bucket["id"], key, b"content")
        assert stored["key"] == key
        ids.append(stored["id"])
    # NFC: a decomposed "é" is stored composed.
    stored = await upload_ok(client, staff, bucket["id"], "cafe\u0301.txt", b"x")
    assert stored["key"] == "caf\u00e9.txt"

    listed = await client.get(
        f"/api/v1/storage/buckets/{bucket['id']}/objects", headers=staff.headers
    )
    assert sorted(item["key"] for item in listed.json()["items"]) == sorted(
        [*GOOD_KEYS, "caf\u00e9.txt"]
    )
    expected = sorted(f"{staff.workspace_id}/{object_id}" for object_id in [*ids, stored["id"]])
    assert stored_files(runtime) == expected


@pytest.mark.parametrize(("key", "code"), BAD_KEYS)
async def test_bad_keys_rejected(
    client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path, key: str, code: str
) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    response = await upload(client, staff, bucket["id"], key, b"content")
    body = problem(response, 422)
    assert body["errors"] == [
        {"field": "key", "message": body["errors"][0]["message"], "code": code}
    ]
    assert stored_files(runtime) == []
    outside = [path for path in tmp_path.rglob("*") if path.is_file() and "data" not in path.parts]
    assert outside == []


async def test_key_conflict_and_overwrite(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    first = await upload_ok(client, staff, bucket["id"], "a.txt", b"first")
    response = await upload(client, staff, bucket["id"], "a.txt", b"second")
    assert problem(response, 409)["code"] == "key_exists"
    second = await upload_ok(client, staff, bucket["id"], "a.txt", b"second", overwrite="true")
    assert second["id"] != first["id"]
    gone = await client.get(f"/api/v1/storage/objects/{first['id']}", headers=staff.headers)
    problem(gone, 404)
    await run_all_jobs(runtime)
    assert stored_files(runtime) == [f"{staff.workspace_id}/{second['id']}"]


async def run_all_jobs(runtime: Runtime) -> None:
    await run_jobs(runtime)


# --- Downloads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status", "start", "end"),
    [
        ("bytes=0-9", 206, 0, 9),
        ("bytes=100-", 206, 100, 999),
        ("bytes=-10", 206, 990, 999),
        ("bytes=990-5000", 206, 990, 999),
        ("bytes=-5000", 206, 0, 999),
        ("bytes=0-1,5-6", 200, 0, 999),
        ("items=0-1", 200, 0, 999),
        ("bytes=5-1", 200, 0, 999),
    ],
)
async def test_range(
    client: httpx.AsyncClient, header: str, status: int, start: int, end: int
) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    data = bytes(range(250)) * 4
    stored = await upload_ok(client, staff, bucket["id"], "data.bin", data)
    response = await client.get(
        f"/api/v1/storage/objects/{stored['id']}/content",
        headers=staff.headers | {"Range": header},
    )
    assert response.status_code == status
    assert response.content == data[start : end + 1]
    if status == 206:
        assert response.headers["content-range"] == f"bytes {start}-{end}/1000"
    else:
        assert "content-range" not in response.headers


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
async def test_range_unsatisfiable(client: httpx.AsyncClient, header: str) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    stored = await upload_ok(client, staff, bucket["id"], "data.bin", b"x" * 1000)
    response = await client.get(
        f"/api/v1/storage/objects/{stored['id']}/content",
        headers=staff.headers | {"Range": header},
    )
    problem(response, 416)
    assert response.headers["content-range"] == "bytes */1000"


async def test_etag_not_modified(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    stored = await upload_ok(client, staff, bucket["id"], "a.txt", b"hello")
    path = f"/api/v1/storage/objects/{stored['id']}/content"
    for header in [stored["etag"], f"W/{stored['etag']}", f'"other", {stored["etag"]}', "*"]:
        response = await client.get(path, headers=staff.headers | {"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == stored["etag"]
    response = await client.get(path, headers=staff.headers | {"If-None-Match": '"other"'})
    assert response.status_code == 200


async def test_content_disposition_non_ascii(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    name = 'Résumé \u2013 2026 "final".pdf'
    stored = await upload_ok(client, staff, bucket["id"], f"cv/{name}", PDF)
    response = await client.get(
        f"/api/v1/storage/objects/{stored['id']}/content", headers=staff.headers
    )
    header = response.headers["content-disposition"]
    assert header.isascii()
    assert "\r" not in header
    assert "\n" not in header
    disposition, *params = header.split("; ")
    assert disposition == "attachment"
    values = dict(param.split("=", 1) for param in params)
    # RFC 6266: a recipient that understands filename* uses it over filename.
    charset, _language, encoded = values["filename*"].split("'", 2)
    assert charset == "UTF-8"
    assert unquote(encoded, encoding="utf-8", errors="strict") == name
    assert values["filename"] == '"Resume  2026 final.pdf"'


@pytest.mark.parametrize(
    ("key", "fallback"),
    [("日本語.txt", '"download.txt"'), ("日本語", '"download"'), ("emoji 😀.txt", '"emoji .txt"')],
)
def test_disposition_fallback_never_hidden(key: str, fallback: str) -> None:
    header = content_disposition(key)
    assert header.split("; ")[1] == f"filename={fallback}"


# --- Listing --------------------------------------------------------------------------------


async def test_list_prefix_pagination(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    keys = ["docs/b.txt", "docs/a.txt", "docs/C.txt", "docs/sub/z.txt", "Docs/x.txt", "img/1"]
    for key in keys:
        await upload_ok(client, staff, bucket["id"], key, b"x")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"prefix": "docs/", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            f"/api/v1/storage/buckets/{bucket['id']}/objects", headers=staff.headers, params=params
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["key"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["docs/C.txt", "docs/a.txt", "docs/b.txt", "docs/sub/z.txt"]
    assert pages == 2


# --- Move, copy, delete, metadata -----------------------------------------------------------


async def test_move_rename_and_across_buckets(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    source = await create_bucket(client, staff)
    target = await create_bucket(client, staff, allowed_content_types=["image/*"])
    text = await upload_ok(client, staff, source["id"], "a.txt", b"words")
    image = await upload_ok(client, staff, source["id"], "a.png", png_bytes())
    files_before = stored_files(runtime)

    renamed = await client.post(
        f"/api/v1/storage/objects/{text['id']}/move",
        headers=staff.headers,
        json={"key": "renamed/b.txt"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["key"] == "renamed/b.txt"
    assert renamed.json()["id"] == text["id"]

    refused = await client.post(
        f"/api/v1/storage/objects/{text['id']}/move",
        headers=staff.headers,
        json={"key": "b.txt", "bucket_id": target["id"]},
    )
    problem(refused, 415)

    moved = await client.post(
        f"/api/v1/storage/objects/{image['id']}/move",
        headers=staff.headers,
        json={"key": "photo.png", "bucket_id": target["id"]},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["bucket_id"] == target["id"]
    assert stored_files(runtime) == files_before

    other = await upload_ok(client, staff, source["id"], "c.txt", b"other")
    taken = await client.post(
        f"/api/v1/storage/objects/{text['id']}/move",
        headers=staff.headers,
        json={"key": "c.txt"},
    )
    assert problem(taken, 409)["code"] == "key_exists"
    replaced = await client.post(
        f"/api/v1/storage/objects/{text['id']}/move",
        headers=staff.headers,
        json={"key": "c.txt", "overwrite": True},
    )
    assert replaced.status_code == 200, replaced.text
    gone = await client.get(f"/api/v1/storage/objects/{other['id']}", headers=staff.headers)
    problem(gone, 404)


async def test_copy_duplicates_bytes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    original = await upload_ok(client, staff, bucket["id"], "a.txt", b"original bytes")
    response = await client.post(
        f"/api/v1/storage/objects/{original['id']}/copy",
        headers=staff.headers,
        json={"key": "b.txt"},
    )
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != original["id"]
    assert copy["sha256"] == original["sha256"]
    assert len(stored_files(runtime)) == 2

    again = await client.post(
        f"/api/v1/storage/objects/{original['id']}/copy",
        headers=staff.headers,
        json={"key": "b.txt"},
    )
    assert problem(again, 409)["code"] == "key_exists"

    deleted = await client.delete(
        f"/api/v1/storage/objects/{original['id']}", headers=staff.headers
    )
    assert deleted.status_code == 204
    await run_all_jobs(runtime)
    assert stored_files(runtime) == [f"{staff.workspace_id}/{copy['id']}"]
    content = await client.get(
        f"/api/v1/storage/objects/{copy['id']}/content", headers=staff.headers
    )
    assert content.content == b"original bytes"
    deleted_events = await events_named(runtime, "storage.object.deleted")
    assert [event.data["id"] for event in deleted_events] == [original["id"]]


async def test_metadata_update(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    stored = await upload_ok(client, staff, bucket["id"], "a.txt", b"x")
    path = f"/api/v1/storage/objects/{stored['id']}"
    response = await client.patch(
        path, headers=staff.headers, json={"metadata": {"source": "scanner", "page": "2"}}
    )
    assert response.json()["metadata"] == {"source": "scanner", "page": "2"}
    too_many = {f"k{i}": "v" for i in range(21)}
    response = await client.patch(path, headers=staff.headers, json={"metadata": too_many})
    assert field_names(problem(response, 422)) == ["metadata"]


# --- Quota ----------------------------------------------------------------------------------


async def test_quota_enforced(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    first = await upload_ok(client, staff, bucket["id"], "1.bin", b"a" * 90_000)
    await upload_ok(client, staff, bucket["id"], "2.bin", b"b" * 90_000)
    response = await upload(client, staff, bucket["id"], "3.bin", b"c" * 90_000)
    body = problem(response, 413)
    assert body["code"] == "quota_exceeded"
    assert "quota" in body["detail"]
    copy = await client.post(
        f"/api/v1/storage/objects/{first['id']}/copy", headers=staff.headers, json={"key": "c"}
    )
    assert problem(copy, 413)["code"] == "quota_exceeded"
    assert len(stored_files(runtime)) == 2

    usage = await client.get("/api/v1/storage/usage", headers=staff.headers)
    assert usage.json() == {"bytes_used": 180_000, "object_count": 2, "quota_bytes": QUOTA}
    # Overwriting frees the old object's bytes.
    await upload_ok(client, staff, bucket["id"], "2.bin", b"d" * 95_000, overwrite="true")


async def test_concurrent_uploads_share_quota(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    await upload_ok(client, staff, bucket["id"], "base.bin", b"a" * 95_000)
    both_streaming = asyncio.Barrier(2)

    async def body(fill: bytes) -> AsyncIterator[bytes]:
        yield fill * 40_000
        # Both uploads passed the first quota check before either finishes.
        await both_streaming.wait()
        yield fill * 40_000

    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/storage/buckets/{bucket['id']}/objects",
                headers=staff.headers | {"Content-Type": "application/octet-stream"},
                params={"key": f"{name}.bin"},
                content=body(name.encode()),
            )
            for name in ("x", "y")
        )
    )

    assert sorted(response.status_code for response in responses) == [201, 413]
    rejected = next(response for response in responses if response.status_code == 413)
    assert rejected.json()["code"] == "quota_exceeded"
    usage = await client.get("/api/v1/storage/usage", headers=staff.headers)
    assert usage.json()["bytes_used"] == 175_000
    assert len(stored_files(runtime)) == 2


# --- Public buckets -------------------------------------------------------------------------


async def test_public_bucket_download(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    public = await create_bucket(client, staff, name="site", visibility="public")
    private = await create_bucket(client, staff, name="vault")
    key = "press kit/what? #1 & 100%.txt"
    await upload_ok(client, staff, public["id"], key, b"public words")
    await upload_ok(client, staff, private["id"], key, b"private words")
    encoded = quote(key, safe="/")

    response = await client.get(f"/storage/public/{staff.workspace_id}/site/{encoded}")
    assert response.status_code == 200, response.text
    assert response.content == b"public words"
    assert response.headers["x-content-type-options"] == "nosniff"
    ranged = await client.get(
        f"/storage/public/{staff.workspace_id}/site/{encoded}", headers={"Range": "bytes=-5"}
    )
    assert ranged.status_code == 206
    assert ranged.content == b"words"

    for path in [
        f"/storage/public/{staff.workspace_id}/vault/{encoded}",
        f"/storage/public/{uuid.uuid4()}/site/{encoded}",
        f"/storage/public/{staff.workspace_id}/site/press%20kit/other.txt",
    ]:
        problem(await client.get(path), 404)


async def test_upload_does_not_block_writes(client: httpx.AsyncClient) -> None:
    """A slow upload keeps no database transaction open while its bytes stream."""
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    halfway = asyncio.Event()
    resume = asyncio.Event()

    async def slow_body() -> Any:
        yield b"first half of a slow upload, "
        halfway.set()
        await resume.wait()
        yield b"second half"

    uploading = asyncio.create_task(
        client.post(
            f"/api/v1/storage/buckets/{bucket['id']}/objects",
            headers=staff.headers | {"Content-Type": "text/plain"},
            params={"key": "slow.txt"},
            content=slow_body(),
        )
    )
    await asyncio.wait_for(halfway.wait(), timeout=5)
    # Another write completes while the upload is still streaming.
    renamed = await asyncio.wait_for(
        client.patch(
            "/api/v1/workspace", headers=staff.headers, json={"name": "Renamed meanwhile"}
        ),
        timeout=10,
    )
    assert renamed.status_code == 200
    assert not uploading.done()
    resume.set()
    response = await asyncio.wait_for(uploading, timeout=10)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(b"first half of a slow upload, second half")


async def test_text_checked_past_sniffed_head(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    bucket = await create_bucket(client, staff)
    # One request chunk holds all 12 KB, so the check cannot depend on how bytes arrive.
    content = b"a" * 9000 + b"\xff" + b"b" * 3000
    response = await upload(client, staff, bucket["id"], "notes.txt", content, "text/plain")
    assert problem(response, 415)["code"] == "unsupported_media_type"
    assert stored_files(runtime) == []


async def test_form_uploads_bucket_stays_private(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    public = await client.post(
        "/api/v1/storage/buckets",
        headers=staff.headers,
        json={"name": "form-uploads", "visibility": "public"},
    )
    assert problem(public, 409)["code"] == "bucket_must_stay_private"
    bucket = await create_bucket(client, staff, name="form-uploads")
    patched = await client.patch(
        f"/api/v1/storage/buckets/{bucket['id']}",
        headers=staff.headers,
        json={"visibility": "public"},
    )
    assert problem(patched, 409)["code"] == "bucket_must_stay_private"
