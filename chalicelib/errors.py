"""One error hierarchy for credport.

Every error a caller can see is a :class:`CredportError` with a stable ``code`` (part of the API contract)
and an HTTP status. Messages are written for the caller and never carry secret values; subclasses that
guard authentication use one fixed message so the response tells an attacker nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "CredportError",
    "DependencyError",
    "Forbidden",
    "InternalError",
    "InvalidText",
    "InvalidToken",
    "MethodNotAllowed",
    "NotFound",
    "OutsideOrganization",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "UnsupportedMediaType",
    "UnsupportedPrincipal",
]


class CredportError(Exception):
    """Base of every error credport reports. ``code`` and ``status`` are the API contract."""

    code = "internal_error"
    status = 500
    default_message = "An internal error occurred."

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(CredportError):
    code = "bad_request"
    status = 400
    default_message = "The request is malformed."


class InvalidText(BadRequest):
    """Text no AWS call or log line can carry (a lone surrogate, invalid UTF-8) or characters its field refuses.
    The message names the field at most, never the text."""

    code = "invalid_text"
    default_message = "The request holds text that is not valid Unicode, or characters its field does not allow."


class AuthenticationFailed(CredportError):
    """The single answer to every failed proof of identity: no detail that helps an attacker."""

    code = "authentication_failed"
    status = 401
    default_message = "Authentication failed."

    def __init__(self) -> None:
        super().__init__()


class InvalidToken(CredportError):
    """The single answer to every rejected bearer token."""

    code = "invalid_token"
    status = 401
    default_message = "The bearer token is missing, invalid or expired."

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(CredportError):
    code = "forbidden"
    status = 403
    default_message = "The caller is not allowed to do this."


class OutsideOrganization(Forbidden):
    """A caller outside the AWS Organization the deployment serves (CREDPORT_TOKEN_ORGANIZATION_ID): shared, since
    tokens and sessions both refuse it, behind the API's resource policy (a second layer)."""

    code = "outside_organization"
    default_message = "The caller is not in the organization this service serves."


class UnsupportedPrincipal(Forbidden):
    """A caller no token or session is made for (the root user, an unrecognised ARN): shared, since both the
    token service and sessions map callers through :mod:`chalicelib.principal`."""

    code = "unsupported_principal"
    default_message = "Tokens are issued to IAM roles, IAM users and federated users only."


class NotFound(CredportError):
    code = "not_found"
    status = 404
    default_message = "The resource does not exist."


class MethodNotAllowed(CredportError):
    code = "method_not_allowed"
    status = 405
    default_message = "The resource does not support this method."


class Conflict(CredportError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(CredportError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class UnsupportedMediaType(CredportError):
    code = "unsupported_media_type"
    status = 415
    default_message = "The request's Content-Type must be application/json."


class InternalError(CredportError):
    """Opaque 500: the details go to the log (without secret values), never to the caller."""


class DependencyError(CredportError):
    """An AWS dependency refused a call in a way retrying will not fix (our bug or misconfiguration)."""

    code = "dependency_error"
    status = 500
    default_message = "A dependency of the service failed."


class ServiceUnavailable(CredportError):
    """A transient failure (throttling, 5xx, timeout): the caller may retry, and nothing was changed."""

    code = "service_unavailable"
    status = 503
    default_message = "The service is temporarily unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ConfigError(CredportError):
    """The deployment is misconfigured. Raised at first use of the settings, listing every problem."""

    code = "configuration_error"
    status = 500
    default_message = "The service is misconfigured."

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("Invalid configuration: " + "; ".join(self.problems))

    def body(self) -> dict[str, str]:
        # The problems name environment variables; they belong in the log, not in a response.
        return {"error": self.code, "message": self.default_message}
