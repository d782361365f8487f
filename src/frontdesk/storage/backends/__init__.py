"""Object-storage backends and the factory that picks one from the settings."""

from __future__ import annotations

import importlib

from frontdesk.config import Settings
from frontdesk.storage.backends.base import StorageBackend


def build_backend(settings: Settings) -> StorageBackend:
    """Build the backend that ``storage_backend`` names."""
    if settings.storage_backend == "s3":
        # Imported by name at call time, so that the local backend needs no S3 client library.
        module = importlib.import_module("frontdesk.storage.backends.s3")
        backend: StorageBackend = module.S3Backend(settings)
        return backend
    from frontdesk.storage.backends.local import LocalBackend

    return LocalBackend(settings.resolved_storage_dir)
