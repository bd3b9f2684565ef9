"""OpenID Connect Discovery 1.0 document and JWKS for the token service.

The issuer comes from configuration, never from the request's Host header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.config import Settings
from chalicelib.tokens.claims import FLAT_NAMES
from chalicelib.tokens.keyring import SigningKey

__all__ = ["CLAIMS_SUPPORTED", "claims_supported", "discovery_document", "jwks_document", "openid_configuration"]

REGISTERED_CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti")
CLAIMS_SUPPORTED = REGISTERED_CLAIMS + tuple(FLAT_NAMES.values())  # the flat layout's


def claims_supported(layout: str, namespace: str) -> tuple[str, ...]:
    """What ``claims_supported`` lists for a claims layout (chalicelib/tokens/claims.py)."""
    return CLAIMS_SUPPORTED if layout == "flat" else (*REGISTERED_CLAIMS, namespace)


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, Any]:
    return {"keys": [dict(key.jwk) for key in keys]}


def openid_configuration(
    issuer: str, algorithms: Iterable[str], claims: Iterable[str] = CLAIMS_SUPPORTED
) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(dict.fromkeys(algorithms)) or ["RS256"],
        "claims_supported": list(claims),
    }


def discovery_document(settings: Settings) -> dict[str, Any]:
    """The deployment's discovery document: its issuer, its enabled algorithms, its claims layout."""
    claims = claims_supported(settings.token_claims, settings.token_claims_namespace)
    return openid_configuration(settings.issuer, settings.token_algorithms, claims)
