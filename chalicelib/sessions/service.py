"""Sessions as the app sees them: start, refresh, show, and the bearer authorizer any route can use."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import AuthRequest, AuthResponse, AuthRoute, Request

from chalicelib.aws import AwsServices, get_aws
from chalicelib.config import Settings, get_settings
from chalicelib.errors import InvalidToken
from chalicelib.events import bus
from chalicelib.identity import RequestIdentity
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.sessions.keys import SessionKeyStore
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.tokens import SessionClaims, SessionTokens
from chalicelib.tokens.principal import principal_of
from chalicelib.tokens.role_arns import role_arns_for

__all__ = ["REFRESH_ROUTE", "SessionService", "bearer_token", "get_session_service", "reset_session_service"]

REFRESH_ROUTE = ("POST", "/session/refresh")
_BEARER = "bearer "
UNAUTHORIZED = "Unauthorized"  # the exact message API Gateway turns into its 401 response


class SessionService:
    def __init__(self, settings: Settings, aws: AwsServices, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        secret = settings.resources.session_key_secret_arn
        self.keys = SessionKeyStore(aws.secrets, secret, clock=clock)
        self.tokens = SessionTokens(
            self.keys,
            issuer=settings.issuer,
            token_ttl=settings.session_token_ttl,
            refresh_window=settings.session_refresh_window,
            clock=clock,
        )
        self.roles = role_arns_for(settings, aws)  # a role's sub is its real ARN, path included
        self.rotation = SessionKeyRotation(
            aws.secrets,
            aws.sns,
            secret_arn=secret,
            key_events_topic=settings.resources.key_events_topic_arn,
            clock=clock,
        )

    def start(self, subject: str, **extra: Any) -> dict[str, Any]:
        """A new session for ``subject`` (the auto-id capability starts sessions through this too)."""
        session_id = secrets.token_urlsafe(18)
        ends_at = int(self._clock()) + self.settings.session_max_age
        metrics.add_metric(name="SessionsStarted", unit=MetricUnit.Count, value=1)
        logger.info("session started", extra={"sub": subject, "sid": session_id})
        return self._response(subject, session_id, ends_at, extra)

    def start_for(self, identity: RequestIdentity) -> dict[str, Any]:
        principal = self.roles.resolve(principal_of(identity, identity.principal_org_id))
        return self.start(principal.subject, aws_arn=principal.caller_arn)

    def refresh(self, token: str) -> dict[str, Any]:
        """A fresh token for a valid token, or one expired by no more than the refresh window; never past
        the session's absolute end (the verifier refuses a token whose session is over)."""
        claims = self.tokens.verify(token, expired_grace=self.settings.session_refresh_window)
        return self._response(claims.subject, claims.session_id, claims.session_ends_at, claims.extra)

    def show(self, token: str) -> dict[str, Any]:
        claims = self.tokens.verify(token, expired_grace=0)
        return {
            "sub": claims.subject,
            "session_id": claims.session_id,
            "token_expires_at": claims.expires_at,
            "session_expires_at": claims.session_ends_at,
            **claims.extra,
        }

    def authorize(self, request: AuthRequest) -> AuthResponse:
        """The bearer check of every bearer route. Any failure is API Gateway's 401, with no detail."""
        method, path = _route_of(request.method_arn)
        token = _parse_bearer(request.token)
        if token is None:
            raise Exception(UNAUTHORIZED)
        grace = self.settings.session_refresh_window if (method, path) == REFRESH_ROUTE else 0
        try:
            claims = self.tokens.verify(token, expired_grace=grace)
        except InvalidToken:
            raise Exception(UNAUTHORIZED) from None
        return AuthResponse(routes=[AuthRoute(path, [method])], principal_id=claims.subject, context=_context(claims))

    def _response(self, subject: str, session_id: str, ends_at: int, extra: Mapping[str, Any]) -> dict[str, Any]:
        token, exp = self.tokens.issue(subject, session_id, ends_at, **extra)
        return {
            "token": token,
            "token_type": "Bearer",
            "expires_in": max(0, exp - int(self._clock())),
            "session_id": session_id,
            "session_expires_at": ends_at,
        }


def bearer_token(request: Request) -> str:
    """The bearer token of a request the authorizer let through (views verify it again for its claims)."""
    token = _parse_bearer(request.headers.get("authorization"))
    if token is None:
        raise InvalidToken()
    return token


def _parse_bearer(header: str | None) -> str | None:
    if not header or header[: len(_BEARER)].lower() != _BEARER:
        return None
    return header[len(_BEARER) :].strip() or None


def _route_of(method_arn: str) -> tuple[str, str]:
    # arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path/parts
    parts = method_arn.split(":", 5)[-1].split("/", 3)
    if len(parts) < 3:
        raise Exception(UNAUTHORIZED)
    return parts[2], "/" + (parts[3] if len(parts) > 3 else "")


def _context(claims: SessionClaims) -> dict[str, str]:
    # API Gateway passes authorizer context values as strings.
    return {
        "sub": claims.subject,
        "sid": claims.session_id,
        "exp": str(claims.expires_at),
        "sess_exp": str(claims.session_ends_at),
    }


@functools.lru_cache(maxsize=1)
def get_session_service() -> SessionService:
    return SessionService(get_settings(), get_aws())


def reset_session_service() -> None:
    get_session_service.cache_clear()


def _on_session_key_rotated(_event: Mapping[str, Any]) -> None:
    """Every container hears the rotation: drop its cached keys so it picks up the new one now."""
    if get_session_service.cache_info().currsize:
        get_session_service().keys.invalidate()
    metrics.add_metric(name="SessionKeyRotationsSeen", unit=MetricUnit.Count, value=1)
    logger.info("session key rotation seen; cached keys dropped")


bus.subscribe("session-key-rotated", _on_session_key_rotated)
