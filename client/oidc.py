"""Relying-party side: find an issuer's keys through OIDC discovery and verify its tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.verify import TokenVerifier
from client.aws_call import CallError, answer
from client.errors import CliError, Exit
from client.failures import safe_url
from client.http import bounded_request

__all__ = ["DiscoveryError", "discover_verifier", "explain_rejection"]

MAX_DOCUMENT_BYTES = 64 * 1024
_ISSUER_HINT = "is --issuer the issuer's URL ($CREDPORT_ISSUER)?"


class DiscoveryError(CliError):
    """The issuer's discovery document or JWKS cannot be had, or does not fit the issuer: not a credport issuer at
    this URL (a configuration problem), unless the answer was a server failure (CallError's own code)."""

    exit_code = Exit.CONFIG


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise DiscoveryError(f"refusing a non-https URL (http only for localhost): {safe_url(url)}", Exit.USAGE)
    try:
        response = bounded_request("GET", url, timeout=timeout, max_bytes=MAX_DOCUMENT_BYTES, hint=_ISSUER_HINT)
        if response.status_code != 200:
            raise CallError.of(response, hint=_ISSUER_HINT)
        return answer(response, hint=_ISSUER_HINT)
    except CallError as error:
        raise DiscoveryError(str(error), error.exit_code) from None


def discover_verifier(issuer: str, *, audiences: Collection[str] | None = None, timeout: float = 10) -> TokenVerifier:
    """A verifier for ``issuer``'s tokens. The discovery document must name exactly this issuer, and its
    JWKS must be served from the issuer's own origin."""
    configuration = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout)
    named = configuration.get("issuer")
    if named != issuer:
        raise DiscoveryError(
            f"the discovery document at {safe_url(issuer)} names the issuer {_shown(named)}, not --issuer"
            f" {_shown(issuer)} (they must be equal, character for character)"
        )
    jwks_uri = str(configuration.get("jwks_uri", ""))
    if urlsplit(jwks_uri)[:2] != urlsplit(issuer)[:2]:
        raise DiscoveryError(f"the JWKS ({safe_url(jwks_uri)}) is not served from the issuer's origin")
    return TokenVerifier(_get_json(jwks_uri, timeout), issuer=issuer, audiences=audiences)


def explain_rejection(token: str, rejected: TokenRejected, *, issuer: str, audience: str | None) -> str:
    """Why the token is invalid, for its holder: the check that refused it and, when the token names another issuer
    or audience than the one asked for, both (a token's ``iss`` and ``aud`` are not secret; read here unverified,
    only to say which)."""
    because = f"refused by the {rejected.check} check" + (f": {rejected.reason}" if rejected.reason else "")
    claims = _unverified_claims(token)
    found_issuer, found_audience = claims.get("iss"), claims.get("aud")
    if found_issuer is not None and found_issuer != issuer:
        return f"invalid token: issued by {_shown(found_issuer)}, not by --issuer {_shown(issuer)} ({because})"
    if rejected.check == "aud" and audience is not None and not _holds(found_audience, audience):
        return f"invalid token: {_audiences(found_audience)}, not --aud {_shown(audience)} ({because})"
    return f"invalid token ({because})"


def _holds(found: object, audience: str) -> bool:
    """Whether a token's ``aud`` (a string, or an array of them: RFC 7519, 4.1.3) names ``audience``."""
    return found == audience or (isinstance(found, list) and audience in found)


def _audiences(found: object, limit: int = 200) -> str:
    """A token's ``aud`` for a reader: ``its audience is 'a'``, or ``its audiences are 'a', 'b'``; a long array is
    cut at whole entries and says how many it holds (the line stays readable, and one_line bounds it anyway)."""
    if not isinstance(found, list):
        return f"its audience is {_shown(found)}"
    if len(found) < 2:
        return f"its audience is [{_shown(found[0])}]" if found else "its audience is an empty array"
    shown: list[str] = []
    for entry in found:
        text = _shown(entry)
        if shown and len(", ".join([*shown, text])) > limit:
            return f"its audiences are {', '.join(shown)}, … ({len(found)} in all)"
        shown.append(text)
    return f"its audiences are {', '.join(shown)}"


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return {}
    return claims if isinstance(claims, dict) else {}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
