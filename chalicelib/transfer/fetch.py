"""Fetch an envelope from a presigned S3 link, and only from there (no server-side request forgery).

A link is accepted only when it is, once parsed, a presigned GET of an object of the transfer bucket itself under
the prefixes meant for links (:data:`LINK_PREFIXES`: ``inbox/``, where files to import are dropped, and ``links/``,
where a file waits to be imported by link only, no S3 event watching it). Never another bucket on the same
endpoint, never a key elsewhere in the bucket (``outbox/``, ``clients/``, ``autoid/`` ...), never a path S3 would
not read as an object (the local AWS serves more than S3 on its port):

- the origin is the endpoint this service's own S3 client presigns for (so the check follows the configured
  endpoint, on AWS and locally alike), plus, on AWS, the regional names of that endpoint; the bucket is then
  read from the host (virtual-hosted, ``https://<bucket>.s3.<region>.amazonaws.com/<key>``) or from the first
  path segment (path-style, ``https://s3.<region>.amazonaws.com/<bucket>/<key>``, and the local endpoint's form);
- the path is percent-decoded once and must be in the canonical form S3's presigners write (so no ``%2F``,
  ``%2e%2e`` or lowercase escapes can mean one thing here and another to the HTTP client or to S3), with no
  empty, ``.`` or ``..`` segment; bucket and key are checked on that decoded path;
- the query must be a SigV4 presign for S3 (algorithm, credential scope ``.../s3/aws4_request``, date, expiry,
  ``host`` as the only signed header, signature), nothing else but a session token or a version id;
- the URL fetched is rebuilt from the checked parts, never the caller's string, so no parser differential
  between this check and the HTTP client can redirect the request. No redirects are followed, and at most the
  envelope size limit is read.

Every refusal is 400 ``link_refused``; its ``reason`` (for logs and tests) names the check, never the URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from chalicelib.aws.s3 import ObjectStore
from chalicelib.envelope import MAX_ENVELOPE_BYTES
from chalicelib.errors import PayloadTooLarge, ServiceUnavailable
from chalicelib.transfer.exceptions import LinkRefused

__all__ = ["LINK_PREFIXES", "Endpoint", "LinkRefused", "LinkTarget", "endpoint_of", "fetch_presigned", "parse_link"]

TIMEOUT_SECONDS = 5.0
LINK_PREFIXES = ("inbox/", "links/")
MAX_URL_CHARS = 8192
MAX_KEY_BYTES = 1024  # S3's limit for a key
_PROBE = "origin-probe"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_REQUIRED = frozenset(
    {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"}
)
_OPTIONAL = frozenset({"X-Amz-Security-Token", "versionId", "x-id"})
_PRESIGN_VALUES = {
    "X-Amz-Algorithm": re.compile(r"AWS4-HMAC-SHA256"),
    "X-Amz-Credential": re.compile(r"[A-Za-z0-9]{1,128}/[0-9]{8}/[a-z0-9-]{1,32}/s3/aws4_request"),
    "X-Amz-Date": re.compile(r"[0-9]{8}T[0-9]{6}Z"),
    "X-Amz-Expires": re.compile(r"[0-9]{1,6}"),
    "X-Amz-SignedHeaders": re.compile(r"host"),
    "X-Amz-Signature": re.compile(r"[0-9a-f]{64}"),
    "x-id": re.compile(r"GetObject"),
}


@dataclass(frozen=True)
class Endpoint:
    """Where this service's S3 client sends requests: the scheme, the endpoint's host names (without any bucket)
    and the port."""

    scheme: str
    hosts: frozenset[str]
    port: int


@dataclass(frozen=True)
class LinkTarget:
    bucket: str
    key: str
    url: str = field(repr=False)  # the presigned URL to fetch, rebuilt from the checked parts: it grants access


def endpoint_of(s3: ObjectStore, bucket: str) -> Endpoint:
    """The endpoint, read from a link the service's own client presigns (nothing is sent anywhere)."""
    parts = urlsplit(s3.presign_get(bucket, _PROBE, expires_in=60))
    host, scheme = parts.hostname or "", parts.scheme
    if parts.path == f"/{bucket}/{_PROBE}":
        base = host
    elif host.startswith(f"{bucket}.") and parts.path == f"/{_PROBE}":
        base = host[len(bucket) + 1 :]
    else:
        raise LinkRefused("endpoint")  # a form this module does not know: accept nothing rather than guess
    hosts = {base}
    scope = dict(parse_qsl(parts.query)).get("X-Amz-Credential", "").split("/")
    region = scope[2] if len(scope) == 5 else ""
    if base.endswith(".amazonaws.com") and region:  # the same S3 endpoint under its other names
        hosts.add(f"s3.{region}.amazonaws.com")
        if region == "us-east-1":
            hosts.add("s3.amazonaws.com")
    return Endpoint(scheme, frozenset(hosts), parts.port or _DEFAULT_PORTS.get(scheme, 0))


