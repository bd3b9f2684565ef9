"""Sessions: bearer tokens signed with a key held in Secrets Manager, rotated without a failed request.

Each name is imported from its module on first use (PEP 562): the app's API layer names the session types, and a
cold start serving a token must not pay for the session parser, its JOSE imports and the event classes they bring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.lazy import lazy_attribute

if TYPE_CHECKING:
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

_MODULE_OF = {
    "AutoIdSessions": "issuing",
    "SessionKey": "keys",
    "SessionKeyStore": "keys",
    "CachedClientStanding": "revocation",
    "SessionKeyRotation": "rotation",
    "BearerGrant": "service",
    "BearerRefused": "service",
    "SessionService": "service",
    "bearer_token": "service",
    "key_rotation_seen": "service",
    "SESSION_AUDIENCE": "tokens",
    "AutoIdClients": "tokens",
    "SessionClaims": "tokens",
    "SessionTokens": "tokens",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _MODULE_OF, name)
