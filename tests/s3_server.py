"""A local S3-compatible server for tests: moto's standalone server on 127.0.0.1.

The server runs in a thread of the test process, started on first use, with the bucket
created. ``s3_settings`` returns the settings overrides that point Frontdesk at it, and
``s3_backend`` gives a fresh ``S3Backend`` and empties the bucket, including pending
multipart uploads, after each test. tests/storage_backends.py provides ``s3_backend`` to
every module; import ``s3_settings`` into a module that needs it. When moto cannot start,
the tests skip, or fail when FRONTDESK_TEST_REQUIRE names ``s3``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_settings, skip_or_fail
from frontdesk.storage.backends.s3 import S3Backend

BUCKET = "frontdesk-test"
REGION = "us-east-1"
# moto accepts any credentials unless its IAM emulation is switched on.
ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-key"


def sync_client(settings: dict[str, Any]) -> Any:
    """A blocking boto3 client on the test server, to set up and inspect the bucket."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings["s3_endpoint_url"],
        region_name=settings["s3_region"],
        aws_access_key_id=settings["s3_access_key_id"],
        aws_secret_access_key=settings["s3_secret_access_key"],
        config=Config(s3={"addressing_style": "path"}),
    )


def empty_bucket(client: Any) -> None:
    """Delete every object and abort every pending multipart upload in the test bucket."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


_server_settings: dict[str, Any] | None = None


def start_server() -> dict[str, Any]:
    """Start the moto server once per test process; return the settings overrides for it."""
    global _server_settings
    if _server_settings is not None:
        return _server_settings
    try:
        from moto.server import ThreadedMotoServer

        # A daemon thread: it ends with the test process.
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
    except (ImportError, OSError) as exc:
        skip_or_fail("s3", f"moto server did not start: {exc!r}")
    host, port = server.get_host_and_port()
    settings: dict[str, Any] = {
        "storage_backend": "s3",
        "s3_endpoint_url": f"http://{host}:{port}",
        "s3_region": REGION,
        "s3_bucket": BUCKET,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
        "s3_force_path_style": True,
    }
    sync_client(settings).create_bucket(Bucket=BUCKET)
    _server_settings = settings
    return settings


@pytest.fixture(scope="session")
def s3_settings() -> dict[str, Any]:
    """Settings overrides for the S3 backend on the moto server, with the bucket created."""
    return dict(start_server())


@pytest.fixture
def s3_backend(tmp_path: Path) -> Iterator[S3Backend]:
    """An ``S3Backend`` on the test bucket, emptied after the test.

    A plain fixture, so that async fixtures can request it with ``getfixturevalue``. The
    caller closes the backend, because its client belongs to the test's event loop.
    """
    settings = start_server()
    backend = S3Backend(make_settings("sqlite+aiosqlite://", tmp_path, **settings))
    try:
        yield backend
    finally:
        empty_bucket(sync_client(settings))
