"""S3 adapter: bytes in, bytes out."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.aws.errors import AwsNotFound, AwsUnavailable, aws_call
from chalicelib.errors import PayloadTooLarge

__all__ = ["MIN_LINK_SECONDS", "ObjectInfo", "ObjectStore", "PresignedLink", "StoredObject"]

# A link that would die within a minute (signing credentials at their very end) is not worth sending.
MIN_LINK_SECONDS = 60


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    version_id: str | None
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)


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

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
        """The object's bytes; :class:`PayloadTooLarge` before reading more than ``max_bytes``."""
        with aws_call("s3", "GetObject"):
            response = self._client.get_object(Bucket=bucket, Key=key)
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

    def purge(self, bucket: str, key: str) -> int:
        """Delete every version (and delete marker) of exactly ``key``: on a versioned bucket a plain delete
        only hides an object. Returns how many versions were removed."""
        paginator = self._client.get_paginator("list_object_versions")
        removed = 0
        with aws_call("s3", "ListObjectVersions"):
            pages = list(paginator.paginate(Bucket=bucket, Prefix=key))
        for page in pages:
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if entry["Key"] != key:
                    continue
                with aws_call("s3", "DeleteObject"):
                    self._client.delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
                removed += 1
        return removed

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

    def presign_link(self, bucket: str, key: str, *, lifetime: int) -> PresignedLink:
        """A GET link for someone else, and the moment it stops working at the latest.

        A presigned URL dies when the credentials that signed it expire, even before its X-Amz-Expires (S3 User
        Guide, "Sharing objects with presigned URLs"). So the link lives ``lifetime`` seconds, cut at the signing
        credentials' expiry when botocore knows it (credentials from STS, a container or instance profile, an SSO
        or assume-role profile, ``AWS_CREDENTIAL_EXPIRATION``). Lambda hands its execution-role credentials over
        in environment variables without one: for those, and for long-term keys, ``lifetime`` alone applies, which
        the settings keep within an hour (CREDPORT_TRANSFER_LINK_TTL)."""
        credentials = self._client._request_signer._credentials  # what botocore presigns with; no public accessor
        if credentials is not None and hasattr(credentials, "get_frozen_credentials"):
            credentials.get_frozen_credentials()  # refreshes first if they are near their end
        # Read before signing: a refresh in between signs with later-expiring credentials, never earlier ones.
        expiry = _expiry(credentials)
        issued = int(time.time())  # <= the X-Amz-Date botocore stamps a moment later
        expires_at = issued + lifetime if expiry is None else min(issued + lifetime, int(expiry))
        if expires_at - issued < MIN_LINK_SECONDS:
            raise AwsUnavailable("s3", "PresignGetObject", "CredentialsExpiring", retry_after=30)
        return PresignedLink(self.presign_get(bucket, key, expires_in=expires_at - issued), expires_at)


def _expiry(credentials: Any) -> float | None:
    """When botocore's credentials expire (epoch seconds), if it knows. RefreshableCredentials keeps it in
    ``_expiry_time`` (an aware datetime); botocore offers no public accessor, and plain Credentials have none."""
    expiry = getattr(credentials, "_expiry_time", None)
    return expiry.timestamp() if isinstance(expiry, datetime) else None


def _info(key: str, response: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(response.get("ContentLength", 0)),
        etag=str(response.get("ETag", "")).strip('"'),
        version_id=response.get("VersionId"),
        content_type=str(response.get("ContentType", "")),
        metadata=dict(response.get("Metadata", {})),
    )
