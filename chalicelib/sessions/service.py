"""Sessions as the app sees them: start, refresh, show, and the bearer authorizer any route can use.

A container holds both session keys (the main one and the auto-id one) to verify and refresh any session; the
auto-id function holds only the auto-id key (:class:`~chalicelib.sessions.issuing.AutoIdSessions`).
"""

from __future__ import annotations

import functools
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
from chalicelib.sessions.issuing import SessionIssuer
from chalicelib.sessions.keys import SessionKeyStore
from chalicelib.sessions.revocation import CachedClientStanding
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.tokens import AutoIdClients, SessionClaims, SessionTokens
from chalicelib.tokens.principal import principal_of
from chalicelib.tokens.role_arns import role_arns_for

__all__ = [
    "REFRESH_ROUTE",
    "SessionService",
    "bearer_token",
    "build_session_service",
    "get_session_service",
    "reset_session_service",
]

REFRESH_ROUTE = ("POST", "/session/refresh")
_BEARER = "bearer "
UNAUTHORIZED = "Unauthorized"  # the exact message API Gateway turns into its 401 response


class SessionService:
    """``autoid_clients`` decides whether an auto-id session may go on; without it every auto-id session is
    refused (:func:`build_session_service` gives it the auto-id registry)."""

    def __init__(
        self,
        settings: Settings,
        aws: AwsServices,
        *,
        autoid_clients: AutoIdClients | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        r = settings.resources
        self.keys = SessionKeyStore(aws.secrets, r.session_key_secret_arn, clock=clock)
        self.autoid_keys = SessionKeyStore(aws.secrets, r.autoid_session_key_secret_arn, clock=clock)
        self.tokens = SessionTokens(
            self.keys,
            autoid_keys=self.autoid_keys,
            autoid_clients=autoid_clients,
            issuer=settings.issuer,
            token_ttl=settings.session_token_ttl,
            refresh_window=settings.session_refresh_window,
            clock=clock,
        )
        self._issuer = SessionIssuer(self.tokens, max_age=settings.session_max_age, clock=clock)
        self.roles = role_arns_for(settings, aws)  # a role's sub is its real ARN, path included
        self.rotation = SessionKeyRotation(
            aws.secrets,
            aws.sns,
            secret_arns=(r.session_key_secret_arn, r.autoid_session_key_secret_arn),
            key_events_topic=r.key_events_topic_arn,
            clock=clock,
        )

    def start(self, subject: str, **extra: Any) -> dict[str, Any]:
        """A new session for ``subject`` (auto-id sessions start in the auto-id function, not here)."""
        return self._issuer.start(subject, **extra)

    def start_for(self, identity: RequestIdentity) -> dict[str, Any]:
        principal = self.roles.resolve(principal_of(identity, identity.principal_org_id))
        return self.start(principal.subject, aws_arn=principal.caller_arn)

    def refresh(self, token: str) -> dict[str, Any]:
        """A fresh token for a valid token, or one expired by no more than the refresh window; never past
        the session's absolute end (the verifier refuses a token whose session is over)."""
        claims = self.tokens.verify(token, expired_grace=self.settings.session_refresh_window)
        return self._issuer.refresh(claims)

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


def build_session_service(
    settings: Settings, aws: AwsServices, *, clock: Callable[[], float] = time.time
) -> SessionService:
    """The service wired as a container runs it (tests inject ``clock``): auto-id sessions are checked against
    the auto-id registry's client records, cached no longer than the session keys."""
    # The one place sessions meet auto-id: the registry is handed in behind the small AutoIdClients interface.
    from chalicelib.autoid.clients import ACTIVE, ClientRegistry
    from chalicelib.autoid.scope import ServingScope

    r = settings.resources
    registry = ClientRegistry(
        aws.table(r.state_table),
        aws.s3,
        bucket=r.transfer_bucket,
        kms_key_id=r.data_key_arn,
        grace_period=settings.autoid_grace_period,
        scope=ServingScope(settings.prefix, settings.autoid_serving_prefixes),
        clock=clock,
    )
    clients = CachedClientStanding(registry, active_status=ACTIVE, clock=clock)
    return SessionService(settings, aws, autoid_clients=clients, clock=clock)


@functools.lru_cache(maxsize=1)
def get_session_service() -> SessionService:
    return build_session_service(get_settings(), get_aws())


def reset_session_service() -> None:
    get_session_service.cache_clear()


def _on_session_key_rotated(_event: Mapping[str, Any]) -> None:
    """Every container hears the rotation: drop its cached keys so it picks up the new one now."""
    if get_session_service.cache_info().currsize:
        service = get_session_service()
        service.keys.invalidate()
        service.autoid_keys.invalidate()
    metrics.add_metric(name="SessionKeyRotationsSeen", unit=MetricUnit.Count, value=1)
    logger.info("session key rotation seen; cached keys dropped")


bus.subscribe("session-key-rotated", _on_session_key_rotated)
