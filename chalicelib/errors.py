"""One error hierarchy for credport.

Every error a caller can see is a :class:`CredportError` with a stable ``code`` (part of the API contract)
and an HTTP status. Messages are written for the caller and never carry secret values; subclasses that
guard authentication use one fixed message so the response tells an attacker nothing.
"""

from __future__ import annotations

import re
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


# The command that starts `chalice local` with the local stack's environment (local/chalice_local.py).
_LOCAL_CHALICE_COMMAND = ".venv/bin/python -m local chalice"
_VARIABLE = re.compile(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?::|\s|$)")  # CREDPORT_X: ..., as Reader writes
_REQUIRED = "is required"  # how chalicelib.config.reader.Reader words a missing variable


class ConfigError(CredportError):
    """The deployment is misconfigured. Raised at first use of the settings, listing every problem."""

    code = "configuration_error"
    status = 500
    default_message = "The service is misconfigured."

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("Invalid configuration: " + "; ".join(self.problems))

    @property
    def missing(self) -> tuple[str, ...]:
        """The names of the required variables that are not set."""
        return tuple(dict.fromkeys(name for name, text in self._named() if text.startswith(_REQUIRED)))

    @property
    def invalid(self) -> tuple[str, ...]:
        """The names of the variables set to a value that is refused (alone, or against another setting)."""
        missing = set(self.missing)
        return tuple(dict.fromkeys(name for name, _ in self._named() if name not in missing))

    def _named(self) -> list[tuple[str, str]]:
        """(variable name, problem text) of every problem that starts with a variable's name (Reader's form)."""
        named: list[tuple[str, str]] = []
        for problem in self.problems:
            match = _VARIABLE.match(problem)
            if match:
                named.append((match.group(1), problem[match.end() :].strip()))
        return named

    def body(self) -> dict[str, str]:
        # The problems name environment variables and may quote their values: they belong in the log, not in a
        # response. Under `chalice local` the edge answers local_message() instead (chalicelib.api).
        return {"error": self.code, "message": self.default_message}

    def local_message(self) -> str:
        """The message of a response under `chalice local`, whose caller is the developer running it and whose
        usual cause is an environment without the stack's resources: which variables, by name only (never a value,
        nor a problem's text), and how to fix it."""
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("missing", self.missing), ("invalid", self.invalid))
            if names
        ]
        unnamed = len(self.problems) - len(self._named())
        if unnamed:
            parts.append(f"{unnamed} other problem{'s' if unnamed > 1 else ''}")
        return (
            f"The service is misconfigured: {'; '.join(parts) or 'see the log'}. Under chalice local, start it with"
            f" `{_LOCAL_CHALICE_COMMAND}` while the local stack runs (`make run`): it sets every variable as the"
            " stack's functions have them."
        )