def parse_link(url: object, endpoint: Endpoint, bucket: str) -> LinkTarget:
    """The transfer-bucket object a presigned link names, or :class:`LinkRefused` naming the failed check."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS or not url.isascii():
        raise LinkRefused("syntax")
    if not url.isprintable() or any(c in url for c in " #\\"):
        raise LinkRefused("syntax")
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        raise LinkRefused("syntax") from None
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if parts.scheme.lower() != endpoint.scheme or port != endpoint.port or parts.netloc.lower() != netloc:
        raise LinkRefused("origin")  # also refuses user:password@, and any netloc not exactly host[:port]
    segments = _path_segments(parts.path)
    if host in endpoint.hosts:  # path-style: /<bucket>/<key>
        named, key_segments = segments[0], segments[1:]
    # virtual-hosted: <bucket>.<endpoint>/<key>, only on a named endpoint (no DNS name is "<bucket>.<IP address>":
    # such a link can never be fetched, and answering it as a retryable 503 would mislead the caller).
    elif any(host == f"{bucket}.{base}" and not _is_ip_address(base) for base in endpoint.hosts):
        named, key_segments = bucket, segments
    else:
        raise LinkRefused("origin")
    key = "/".join(key_segments)
    if named != bucket:
        raise LinkRefused("bucket")
    if not key_segments or not key.startswith(LINK_PREFIXES) or len(key.encode()) > MAX_KEY_BYTES:
        raise LinkRefused("prefix")
    query = _presign_query(parts.query)
    return LinkTarget(bucket, key, f"{endpoint.scheme}://{netloc}{parts.path}?{query}")


def _path_segments(raw: str) -> list[str]:
    """The decoded path's segments; the path must be exactly as S3's presigners encode it (decoding it and
    encoding it again gives it back), so an escape cannot hide a slash or a dot segment from this check."""
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise LinkRefused("path") from None
    if not raw.startswith("/") or quote(decoded, safe="/~") != raw:
        raise LinkRefused("path")
    segments = decoded.split("/")[1:]
    if any(segment in ("", ".", "..") for segment in segments):
        raise LinkRefused("path")
    return segments


def _presign_query(raw: str) -> str:
    """A SigV4 presigned GET's query, checked and encoded again as SigV4 canonicalises it."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise LinkRefused("presign") from None
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not _REQUIRED <= set(names) <= _REQUIRED | _OPTIONAL:
        raise LinkRefused("presign")
    for name, value in pairs:
        pattern = _PRESIGN_VALUES.get(name)
        if (pattern is not None and not pattern.fullmatch(value)) or not value:
            raise LinkRefused("presign")
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)


def fetch_presigned(url: object, s3: ObjectStore, bucket: str) -> bytes:
    import urllib3

    target = parse_link(url, endpoint_of(s3, bucket), bucket)
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=TIMEOUT_SECONDS))
    try:
        response = pool.request("GET", target.url, redirect=False, preload_content=False)
    except urllib3.exceptions.HTTPError:
        raise ServiceUnavailable("The link could not be fetched; retry later.") from None
    try:
        if response.status != 200:
            raise LinkRefused("status", f"The link answered HTTP {response.status}.")
        body = response.read(MAX_ENVELOPE_BYTES + 1)
    finally:
        response.release_conn()
    if len(body) > MAX_ENVELOPE_BYTES:
        raise PayloadTooLarge("The linked file is too large.")
    return bytes(body)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
