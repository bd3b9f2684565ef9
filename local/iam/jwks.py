"""Where the embedded STS finds an OIDC issuer's signing keys (what AWS STS fetches from the internet).

AWS STS reads ``{iss}/.well-known/openid-configuration``, follows its ``jwks_uri`` and verifies the token with
the key its ``kid`` names (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM"; re:Post
"How can I resolve the AWS STS AssumeRoleWithWebIdentity API call error InvalidIdentityToken"). The embedded
AWS must never reach the internet, so the default resolver only talks to loopback addresses (the local stack's
issuer is ``http://127.0.0.1:<port>``), with short timeouts, bounded documents, no redirects, no proxies, and a
brief cache. A URL is only fetched once its host is a loopback IP literal by every parser that reads it (the
standard library's and urllib3's, which requests connects with: they disagree on ``http://a\\@127.0.0.1/``), and
then rebuilt from the checked address, so the connection can go nowhere else. Tests plug in their own resolver
(any callable ``issuer -> JWKS document``).
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.util import parse_url

__all__ = ["IdpUnreachable", "JwksResolver", "KeysUnavailable", "LoopbackJwksResolver"]

MAX_DOCUMENT_BYTES = 64 * 1024
# Never in a URL the resolver fetches: a backslash (a path separator to some parsers, not to others), whitespace
# and control characters, a fragment.
_AMBIGUOUS = re.compile(r"[\\#\x00-\x20\x7f]")

JwksResolver = Callable[[str], Mapping[str, Any]]
"""``issuer -> JWKS document``; raises :class:`KeysUnavailable` or :class:`IdpUnreachable`."""


class KeysUnavailable(Exception):
    """The issuer answered, but no usable key set came of it (STS: InvalidIdentityToken, "Couldn't retrieve
    verification key from your identity provider")."""


class IdpUnreachable(Exception):
    """The issuer could not be reached at all (STS: IDPCommunicationError, which SDKs retry)."""


class LoopbackJwksResolver:
    """OIDC discovery then JWKS over HTTP(S), from loopback IP literals only, cached for ``ttl`` seconds.

    ``refresh`` forgets one issuer's cached keys: STS looks again when a token names a ``kid`` it has not seen
    (a rotation), at most once per ``min_refresh`` seconds so a stream of forged kids cannot hammer the issuer.
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        ttl: float = 30.0,
        min_refresh: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def __call__(self, issuer: str) -> Mapping[str, Any]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(issuer)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        jwks = self._fetch(issuer)
        with self._lock:
            self._cache[issuer] = (now, jwks)
        return jwks

    def refresh(self, issuer: str) -> bool:
        """Drop the cached keys of ``issuer`` unless they are younger than ``min_refresh``; True if dropped."""
        with self._lock:
            cached = self._cache.get(issuer)
            if cached is not None and self._clock() - cached[0] < self._min_refresh:
                return False
            self._cache.pop(issuer, None)
            return True

    def _fetch(self, issuer: str) -> Mapping[str, Any]:
        configuration = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if configuration.get("issuer") != issuer:
            raise KeysUnavailable("the discovery document names another issuer")
        jwks = self._get_json(str(configuration.get("jwks_uri", "")))
        if not isinstance(jwks.get("keys"), list):
            raise KeysUnavailable("the JWKS has no keys list")
        return jwks

    def _get_json(self, url: str) -> dict[str, Any]:
        target = _loopback_url(url)
        with requests.Session() as session:
            session.trust_env = False  # no proxy from the environment: the request stays on this machine
            try:
                response = session.get(target, timeout=self._timeout, allow_redirects=False, stream=True)
                with response:
                    body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
            except requests.RequestException as error:
                raise IdpUnreachable(f"{url}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise KeysUnavailable(f"{url} answered HTTP {response.status_code}")
        if len(body) > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise KeysUnavailable(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise KeysUnavailable(f"{url} did not answer a JSON object")
        return document


def _loopback_url(url: str) -> str:
    """``url`` rebuilt from its checked parts, if it is http(s) to an IP literal in 127.0.0.0/8 or ::1 (no name
    resolution, so nothing can point elsewhere) and reads the same to urlsplit and to urllib3 (what requests
    connects with); no userinfo, backslash, whitespace or fragment. Raise :class:`KeysUnavailable` otherwise."""
    refused = KeysUnavailable(f"the embedded STS only fetches keys from loopback addresses, not {url!r}")
    if _AMBIGUOUS.search(url):
        raise refused
    try:
        parts = urlsplit(url)
        port = parts.port
        address = ipaddress.ip_address(parts.hostname or "")
        theirs = parse_url(url)
    except ValueError:  # urllib3's LocationParseError is one too
        raise refused from None
    if parts.scheme not in {"http", "https"} or not address.is_loopback or "@" in parts.netloc:
        raise refused
    host = f"[{address}]" if address.version == 6 else str(address)
    ours = (parts.scheme, None, host, port, parts.path or None, parts.query or None, None)
    if (theirs.scheme, theirs.auth, theirs.host, theirs.port, theirs.path, theirs.query, theirs.fragment) != ours:
        raise refused
    rebuilt = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "") + parts.path
    return rebuilt + (f"?{parts.query}" if parts.query else "")
