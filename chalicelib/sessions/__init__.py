"""Sessions: bearer tokens signed with a key held in Secrets Manager, rotated without a failed request."""

from __future__ import annotations

from chalicelib.sessions.keys import SessionKey, SessionKeyStore
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.service import SessionService, bearer_token, get_session_service, reset_session_service
from chalicelib.sessions.tokens import SESSION_AUDIENCE, SessionClaims, SessionTokens

__all__ = [
    "SESSION_AUDIENCE",
    "SessionClaims",
    "SessionKey",
    "SessionKeyRotation",
    "SessionKeyStore",
    "SessionService",
    "SessionTokens",
    "bearer_token",
    "get_session_service",
    "reset_session_service",
]
