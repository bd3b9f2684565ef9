"""Errors of the token service (stable codes are part of the API)."""

from __future__ import annotations

from chalicelib.errors import (
    BadRequest,
    CredportError,
    OutsideOrganization,
    ServiceUnavailable,
    UnsupportedPrincipal,
)
from chalicelib.jose import TokenRefusal

__all__ = [
    "InvalidAlgorithm",
    "InvalidAudience",
    "InvalidSigningKey",
    "InvalidTag",
    "InvalidTtl",
    "KeysNotReady",
    "NoSigningKey",
    "OutsideOrganization",
    "RotationRefused",
    "RotationTooSoon",
    "TokenRejected",
    "TokenTooLarge",
    "UnsupportedPrincipal",
]


class InvalidAudience(BadRequest):
    code = "invalid_audience"
    default_message = "The requested audience is not allowed."


class InvalidTtl(BadRequest):
    code = "invalid_ttl"


class InvalidAlgorithm(BadRequest):
    code = "invalid_algorithm"


class InvalidTag(BadRequest):
    code = "invalid_tag"


class TokenTooLarge(BadRequest):
    """The claims outgrow the documented maximum (as STS answers ``JWTPayloadSizeExceeded``)."""

    code = "token_too_large"


class KeysNotReady(ServiceUnavailable):
    """Another container is bootstrapping the signing keys right now."""


class RotationRefused(CredportError):
    code = "rotation_refused"
    status = 409


class RotationTooSoon(RotationRefused):
    """The last rotation is too recent: rotating again would retire a key whose tokens may still be trusted. Only
    this refusal is a scheduled run's "nothing to do" (an operator rotated meanwhile); any other is a failure."""


class TokenRejected(TokenRefusal):
    """Raised by :class:`~chalicelib.tokens.verify.TokenVerifier` for a token that fails a check; ``check`` names
    which. Deliberately not a CredportError: check and reason are for logs and tests, and callers that answer
    HTTP requests must map it to one opaque error."""


class NoSigningKey(Exception):
    """No usable current key yet: a fresh deployment that must bootstrap."""


class InvalidSigningKey(ValueError):
    """A signing-key secret that does not hold a private key of an allowed algorithm (never says more)."""

    def __init__(self) -> None:
        super().__init__("the signing-key secret does not hold an RS256, ES256 or ES384 private key")
