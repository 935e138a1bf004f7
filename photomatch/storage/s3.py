"""S3-compatible storage (AWS, MinIO) through boto3, with presigned downloads and uploads."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO, cast

from photomatch.config import Settings
from photomatch.storage.base import (
    ObjectNotFound,
    PresignedUpload,
    Storage,
    content_disposition,
    validate_key,
)


class S3Storage(Storage):
    """Objects in one S3 bucket (AWS, MinIO, ...); downloads and uploads use presigned URLs."""

    supports_presigned_upload = True

    def __init__(self, bucket: str, client: Any, presign_client: Any | None = None) -> None:
        self.bucket = bucket
        self.client = client
        # Signs the URLs browsers follow; its endpoint is the public one when that differs from the
        # one the services use (compose: `minio:9000` inside, `https://s3.example.com` outside).
        # Signing makes no request, so this client never needs to reach its endpoint.
        self.presign_client = presign_client or client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        """A client for the configured endpoint; path-style addressing when an endpoint is set (MinIO)."""
        import boto3
        from botocore.config import Config

        addressing = "path" if settings.s3_endpoint_url else "auto"

        def client(endpoint_url: str | None) -> Any:
            return boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=settings.s3_region,
                aws_access_key_id=settings.s3_access_key,
                aws_secret_access_key=settings.s3_secret_key,
                config=Config(signature_version="s3v4", s3={"addressing_style": addressing}),
            )

        public = settings.s3_public_url
        return cls(settings.s3_bucket, client(settings.s3_endpoint_url), client(public) if public else None)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (dev stacks with a fresh MinIO)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            region = self.client.meta.region_name
            # us-east-1 is the one region that rejects an explicit location constraint.
            location = (
                {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            self.client.create_bucket(Bucket=self.bucket, **location)

    def put(self, key: str, data: bytes | BinaryIO, content_type: str) -> int:
        """Stream to S3; boto3's managed transfer switches to multipart for large files."""
        stream = _CountingReader(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data)
        self.client.upload_fileobj(stream, self.bucket, validate_key(key), ExtraArgs={"ContentType": content_type})
        return stream.count

    def open(self, key: str) -> BinaryIO:
        """The object's streaming body."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(key) from None
            raise
        # botocore's StreamingBody is an io.IOBase with read() and close().
        return cast(BinaryIO, response["Body"])

    def exists(self, key: str) -> bool:
        """A HEAD request."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        """S3 DELETE is already idempotent."""
        self.client.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Paginated ListObjectsV2 (S3 returns keys in lexicographic order)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Paginated ListObjectsV2 with each object's LastModified."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]

    def url_for_download(self, key: str, filename: str, expires: int) -> str:
        """A presigned GET that makes the browser save the file as `filename`."""
        params = {
            "Bucket": self.bucket,
            "Key": validate_key(key),
            "ResponseContentDisposition": content_disposition(filename),
        }
        url: str = self.presign_client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
        return url

    def presigned_upload(self, key: str, content_type: str, expires: int) -> PresignedUpload:
        """A presigned PUT; the client must send the same Content-Type, which the signature covers."""
        params = {"Bucket": self.bucket, "Key": validate_key(key), "ContentType": content_type}
        url = self.presign_client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        return PresignedUpload(url=url, headers={"Content-Type": content_type})


class _CountingReader(io.RawIOBase):
    """Wraps a binary stream and counts the bytes read through it (the size of a streamed upload)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        chunk = self.inner.read(-1 if size is None else size)
        self.count += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
