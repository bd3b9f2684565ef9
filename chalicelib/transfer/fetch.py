"""Fetch an envelope from a presigned S3 link, and only from there (no server-side request forgery).

The only host accepted is the one this service's own S3 client presigns links for (so the check follows
the configured endpoint, on AWS and locally alike); no redirects are followed, and at most the envelope
size limit is read.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chalicelib.aws.s3 import ObjectStore
from chalicelib.envelope import MAX_ENVELOPE_BYTES
from chalicelib.errors import BadRequest, PayloadTooLarge, ServiceUnavailable

__all__ = ["LinkRefused", "fetch_presigned"]

TIMEOUT_SECONDS = 5.0


class LinkRefused(BadRequest):
    code = "link_refused"
    default_message = "The link must be a presigned link to the transfer bucket's S3 endpoint."


def allowed_origin(s3: ObjectStore, bucket: str) -> tuple[str, str]:
    parts = urlsplit(s3.presign_get(bucket, "origin-probe", expires_in=60))
    return parts.scheme, parts.netloc


def fetch_presigned(url: str, s3: ObjectStore, bucket: str) -> bytes:
    import urllib3

    parts = urlsplit(url)
    if (parts.scheme, parts.netloc) != allowed_origin(s3, bucket) or parts.username or parts.password:
        raise LinkRefused()
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=TIMEOUT_SECONDS))
    try:
        response = pool.request("GET", url, redirect=False, preload_content=False)
    except urllib3.exceptions.HTTPError:
        raise ServiceUnavailable("The link could not be fetched; retry later.") from None
    try:
        if response.status != 200:
            raise LinkRefused(f"The link answered HTTP {response.status}.")
        body = response.read(MAX_ENVELOPE_BYTES + 1)
    finally:
        response.release_conn()
    if len(body) > MAX_ENVELOPE_BYTES:
        raise PayloadTooLarge("The linked file is too large.")
    return bytes(body)
