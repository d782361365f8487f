"""Download responses: single byte ranges, ETag revalidation and a safe Content-Disposition.

``object_response`` is shared by every route that serves an object's bytes (the staff API
and signed links), so they all send the same headers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote

import structlog
from fastapi import Response
from fastapi.responses import StreamingResponse

from frontdesk.core.errors import Conflict, ProblemError
from frontdesk.storage.backends.base import BlobNotFound, StorageBackend
from frontdesk.storage.models import StoredObject
from frontdesk.storage.service import blob_path

log = structlog.get_logger()

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# RFC 5987 attr-char, besides the letters, digits and "_.-~" that quote() always keeps.
_ATTR_CHARS = "!#$&+^`|"


class RangeNotSatisfiable(ProblemError):
    status = 416
    code = "range_not_satisfiable"
    title = "Range not satisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive (start, end) of a single ``bytes`` range, or None for the whole.

    Several ranges, another unit and malformed values are ignored, as RFC 9110 allows, so the
    whole object is sent. A well-formed range that starts past the end raises
    RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The range is outside the object's {size} bytes; request bytes 0 to {size - 1}.",
        headers={"Content-Range": f"bytes */{size}"},
    )


def etag_matches(header: str | None, etag: str) -> bool:
    """Return whether If-None-Match names the ETag (weak comparison, as RFC 9110 requires)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag in tags


def content_disposition(key: str) -> str:
    """Build an attachment header from the key's last segment (RFC 6266 with RFC 5987).

    The quoted ``filename`` is an ASCII fallback without quotes, backslashes or control
    characters; ``filename*`` carries the exact name in UTF-8.
    """
    name = key.rsplit("/", 1)[-1]
    decomposed = unicodedata.normalize("NFKD", name)
    fallback = "".join(
        character for character in decomposed if " " <= character <= "~" and character not in '"\\'
    ).strip()
    if not fallback or fallback.startswith("."):
        # A name of only non-ASCII letters would leave just its extension, a hidden file.
        fallback = "download" + fallback
    encoded = quote(name, safe=_ATTR_CHARS)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def object_response(
    backend: StorageBackend, stored: StoredObject, headers: Mapping[str, str]
) -> Response:
    """Serve the object's bytes, honouring Range and If-None-Match from ``headers``."""
    etag = f'"{stored.sha256}"'
    common = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": content_disposition(stored.key),
        "Cache-Control": "private, no-cache",
    }
    if etag_matches(headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag, **common})

    path = blob_path(stored.workspace_id, stored.id)
    try:
        await backend.size(path)
    except BlobNotFound as exc:
        log.error("storage.blob_missing", object_id=str(stored.id))
        raise Conflict(
            "The object's content is missing from storage; delete the object and upload it again.",
            code="blob_missing",
        ) from exc

    byte_range = parse_range(headers.get("range"), stored.size)
    if byte_range is None:
        return StreamingResponse(
            backend.read(path),
            media_type=stored.content_type,
            headers={**common, "Content-Length": str(stored.size)},
        )
    start, end = byte_range
    return StreamingResponse(
        backend.read(path, start=start, end=end),
        status_code=206,
        media_type=stored.content_type,
        headers={
            **common,
            "Content-Length": str(end - start + 1),
            "Content-Range": f"bytes {start}-{end}/{stored.size}",
        },
    )
