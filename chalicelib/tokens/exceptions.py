"""Errors of the token service (stable codes are part of the API)."""

from __future__ import annotations

from chalicelib.errors import BadRequest, CredportError, Forbidden, ServiceUnavailable

__all__ = [
    "InvalidAudience",
    "InvalidTtl",
    "KeysNotReady",
    "OutsideOrganization",
    "RotationRefused",
    "TokenRejected",
    "UnsupportedPrincipal",
]


class InvalidAudience(BadRequest):
    code = "invalid_audience"
    default_message = "The requested audience is not allowed."


class InvalidTtl(BadRequest):
    code = "invalid_ttl"


class UnsupportedPrincipal(Forbidden):
    code = "unsupported_principal"
    default_message = "Tokens are issued to IAM roles, IAM users and federated users only."


class OutsideOrganization(Forbidden):
    code = "outside_organization"
    default_message = "The caller is not in the organization this service serves."


class KeysNotReady(ServiceUnavailable):
    """Another container is bootstrapping the signing keys right now."""


class RotationRefused(CredportError):
    code = "rotation_refused"
    status = 409


class TokenRejected(Exception):
    """A token failed verification. Deliberately not a CredportError: the reason is for logs and tests,
    and callers that answer HTTP requests must map it to one opaque error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
