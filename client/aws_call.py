"""Call a credport API signed with the caller's own AWS credentials (botocore's SigV4 signer)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

__all__ = ["CallError", "region_of", "signed_request"]

_EXECUTE_API = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class CallError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        code = body.get("error") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {code or ''} {message or body}".strip())
        self.status, self.body = status, body


def region_of(endpoint: str, default: str | None) -> str:
    """The region to scope the signature to: the API's own, from its hostname, else the profile's."""
    match = _EXECUTE_API.match(urlsplit(endpoint).hostname or "")
    region = match.group(1) if match else default
    if not region:
        raise ValueError("no region: pass --region, or set one in the AWS profile")
    return region


def signed_request(
    method: str,
    endpoint: str,
    path: str,
    *,
    profile: str | None = None,
    region: str | None = None,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 10,
) -> Any:
    """Send a SigV4-signed request and return the decoded JSON body; raise :class:`CallError`."""
    import boto3.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session(profile_name=profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise ValueError("no AWS credentials found (profile, environment or instance role)")
    url = endpoint.rstrip("/") + path + (("?" + urlencode(dict(query))) if query else "")
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    SigV4Auth(
        credentials.get_frozen_credentials(), "execute-api", region_of(endpoint, region or session.region_name)
    ).add_auth(request)
    response = requests.request(method, url, headers=dict(request.headers), data=body, timeout=timeout)
    try:
        decoded = response.json()
    except ValueError:
        decoded = response.text
    if response.status_code >= 400:
        raise CallError(response.status_code, decoded)
    return decoded
