"""Sessions: bearer tokens signed with a key held in Secrets Manager, rotated without a failed request."""

from __future__ import annotations

from chalicelib.sessions.issuing import AutoIdSessions
from chalicelib.sessions.keys import SessionKey, SessionKeyStore
from chalicelib.sessions.revocation import CachedClientStanding
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.service import (
    SessionService,
    bearer_token,
    build_session_service,
    get_session_service,
    reset_session_service,
)
from chalicelib.sessions.tokens import SESSION_AUDIENCE, AutoIdClients, SessionClaims, SessionTokens

__all__ = [
    "SESSION_AUDIENCE",
    "AutoIdClients",
    "AutoIdSessions",
    "CachedClientStanding",
    "SessionClaims",
    "SessionKey",
    "SessionKeyRotation",
    "SessionKeyStore",
    "SessionService",
    "SessionTokens",
    "bearer_token",
    "build_session_service",
    "get_session_service",
    "reset_session_service",
]
