"""Errors of auto-id (stable codes are part of the API)."""

from __future__ import annotations

from chalicelib.errors import BadRequest

__all__ = ["AuthenticationRefused", "InvalidPolicy", "MalformedRequest"]


class MalformedRequest(BadRequest):
    """Raised when an auto-id request, or its envelope, is not exactly the protocol's shape (a 400, never a 401)."""

    code = "malformed_request"
    default_message = "The request is not a valid auto-id request."


class InvalidPolicy(BadRequest):
    """Raised when an enrolment's policy names a pattern auto-id cannot serve, or nothing at all."""

    code = "invalid_policy"


class AuthenticationRefused(Exception):
    """Raised inside the auto-id service when a request fails a proof of identity; ``reason`` goes to the log, and
    the caller only ever sees the one opaque 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
