"""The object-storage backend for S3 and S3-compatible services (Supabase Storage, MinIO, R2).

Blobs are objects named by their backend path in ``FRONTDESK_S3_BUCKET``. Limits cited below
are from Amazon S3's "multipart upload limits" page; S3-compatible services document the same
or looser ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from frontdesk.config import Settings
from frontdesk.storage.backends.base import (
    BlobNotFound,
    BlobTooLarge,
    StorageUnavailable,
    WrittenBlob,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

log = structlog.get_logger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB
# Every part but the last must be 5 MiB to 5 GiB, and an upload has at most 10,000 parts.
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * GIB
MAX_PARTS = 10_000
# CopyObject copies at most 5 GiB in one request, so larger objects are copied in parts.
MAX_SINGLE_COPY_BYTES = 5 * GIB
# A SigV4 presigned URL is valid for at most seven days.
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
READ_CHUNK_BYTES = 64 * 1024

CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
# botocore's "standard" retry mode retries throttling, 5xx and connection errors with
# exponential backoff; max_attempts counts the first try.
MAX_ATTEMPTS = 4

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def _error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "error")
    return type(error).__name__


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING_CODES


def _content_disposition(filename: str) -> str:
    """Build an ``attachment`` Content-Disposition with an ASCII fallback (RFC 6266)."""
    fallback = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename
    ).strip()
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


class S3Backend:
    """Store blobs in one S3 bucket through a single reused aiobotocore client."""

    name = "s3"

    def __init__(
        self,
        settings: Settings,
        *,
        list_page_size: int = 1000,
        max_single_copy_bytes: int = MAX_SINGLE_COPY_BYTES,
    ) -> None:
        if not settings.s3_bucket:
            raise ValueError("FRONTDESK_S3_BUCKET is required when FRONTDESK_STORAGE_BACKEND=s3")
        if (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
            raise ValueError(
                "set both FRONTDESK_S3_ACCESS_KEY_ID and FRONTDESK_S3_SECRET_ACCESS_KEY, or "
                "neither to use the default AWS credential chain"
            )
        part_bytes = settings.s3_multipart_part_bytes
        if not MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
            raise ValueError(
                f"FRONTDESK_S3_MULTIPART_PART_BYTES is {part_bytes}, but S3 requires parts of "
                f"{MIN_PART_BYTES} to {MAX_PART_BYTES} bytes"
            )
        if not 1 <= list_page_size <= 1000:
            raise ValueError(
                f"list_page_size is {list_page_size}, but S3 lists 1 to 1000 keys a page"
            )
        self._settings = settings
        self._bucket: str = settings.s3_bucket
        self._part_bytes = part_bytes
        self._list_page_size = list_page_size
        self._max_single_copy_bytes = max_single_copy_bytes
        self._exit_stack = contextlib.AsyncExitStack()
        self._client_instance: S3Client | None = None
        self._client_lock = asyncio.Lock()

    async def _client(self) -> S3Client:
        """Return the shared client, creating it on first use."""
        async with self._client_lock:
            if self._client_instance is None:
                self._client_instance = await self._create_client()
            return self._client_instance

    async def _create_client(self) -> S3Client:
        settings = self._settings
        config = AioConfig(
            signature_version="s3v4",
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            s3={"addressing_style": "path" if settings.s3_force_path_style else "virtual"},
            # botocore 1.36 began sending CRC checksum headers on every upload, which several
            # S3-compatible services reject (boto3's "S3 default integrity change"
            # announcement). Send them only where an operation requires them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        secret = settings.s3_secret_access_key
        creator = AioSession().create_client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        client: S3Client = await self._exit_stack.enter_async_context(creator)
        return client

    async def close(self) -> None:
        self._client_instance = None
        await self._exit_stack.aclose()

    def _part_size_for(self, max_bytes: int) -> int:
        """Return the configured part size, raised so that ``max_bytes`` fits in 10,000 parts."""
        return max(self._part_bytes, math.ceil(max_bytes / MAX_PARTS))

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, max_bytes: int, content_type: str
    ) -> WrittenBlob:
        """Stream to one PutObject, or to a multipart upload once the data passes one part.

        Every part but the last has exactly the same size, because users report that
        Cloudflare R2 rejects multipart uploads with unequal parts. The upload is aborted on
        any failure, so S3 keeps neither the object nor the uploaded parts.
        """
        client = await self._client()
        part_bytes = self._part_size_for(max_bytes)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(f"the stream passed max_bytes={max_bytes}")
                digest.update(chunk)
                buffer += chunk
                # Keep the buffer above one part until the stream ends, so a stream of
                # exactly one part is a single PutObject and the last part is never empty.
                while len(buffer) > part_bytes:
                    if upload_id is None:
                        created = await client.create_multipart_upload(
                            Bucket=self._bucket, Key=path, ContentType=content_type
                        )
                        upload_id = created["UploadId"]
                    part = bytes(buffer[:part_bytes])
                    del buffer[:part_bytes]
                    parts.append(await self._upload_part(client, path, upload_id, parts, part))

            if upload_id is None:
                await client.put_object(
                    Bucket=self._bucket, Key=path, Body=bytes(buffer), ContentType=content_type
                )
            else:
                parts.append(await self._upload_part(client, path, upload_id, parts, buffer))
                await client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=path,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException as exc:
            if upload_id is not None:
                await self._abort(client, path, upload_id)
            if isinstance(exc, BotoCoreError | ClientError):
                log.error("storage.s3.write_failed", path=path, error=repr(exc))
                raise StorageUnavailable(
                    f"The file store did not accept the upload ({_error_code(exc)}); try again "
                    "later, and if it keeps failing, check the S3 settings.",
                ) from exc
            raise
        return WrittenBlob(size=size, sha256=digest.hexdigest())

    async def check_ready(self) -> None:
        """Raise StorageUnavailable unless the bucket exists and these credentials reach it."""
        client = await self._client()
        try:
            await client.head_bucket(Bucket=self._bucket)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise StorageUnavailable(
                f"S3 bucket '{self._bucket}' cannot be used ({_error_code(exc)}): check "
                "FRONTDESK_S3_BUCKET, FRONTDESK_S3_ENDPOINT_URL and the access keys, and create "
                "the bucket if it does not exist."
            ) from exc

    async def _upload_part(
        self,
        client: S3Client,
        path: str,
        upload_id: str,
        parts: list[CompletedPartTypeDef],
        data: bytes | bytearray,
    ) -> CompletedPartTypeDef:
        number = len(parts) + 1
        response = await client.upload_part(
            Bucket=self._bucket, Key=path, UploadId=upload_id, PartNumber=number, Body=bytes(data)
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def _abort(self, client: S3Client, path: str, upload_id: str) -> None:
        try:
            # Shielded so that a cancelled write (a client that disconnects) still aborts.
            await asyncio.shield(
                client.abort_multipart_upload(Bucket=self._bucket, Key=path, UploadId=upload_id)
            )
        except (BotoCoreError, ClientError, OSError, TimeoutError) as exc:
            # The parts stay stored, and billed, until a lifecycle rule removes them.
            log.error("storage.s3.abort_failed", path=path, upload_id=upload_id, error=repr(exc))
        else:
            log.info("storage.s3.upload_aborted", path=path, upload_id=upload_id)

    async def read(
        self, path: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        client = await self._client()
        extra: dict[str, Any] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = await client.get_object(Bucket=self._bucket, Key=path, **extra)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(path) from exc
            raise
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                yield chunk

    async def size(self, path: str) -> int:
        client = await self._client()
        try:
            response = await client.head_object(Bucket=self._bucket, Key=path)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(path) from exc
            raise
        return response["ContentLength"]

    async def delete(self, path: str) -> None:
        client = await self._client()
        try:
            # S3 returns 204 for a missing key, and some compatible services return 404.
            await client.delete_object(Bucket=self._bucket, Key=path)
        except ClientError as exc:
            if not _is_missing(exc):
                raise

    async def copy(self, source: str, destination: str) -> None:
        client = await self._client()
        try:
            head = await client.head_object(Bucket=self._bucket, Key=source)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(source) from exc
            raise
        copy_source: CopySourceTypeDef = {"Bucket": self._bucket, "Key": source}
        size = head["ContentLength"]
        if size <= self._max_single_copy_bytes:
            try:
                await client.copy_object(
                    Bucket=self._bucket, Key=destination, CopySource=copy_source
                )
            except ClientError as exc:
                if _is_missing(exc):
                    raise BlobNotFound(source) from exc
                raise
            return
        await self._copy_in_parts(client, copy_source, destination, size, head["ContentType"])

    async def _copy_in_parts(
        self,
        client: S3Client,
        copy_source: CopySourceTypeDef,
        destination: str,
        size: int,
        content_type: str,
    ) -> None:
        """Copy an object too large for CopyObject with UploadPartCopy, all or nothing."""
        part_bytes = self._part_size_for(size)
        created = await client.create_multipart_upload(
            Bucket=self._bucket, Key=destination, ContentType=content_type
        )
        upload_id = created["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        try:
            for offset in range(0, size, part_bytes):
                last = min(offset + part_bytes, size) - 1
                number = len(parts) + 1
                response = await client.upload_part_copy(
                    Bucket=self._bucket,
                    Key=destination,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={offset}-{last}",
                )
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            await client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=destination,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(client, destination, upload_id)
            raise

    async def list_paths(self, prefix: str = "") -> AsyncIterator[str]:
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket,
            Prefix=prefix,
            PaginationConfig={"PageSize": self._list_page_size},
        )
        async for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"]

    async def presigned_download_url(
        self, path: str, *, expires_in: int, filename: str | None, content_type: str | None
    ) -> str:
        """Sign a GET URL. S3 then sends the given Content-Type and an attachment disposition."""
        _check_expiry(expires_in)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": path}
        if filename is not None:
            params["ResponseContentDisposition"] = _content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        client = await self._client()
        url: str = await client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in
        )
        return url

    async def presigned_upload_url(self, path: str, *, expires_in: int, content_type: str) -> str:
        """Sign a PUT URL. The uploader must send exactly this Content-Type header."""
        _check_expiry(expires_in)
        client = await self._client()
        url: str = await client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": path, "ContentType": content_type},
            ExpiresIn=expires_in,
        )
        return url


def _check_expiry(expires_in: int) -> None:
    if not 1 <= expires_in <= MAX_PRESIGNED_SECONDS:
        raise ValueError(
            f"expires_in is {expires_in}, but a presigned URL lasts 1 to {MAX_PRESIGNED_SECONDS} s"
        )
