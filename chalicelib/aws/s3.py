"""S3 adapter: bytes in, bytes out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.errors import AwsNotFound, aws_call
from chalicelib.errors import PayloadTooLarge

__all__ = ["ListedVersion", "ObjectInfo", "ObjectStore", "PresignedLink", "StoredObject"]

# A link that would die within a minute (signing credentials at their very end) is not worth sending.


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    version_id: str | None
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListedVersion:
    version_id: str
    size: int
    delete_marker: bool


@dataclass(frozen=True)
class PresignedLink:
    url: str = field(repr=False)  # it grants access: kept out of reprs and logs
    expires_at: int  # epoch seconds: the link never works past it (the moment to advertise)


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    body: bytes = field(repr=False)


class ObjectStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get(
        self, bucket: str, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """The object's bytes (exactly ``version_id``'s when given: s3:GetObjectVersion, else the latest);
        :class:`PayloadTooLarge` before reading more than ``max_bytes``."""
        args = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        with aws_call("s3", "GetObject"):
            response = self._client.get_object(**args)
        info = _info(key, response)
        if max_bytes is not None and info.size > max_bytes:
            response["Body"].close()
            raise PayloadTooLarge(f"The object is larger than {max_bytes} bytes.")
        with aws_call("s3", "GetObject"), response["Body"] as stream:
            body = stream.read()
        return StoredObject(info=info, body=body)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            with aws_call("s3", "HeadObject"):
                response = self._client.head_object(Bucket=bucket, Key=key)
        except AwsNotFound:
            return None
        return _info(key, response)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        kms_key_id: str | None = None,
        cache_control: str | None = None,
    ) -> str | None:
        """Store ``body``; returns the new version id (None on an unversioned bucket)."""
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "Metadata": dict(metadata or {}),
        }
        if cache_control:
            args["CacheControl"] = cache_control
        if kms_key_id:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
        with aws_call("s3", "PutObject"):
            response = self._client.put_object(**args)
        version_id = response.get("VersionId")
        return str(version_id) if version_id else None

    def copy(self, bucket: str, source_key: str, target_key: str, *, kms_key_id: str | None = None) -> None:
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": target_key,
            "CopySource": {"Bucket": bucket, "Key": source_key},
        }
        if kms_key_id:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
        with aws_call("s3", "CopyObject"):
            self._client.copy_object(**args)

    def delete(self, bucket: str, key: str) -> None:
        with aws_call("s3", "DeleteObject"):
            self._client.delete_object(Bucket=bucket, Key=key)

    def purge(
        self, bucket: str, key: str, *, before_delete: Callable[[list[ListedVersion]], None] | None = None
    ) -> int:
        """Delete every version (and delete marker) of exactly ``key``: on a versioned bucket a plain delete
        only hides an object. ``before_delete`` is given every version found, before any is deleted (so a
        caller can record what it is about to remove). Returns how many versions were removed."""
        paginator = self._client.get_paginator("list_object_versions")
        with aws_call("s3", "ListObjectVersions"):
            pages = list(paginator.paginate(Bucket=bucket, Prefix=key))
        found = [
            ListedVersion(str(entry["VersionId"]), int(entry.get("Size", 0)), marker)
            for page in pages
            for marker, entries in ((False, page.get("Versions", [])), (True, page.get("DeleteMarkers", [])))
            for entry in entries
            if entry["Key"] == key
        ]
        if before_delete is not None and found:
            before_delete(found)
        for version in found:
            with aws_call("s3", "DeleteObject"):
                self._client.delete_object(Bucket=bucket, Key=key, VersionId=version.version_id)
        return len(found)

    def move(self, bucket: str, source_key: str, target_key: str, *, kms_key_id: str | None = None) -> None:
        """Copy then delete: a crash in between leaves both copies, never neither."""
        self.copy(bucket, source_key, target_key, kms_key_id=kms_key_id)
        self.delete(bucket, source_key)

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        with aws_call("s3", "ListObjectsV2"):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def presign_get(self, bucket: str, key: str, *, expires_in: int) -> str:
        with aws_call("s3", "PresignGetObject"):
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        return url


def _info(key: str, response: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(response.get("ContentLength", 0)),
        etag=str(response.get("ETag", "")).strip('"'),
        version_id=response.get("VersionId"),
        content_type=str(response.get("ContentType", "")),
        metadata=dict(response.get("Metadata", {})),
    )
