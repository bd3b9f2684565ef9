"""Token service: IAM identity -> signed JWT (KMS or envelope keys), OIDC discovery, scheduled key rotation."""

from __future__ import annotations

from chalicelib.tokens.exceptions import (
    InvalidAudience,
    InvalidTtl,
    KeysNotReady,
    OutsideOrganization,
    RotationRefused,
    RotationTooSoon,
    TokenRejected,
    UnsupportedPrincipal,
)
from chalicelib.tokens.service import TokenService
from chalicelib.tokens.verify import TokenVerifier

__all__ = [
    "InvalidAudience",
    "InvalidTtl",
    "KeysNotReady",
    "OutsideOrganization",
    "RotationRefused",
    "RotationTooSoon",
    "TokenRejected",
    "TokenService",
    "TokenVerifier",
    "UnsupportedPrincipal",
]
