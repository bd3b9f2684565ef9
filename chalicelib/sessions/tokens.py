"""Session bearer tokens: JWS HS256, ``kid`` = the Secrets Manager version id of the signing key.

Verification raises :class:`~chalicelib.errors.InvalidToken` for every failure, one opaque answer; the
reason goes to the log. The key is chosen by ``kid`` (never by trying keys), ``alg`` must be exactly HS256
(an RS/ES token or ``none`` is refused before any key is touched), and claims are validated separately.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from chalicelib.aws.secrets import CURRENT
from chalicelib.errors import InvalidToken
from chalicelib.jose import MalformedToken, protected_header
from chalicelib.observability import logger
from chalicelib.sessions.keys import KeySource, SessionKey

__all__ = ["SESSION_AUDIENCE", "SessionClaims", "SessionTokens"]

SESSION_AUDIENCE = "credport-session"
ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 4096
LEEWAY = 5
_KID = re.compile(r"[A-Za-z0-9-]{32,64}")  # Secrets Manager version ids (ClientRequestTokens): UUIDs
# The allow-list, built once: it is the same for every token (building it per call cost ~10% of a verify).
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True)
class SessionClaims:
    subject: str
    session_id: str
    issued_at: int
    expires_at: int
    session_ends_at: int
    extra: dict[str, Any]


class SessionTokens:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        token_ttl: int,
        refresh_window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._ttl = token_ttl
        self._refresh_window = refresh_window
        self._clock = clock

    def issue(self, subject: str, session_id: str, session_ends_at: int, **extra: Any) -> tuple[str, int]:
        """A token signed with the current key; it never outlives the session. Returns (token, exp)."""
        key = self._keys.current()
        now = int(self._clock())
        exp = min(now + self._ttl, session_ends_at)
        claims = {
            **extra,
            "iss": self._issuer,
            "sub": subject,
            "aud": SESSION_AUDIENCE,
            "iat": now,
            "exp": exp,
            "sid": session_id,
            "sess_exp": session_ends_at,
        }
        return sign(key, claims), exp

    def verify(self, token: str, *, expired_grace: int = 0) -> SessionClaims:
        """Claims of a valid token; ``expired_grace`` seconds past ``exp`` are tolerated (refresh only)."""
        try:
            return self._verify(token, expired_grace)
        except _Rejected as rejected:
            logger.info("session token rejected", extra={"reason": rejected.reason})
            raise InvalidToken() from None

    def _verify(self, token: str, expired_grace: int) -> SessionClaims:
        key = self._key_for(_header(token))
        try:
            claims = dict(jwt.decode(token, _oct_key(key), registry=_REGISTRY).claims)
        except (JoseError, ValueError, TypeError):
            raise _Rejected("signature") from None
        now = self._clock()
        for name in ("iat", "exp", "sess_exp"):
            if type(claims.get(name)) is not int:
                raise _Rejected(f"{name} missing or not whole seconds")
        if claims.get("iss") != self._issuer or claims.get("aud") != SESSION_AUDIENCE:
            raise _Rejected("iss or aud")
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("sid"), str):
            raise _Rejected("sub or sid")
        if not claims["sub"] or not claims["sid"]:
            raise _Rejected("empty sub or sid")
        if claims["iat"] > now + LEEWAY:
            raise _Rejected("issued in the future")
        if now > claims["exp"] + LEEWAY + expired_grace:
            raise _Rejected("expired")
        if now >= claims["sess_exp"]:
            raise _Rejected("session over")
        reserved = {"iss", "sub", "aud", "iat", "exp", "sid", "sess_exp"}
        return SessionClaims(
            subject=claims["sub"],
            session_id=claims["sid"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            session_ends_at=claims["sess_exp"],
            extra={k: v for k, v in claims.items() if k not in reserved},
        )

    def _key_for(self, header: dict[str, Any]) -> SessionKey:
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise _Rejected("kid")
        key = self._keys.find(kid)
        if key is None:
            raise _Rejected("unknown kid")
        if key.stage != CURRENT:
            # The previous key is honoured only while tokens it signed can still be valid or refreshed: a
            # container may sign with it until its key cache expires, then the token lives, then it may be
            # refreshed for the refresh window.
            current = self._keys.current()
            retired_at = current.created_at + self._keys.signing_lag + self._ttl + self._refresh_window + LEEWAY
            if self._clock() > retired_at:
                raise _Rejected("previous key retired")
        return key


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _header(token: str) -> dict[str, Any]:
    try:
        header = protected_header(token, max_bytes=MAX_TOKEN_BYTES)
    except MalformedToken as malformed:
        raise _Rejected(malformed.reason) from None
    if header.get("alg") != ALGORITHM:
        raise _Rejected("alg")
    return header


def sign(key: SessionKey, claims: dict[str, Any]) -> str:
    """Sign ``claims`` with ``key`` (the rotation function's testSecret uses this with the pending key)."""
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.version_id}
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True)
    return str(jws.serialize_compact(header, payload, _oct_key(key), registry=_REGISTRY))


@functools.lru_cache(maxsize=8)
def _oct_key(key: SessionKey) -> OctKey:
    # A key is immutable (one per secret version): import it once, not on every token.
    return OctKey.import_key(key.secret)
