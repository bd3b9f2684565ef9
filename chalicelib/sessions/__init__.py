"""Sessions: bearer tokens signed with a key held in Secrets Manager, rotated without a failed request."""

from __future__ import annotations

from chalicelib.sessions.issuing import AutoIdSessions
from chalicelib.sessions.keys import SessionKey, SessionKeyStore
from chalicelib.sessions.revocation import CachedClientStanding
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.service import BearerGrant, BearerRefused, SessionService, bearer_token, key_rotation_seen
from chalicelib.sessions.tokens import SESSION_AUDIENCE, AutoIdClients, SessionClaims, SessionTokens

__all__ = [
    "SESSION_AUDIENCE",
    "AutoIdClients",
    "AutoIdSessions",
    "BearerGrant",
    "BearerRefused",
    "CachedClientStanding",
    "SessionClaims",
    "SessionKey",
    "SessionKeyRotation",
    "SessionKeyStore",
    "SessionService",
    "SessionTokens",
    "bearer_token",
    "key_rotation_seen",
]
