"""Relying-party side: find an issuer's keys through OIDC discovery and verify its tokens."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import requests

from chalicelib.tokens.verify import TokenVerifier

__all__ = ["DiscoveryError", "discover_verifier"]

MAX_DOCUMENT_BYTES = 64 * 1024


class DiscoveryError(Exception):
    pass


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise DiscoveryError(f"refusing a non-https URL: {url}")
    response = requests.get(url, timeout=timeout, allow_redirects=False)
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"{url} answered HTTP {response.status_code}")
    document = response.json()
    if not isinstance(document, dict):
        raise DiscoveryError(f"{url} did not return a JSON object")
    return document


def discover_verifier(issuer: str, *, audiences: Collection[str] | None = None, timeout: float = 10) -> TokenVerifier:
    """A verifier for ``issuer``'s tokens. The discovery document must name exactly this issuer, and its
    JWKS must be served from the issuer's own origin."""
    configuration = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout)
    if configuration.get("issuer") != issuer:
        raise DiscoveryError("the discovery document names another issuer")
    jwks_uri = str(configuration.get("jwks_uri", ""))
    if urlsplit(jwks_uri)[:2] != urlsplit(issuer)[:2]:
        raise DiscoveryError("the JWKS is not served from the issuer's origin")
    return TokenVerifier(_get_json(jwks_uri, timeout), issuer=issuer, audiences=audiences)
