"""The port that every object-storage backend implements.

Backends store opaque blobs under internal paths that the storage service builds from ids
(``{workspace_id}/{object_id}``); names and keys chosen by users never reach a backend path.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from frontdesk.core.errors import ProblemError


class StorageUnavailable(ProblemError):
    """The backend failed for a reason other than a missing blob (unreachable, misconfigured)."""

    status = 503
    code = "storage_unavailable"
    title = "File storage unavailable"


class BlobNotFound(Exception):
    """No blob is stored at the path."""


class BlobTooLarge(Exception):
    """The stream went past the size limit; nothing was stored."""


@dataclass(frozen=True)
class WrittenBlob:
    size: int
    sha256: str


class StorageBackend(Protocol):
    name: str

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, max_bytes: int, content_type: str
    ) -> WrittenBlob:
        """Store the stream at ``path`` all or nothing.

        Raises BlobTooLarge as soon as more than ``max_bytes`` arrive. Whatever stops the
        write (too large, a client that disconnects, a crash) leaves no blob at ``path`` and
        no partial data visible.
        """
        ...

    def read(self, path: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the bytes from ``start`` to ``end`` inclusive (the whole blob by default)."""
        ...

    async def size(self, path: str) -> int:
        """Return the blob's size; raises BlobNotFound."""
        ...

    async def delete(self, path: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        ...

    async def copy(self, source: str, destination: str) -> None:
        """Duplicate a blob; raises BlobNotFound."""
        ...

    def list_paths(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every stored path under ``prefix`` (for the consistency check)."""
        ...

    async def close(self) -> None: ...
