"""Errors of the session service (stable codes are part of the API)."""

from __future__ import annotations

from chalicelib.errors import BadRequest
from chalicelib.jose import TokenRefusal

__all__ = ["BearerRefused", "InvalidKeyMaterial", "RotationRequestRefused", "SessionTokenRejected"]


class InvalidKeyMaterial(ValueError):
    """Raised when a session key version's value is not ``{"key": base64url}`` of at least 256 bits."""


class RotationRequestRefused(BadRequest):
    """Raised by the rotation function for a request that is no Secrets Manager rotation step of a session key."""

    code = "rotation_request_refused"


class BearerRefused(Exception):
    """Raised by the bearer check for any failure: the adapter (chalicelib.api) answers it as API Gateway's 401,
    no detail (the token's own refusal was logged with its check)."""


class SessionTokenRejected(TokenRefusal):
    """Raised inside :class:`~chalicelib.sessions.tokens.SessionTokens` when a session token fails a check
    (``check`` names which); it is logged and answered with the one opaque InvalidToken, never shown."""
