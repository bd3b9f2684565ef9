"""Token service: IAM identity -> signed JWT (KMS or envelope keys), OIDC discovery, scheduled key rotation."""

from __future__ import annotations

from chalicelib.tokens.exceptions import (
    InvalidAlgorithm,
    InvalidAudience,
    InvalidTag,
    InvalidTtl,
    KeysNotReady,
    OutsideOrganization,
    RotationRefused,
    RotationTooSoon,
    TokenRejected,
    TokenTooLarge,
    UnsupportedPrincipal,
)
from chalicelib.tokens.policy import MintRequest, TokenPolicy
from chalicelib.tokens.policy_errors import (
    AlgorithmNotAllowed,
    AudienceNotAllowed,
    PolicyRefusal,
    TagNotAllowed,
    TokenPolicyInvalid,
    TtlNotAllowed,
)
from chalicelib.tokens.request import InvalidParameter
from chalicelib.tokens.service import TokenService
from chalicelib.tokens.verify import TokenVerifier

__all__ = [
    "AlgorithmNotAllowed",
    "AudienceNotAllowed",
    "InvalidAlgorithm",
    "InvalidAudience",
    "InvalidParameter",
    "InvalidTag",
    "InvalidTtl",
    "KeysNotReady",
    "MintRequest",
    "OutsideOrganization",
    "PolicyRefusal",
    "RotationRefused",
    "RotationTooSoon",
    "TagNotAllowed",
    "TokenPolicy",
    "TokenPolicyInvalid",
    "TokenRejected",
    "TokenService",
    "TokenTooLarge",
    "TokenVerifier",
    "TtlNotAllowed",
    "UnsupportedPrincipal",
]
