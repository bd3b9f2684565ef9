"""Starting and refreshing sessions, and the audit log of both: one structured line per start and per refresh,
with the token's ``jti`` (never the token). :class:`AutoIdSessions` is how the unauthenticated auto-id function
starts sessions: it is built from the auto-id session key alone, so nothing on that path can read the main one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.aws.secrets import SecretStore
from chalicelib.config import Settings
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.sessions.keys import SessionKeyStore
from chalicelib.sessions.tokens import IssuedToken, SessionClaims, SessionTokens, autoid_subject

__all__ = ["AutoIdSessions", "SessionIssuer"]


class SessionIssuer:
    def __init__(self, tokens: SessionTokens, *, max_age: int, clock: Callable[[], float] = time.time) -> None:
        self._tokens = tokens
        self._max_age = max_age
        self._clock = clock

    def start(self, subject: str, **extra: Any) -> dict[str, Any]:
        """A new session for ``subject``, ending ``max_age`` from now whatever its refreshes."""
        session_id = secrets.token_urlsafe(18)
        ends_at = int(self._clock()) + self._max_age
        issued = self._tokens.issue(subject, session_id, ends_at, **extra)
        metrics.add_metric(name="SessionsStarted", unit=MetricUnit.Count, value=1)
        logger.info("session started", extra=_audit(subject, session_id, issued, extra))
        return self._response(session_id, ends_at, issued)

    def refresh(self, claims: SessionClaims) -> dict[str, Any]:
        """A new token (new ``jti``) for the session of verified ``claims``, its extra claims carried over."""
        issued = self._tokens.issue(claims.subject, claims.session_id, claims.session_ends_at, **claims.extra)
        metrics.add_metric(name="SessionsRefreshed", unit=MetricUnit.Count, value=1)
        audit = _audit(claims.subject, claims.session_id, issued, claims.extra)
        logger.info("session refreshed", extra={**audit, "refreshed_jti": claims.token_id})
        return self._response(claims.session_id, claims.session_ends_at, issued)

    def _response(self, session_id: str, ends_at: int, issued: IssuedToken) -> dict[str, Any]:
        return {
            "token": issued.token,
            "token_type": "Bearer",
            "expires_in": max(0, issued.expires_at - int(self._clock())),
            "session_id": session_id,
            "session_expires_at": ends_at,
        }


class AutoIdSessions:
    """Sessions of auto-id clients, signed with the auto-id session key: the only session key this holds."""

    def __init__(self, settings: Settings, secrets_store: SecretStore, *, clock: Callable[[], float] = time.time):
        self.keys = SessionKeyStore(secrets_store, settings.resources.autoid_session_key_secret_arn, clock=clock)
        tokens = SessionTokens(
            None,  # no main key: this function can start no session but an auto-id client's
            autoid_keys=self.keys,
            issuer=settings.issuer,
            token_ttl=settings.session_token_ttl,
            refresh_window=settings.session_refresh_window,
            clock=clock,
        )
        self._issuer = SessionIssuer(tokens, max_age=settings.session_max_age, clock=clock)

    def start(self, client_id: str, generation: int) -> dict[str, Any]:
        """The session of ``client_id``, bound to the entropy ``generation`` its proof used: it ends when the
        client's record stops accepting that generation (or the client is revoked)."""
        return self._issuer.start(autoid_subject(client_id), autoid_client=client_id, autoid_gen=generation)


def _audit(subject: str, session_id: str, issued: IssuedToken, extra: Mapping[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = {"sub": subject, "sid": session_id, "jti": issued.token_id}
    if "autoid_client" in extra:
        line["autoid_client"] = extra["autoid_client"]
    return line
