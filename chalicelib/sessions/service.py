"""Sessions as the app sees them: start, refresh, show, and the bearer authorizer any route can use.

A container holds both session keys (the main one and the auto-id one) to verify and refresh any session; the
auto-id function holds only the auto-id key (:class:`~chalicelib.sessions.issuing.AutoIdSessions`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import AwsServices
from chalicelib.config import Settings
from chalicelib.errors import InvalidToken
from chalicelib.identity import RequestIdentity
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.principal import principal_of
from chalicelib.role_arns import RoleArns, role_arns_for
from chalicelib.sessions.exceptions import BearerRefused
from chalicelib.sessions.issuing import SessionIssuer
from chalicelib.sessions.keys import SessionKeyStore
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.tokens import AutoIdClients, SessionClaims, SessionTokens

__all__ = ["REFRESH_ROUTE", "BearerGrant", "BearerRefused", "SessionService", "bearer_token", "key_rotation_seen"]

REFRESH_ROUTE = ("POST", "/session/refresh")
_BEARER = "bearer "


@dataclass(frozen=True)
class BearerGrant:
    """The bearer check's decision: the token's subject may call this one route (API Gateway's policy)."""

    method: str
    path: str
    principal_id: str
    context: dict[str, str]  # API Gateway passes authorizer context values as strings


class SessionService:
    """``autoid_clients`` decides whether an auto-id session may go on; without it every auto-id session is
    refused (the composition root, :mod:`chalicelib.services`, gives it the auto-id registry's standing).
    ``roles`` is the deployment's role resolver, shared with the token service where the root builds both."""

    def __init__(
        self,
        settings: Settings,
        aws: AwsServices,
        *,
        autoid_clients: AutoIdClients | None = None,
        roles: RoleArns | None = None,
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
        self.roles = roles or role_arns_for(settings, aws)  # a role's sub is its real ARN, path included
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
        # Sessions serve the callers tokens serve: none outside the organization (the resource policy's second layer).
        identity.require_organization(self.settings.token_organization_id)
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

    def authorize(self, method_arn: str, authorization: str | None) -> BearerGrant:
        """The bearer check of every bearer route, for API Gateway's ``methodArn`` and the request's
        Authorization header; any failure raises :class:`BearerRefused`."""
        method, path = _route_of(method_arn)
        token = _parse_bearer(authorization)
        if token is None:
            raise BearerRefused()
        grace = self.settings.session_refresh_window if (method, path) == REFRESH_ROUTE else 0
        try:
            claims = self.tokens.verify(token, expired_grace=grace)
        except InvalidToken:
            raise BearerRefused() from None
        return BearerGrant(method, path, claims.subject, _context(claims))


def key_rotation_seen(stores: Iterable[SessionKeyStore]) -> None:
    """Every container hears a session-key rotation: each session-key store it has built drops its cached keys, so
    it picks up the new one now (none built: nothing to drop)."""
    for store in stores:
        store.invalidate()
    metrics.add_metric(name="SessionKeyRotationsSeen", unit=MetricUnit.Count, value=1)
    logger.info("session key rotation seen; cached keys dropped")


def bearer_token(authorization: str | None) -> str:
    """The bearer token of a request the authorizer let through, from its Authorization header (views verify it
    again for its claims)."""
    token = _parse_bearer(authorization)
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
        raise BearerRefused()
    return parts[2], "/" + (parts[3] if len(parts) > 3 else "")


def _context(claims: SessionClaims) -> dict[str, str]:
    # API Gateway passes authorizer context values as strings.
    return {
        "sub": claims.subject,
        "sid": claims.session_id,
        "exp": str(claims.expires_at),
        "sess_exp": str(claims.session_ends_at),
    }
