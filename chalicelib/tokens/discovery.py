"""OpenID Connect Discovery 1.0 document and JWKS for the token service.

The issuer comes from configuration, never from the request's Host header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.tokens.keyring import SigningKey

__all__ = ["CLAIMS_SUPPORTED", "jwks_document", "openid_configuration"]

CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "aws_account",
    "aws_arn",
    "aws_principal_type",
    "aws_principal_id",
    "aws_session_name",
    "aws_org_id",
)


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, Any]:
    return {"keys": [dict(key.jwk) for key in keys]}


def openid_configuration(issuer: str, algorithms: Iterable[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(set(algorithms)) or ["RS256"],
        "claims_supported": list(CLAIMS_SUPPORTED),
    }
