"""The ``storage_backend`` fixture: every storage backend, for tests that must pass on each.

The local backend always runs. The S3 backend runs when tests/s3_server.py exists; it must
define a fixture named ``s3_backend`` that yields a ready ``StorageBackend``. tests/conftest.py
loads this module as a plugin, so every test module can take ``storage_backend``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frontdesk.storage.backends.base import StorageBackend
from frontdesk.storage.backends.local import LocalBackend

HAS_S3 = (Path(__file__).parent / "s3_server.py").exists()
BACKENDS = ["local", "s3"] if HAS_S3 else ["local"]

s3_backend: Any = importlib.import_module("s3_server").s3_backend if HAS_S3 else None


@pytest.fixture(params=BACKENDS)
async def storage_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageBackend]:
    if request.param == "s3":
        s3: StorageBackend = request.getfixturevalue("s3_backend")
        yield s3
        # The S3 fixture leaves closing to its caller: the client belongs to this event loop.
        await s3.close()
        return
    backend = LocalBackend(tmp_path / "files")
    yield backend
    await backend.close()
