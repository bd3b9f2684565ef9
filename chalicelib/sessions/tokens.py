"""Session bearer tokens: JWS HS256, ``kid`` = the Secrets Manager version id of the signing key.

Verification raises :class:`~chalicelib.errors.InvalidToken` for every failure, one opaque answer; the check
that refused (:data:`~chalicelib.jose.TokenCheck`) and the reason go to the log. The key is chosen by ``kid``
(never by trying keys), ``alg`` must be exactly HS256 (an RS/ES token or ``none`` is refused before any key is
touched), the signature is checked in constant time (:mod:`chalicelib.sessions.compact`), and claims are validated
separately. Every token is verified in full, signature and expiry included: only what is a pure function of a
header segment (its decoding and policy checks) is remembered, and only for segments a verified token carried.

Two key sets, each bound to its subjects by structure: the auto-id session key signs only ``autoid:<client>``
sessions, carrying ``autoid_client`` and ``autoid_gen``; the main session key signs only other subjects. So the
unauthenticated auto-id function, which holds only the auto-id key, cannot make any other session. An auto-id
session lives only while its client's record accepts its generation (revocation, ``end-grace``, a rotation's
grace ending), asked of an injected :class:`AutoIdClients`. Every token carries a fresh random ``jti``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from chalicelib import base64url
from chalicelib.aws.secrets import CURRENT
from chalicelib.errors import InvalidToken
from chalicelib.jose import MalformedToken, TokenCheck, jws_header
from chalicelib.observability import logger
from chalicelib.sessions.compact import (
    MAX_HEADER_CHARS,
    check_signature,
    claims_of,
    payload_of,
    segments,
    signature_of,
)
from chalicelib.sessions.exceptions import SessionTokenRejected
from chalicelib.sessions.keys import KeySource, SessionKey

__all__ = [
    "AUTOID_CLAIMS",
    "AUTOID_SUBJECT_PREFIX",
    "HEADERS_REMEMBERED",
    "SESSION_AUDIENCE",
    "AutoIdClients",
    "IssuedToken",
    "SessionClaims",
    "SessionTokens",
    "autoid_subject",
]

SESSION_AUDIENCE = "credport-session"
ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 4096
LEEWAY = 5
AUTOID_SUBJECT_PREFIX = "autoid:"
AUTOID_CLAIMS = ("autoid_client", "autoid_gen")
_RESERVED = frozenset({"iss", "sub", "aud", "iat", "exp", "sid", "sess_exp", "jti"})
_KID = re.compile(r"[A-Za-z0-9-]{32,64}")  # Secrets Manager version ids (ClientRequestTokens): UUIDs
_JTI = re.compile(r"[A-Za-z0-9_-]{22,64}")  # ours are 128 CSPRNG bits, base64url (22 characters)
_DATES: tuple[TokenCheck, ...] = ("iat", "exp", "sess_exp")
_IDS: tuple[TokenCheck, ...] = ("sub", "sid")
# Header segments of verified tokens remembered with their kid: one per key version in use (at most two per key set);
# past this many the memory starts over, so no sequence of tokens makes it grow. No lock: under the GIL each dict
# operation is whole, and an entry lost to a concurrent clear costs one more decoding.
HEADERS_REMEMBERED = 8


@dataclass(frozen=True)
class SessionClaims:
    subject: str
    session_id: str
    issued_at: int
    expires_at: int
    session_ends_at: int
    extra: dict[str, Any]
    token_id: str = ""  # the token's jti


class IssuedToken(NamedTuple):
    token: str
    expires_at: int
    token_id: str  # its jti, for the audit log (never the token itself)


class AutoIdClients(Protocol):
    """What sessions ask of the auto-id client registry; injected where the services are built, so sessions do
    not depend on the auto-id package."""

    def refusal(self, client_id: str, generation: int) -> str | None:
        """Why this client's sessions of this generation must end now (for the log), or None if they may go on."""
        ...


def autoid_subject(client_id: str) -> str:
    return AUTOID_SUBJECT_PREFIX + client_id


class SessionTokens:
    """``keys`` sign and verify every session but auto-id ones, ``autoid_keys`` auto-id sessions only; either
    may be absent (the auto-id function holds no main key). Verifying an auto-id session needs
    ``autoid_clients``: without it every auto-id session is refused."""

    def __init__(
        self,
        keys: KeySource | None,
        *,
        issuer: str,
        token_ttl: int,
        refresh_window: int,
        autoid_keys: KeySource | None = None,
        autoid_clients: AutoIdClients | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._autoid_keys = autoid_keys
        self._autoid_clients = autoid_clients
        self._issuer = issuer
        self._ttl = token_ttl
        self._refresh_window = refresh_window
        self._clock = clock
        self._lookups = _lookup_order(keys, autoid_keys)
        # header segment -> its kid, for segments that passed the header policy in a token that verified in full.
        self._known_headers: dict[str, str] = {}

    def issue(self, subject: str, session_id: str, session_ends_at: int, **extra: Any) -> IssuedToken:
        """A token signed with the current key of the subject's key set, with a new random ``jti``; it never
        outlives the session. Claims that break the key set's binding are a programming error: ValueError."""
        autoid = subject.startswith(AUTOID_SUBJECT_PREFIX)
        keys = self._autoid_keys if autoid else self._keys
        if keys is None:
            raise ValueError(f"this issuer holds no key for {'auto-id' if autoid else 'non-auto-id'} sessions")
        now = int(self._clock())
        exp = min(now + self._ttl, session_ends_at)
        token_id = secrets.token_urlsafe(16)  # 128 bits from the CSPRNG: no two tokens alike, even in one second
        claims = {
            **{k: v for k, v in extra.items() if k not in _RESERVED},
            "iss": self._issuer,
            "sub": subject,
            "aud": SESSION_AUDIENCE,
            "iat": now,
            "exp": exp,
            "sid": session_id,
            "sess_exp": session_ends_at,
            "jti": token_id,
        }
        problem = _binding_problem(claims, autoid_key=autoid)
        if problem is not None:
            raise ValueError(problem)
        return IssuedToken(sign(keys.current(), claims), exp, token_id)

    def verify(self, token: str, *, expired_grace: int = 0) -> SessionClaims:
        """Claims of a valid token; ``expired_grace`` seconds past ``exp`` are tolerated (refresh only)."""
        try:
            return self._verify(token, expired_grace)
        except SessionTokenRejected as rejected:
            # The check that refused, for log queries and tests; the caller only ever sees the one 401.
            logger.info("session token rejected", extra={"check": rejected.check, "reason": rejected.reason})
            raise InvalidToken() from None

    def _verify(self, token: object, expired_grace: int) -> SessionClaims:
        header_segment, payload_segment, signature = segments(token, max_bytes=MAX_TOKEN_BYTES)
        # A header segment is checked once (decoding, typ, allow-list, alg, kid format: a pure function of its
        # text); the kid it names is looked up, and the key's standing checked, on every token.
        kid = self._known_headers.get(header_segment) or _kid_of(header_segment)
        key, autoid_key = self._key_for(kid)
        payload = payload_of(payload_segment)
        check_signature(key, header_segment, payload_segment, signature)
        claims = claims_of(payload)
        _check_claims(claims, issuer=self._issuer, now=self._clock(), expired_grace=expired_grace)
        problem = _binding_problem(claims, autoid_key=autoid_key)
        if problem is not None:
            raise SessionTokenRejected("binding", problem)
        if autoid_key:
            self._check_client(claims["autoid_client"], claims["autoid_gen"])
        self._remember_header(header_segment, kid)
        return SessionClaims(
            subject=claims["sub"],
            session_id=claims["sid"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            session_ends_at=claims["sess_exp"],
            # Most tokens carry no claim but the registered ones: no comprehension for them.
            extra={} if claims.keys() <= _RESERVED else {k: v for k, v in claims.items() if k not in _RESERVED},
            token_id=claims["jti"],
        )

    def _remember_header(self, header_segment: str, kid: str) -> None:
        known = self._known_headers
        if header_segment not in known:
            if len(known) >= HEADERS_REMEMBERED:
                known.clear()
            known[header_segment] = kid

    def _check_client(self, client_id: str, generation: int) -> None:
        # After the signature and every claim: only a genuine auto-id session costs a registry lookup.
        if self._autoid_clients is None:
            raise SessionTokenRejected("client", "auto-id session but no auto-id client check here")
        refusal = self._autoid_clients.refusal(client_id, generation)
        if refusal is not None:
            raise SessionTokenRejected("client", refusal)

    def _key_for(self, kid: str) -> tuple[SessionKey, bool]:
        """The key named by ``kid`` (well-formed: :func:`_kid_of`) and whether it is the auto-id set's."""
        source, autoid, key = self._locate(kid)
        if key.stage != CURRENT:
            # The previous key is honoured only while tokens it signed can still be valid or refreshed: a
            # container may sign with it until its key cache expires, then the token lives, then it may be
            # refreshed for the refresh window.
            current = source.current()
            retired_at = current.created_at + source.signing_lag + self._ttl + self._refresh_window + LEEWAY
            if self._clock() > retired_at:
                raise SessionTokenRejected("key", "previous key retired")
        return key, autoid

    def _locate(self, kid: str) -> tuple[KeySource, bool, SessionKey]:
        for source, autoid, reload in self._lookups:
            key = source.find(kid) if reload else source.find(kid, reload=False)
            if key is not None:
                return source, autoid, key
        raise SessionTokenRejected("kid", "unknown kid")


def _lookup_order(keys: KeySource | None, autoid_keys: KeySource | None) -> tuple[tuple[KeySource, bool, bool], ...]:
    """(key set, is the auto-id set, may force a re-read) in the order a kid is looked up, built once. With two
    sets, each one's cache first: only a kid neither knows costs a (rate-limited) re-read of each, so one set's
    tokens never make the other re-read its secret."""
    sets = [(source, autoid) for source, autoid in ((keys, False), (autoid_keys, True)) if source is not None]
    passes = (False, True) if len(sets) > 1 else (True,)
    return tuple((source, autoid, reload) for reload in passes for source, autoid in sets)


def _check_claims(claims: Mapping[str, Any], *, issuer: str, now: float, expired_grace: int) -> None:
    """Every registered claim, each refused by its own check: types first, then values, then time."""
    for name in _DATES:
        if type(claims.get(name)) is not int:
            raise SessionTokenRejected(name, f"{name} missing or not whole seconds")
    if claims.get("iss") != issuer:
        raise SessionTokenRejected("iss")
    if claims.get("aud") != SESSION_AUDIENCE:
        raise SessionTokenRejected("aud")
    for name in _IDS:
        if not isinstance(claims.get(name), str):
            raise SessionTokenRejected(name, "sub or sid")
    for name in _IDS:
        if not claims[name]:
            raise SessionTokenRejected(name, "empty sub or sid")
    if not isinstance(claims.get("jti"), str) or not _JTI.fullmatch(claims["jti"]):
        raise SessionTokenRejected("jti", "jti missing or malformed")
    if claims["iat"] > now + LEEWAY:
        raise SessionTokenRejected("iat", "issued in the future")
    if now > claims["exp"] + LEEWAY + expired_grace:
        raise SessionTokenRejected("exp", "expired")
    if now >= claims["sess_exp"]:
        raise SessionTokenRejected("sess_exp", "session over")


def _binding_problem(claims: Mapping[str, Any], *, autoid_key: bool) -> str | None:
    """Why these claims may not be signed by that key set, or None. The auto-id key: exactly
    ``autoid:<autoid_client>`` with a whole ``autoid_gen``; the main key: no auto-id subject or claim at all."""
    subject = claims["sub"]
    if not autoid_key:
        if subject.startswith(AUTOID_SUBJECT_PREFIX) or any(name in claims for name in AUTOID_CLAIMS):
            return "session key used for an auto-id subject or claim"
        return None
    client, generation = claims.get("autoid_client"), claims.get("autoid_gen")
    if not isinstance(client, str) or not client or subject != autoid_subject(client):
        return "auto-id session key used for a subject other than autoid:<autoid_client>"
    if type(generation) is not int or generation < 1:
        return "auto-id session key used without a whole autoid_gen"
    return None


def _kid_of(header_segment: str) -> str:
    """The kid of a header segment that passes the JWS header policy, names exactly HS256 and a well-formed kid."""
    try:
        header = jws_header(header_segment)
    except MalformedToken as malformed:
        raise SessionTokenRejected(malformed.check, malformed.reason) from None
    if header.get("alg") != ALGORITHM:
        raise SessionTokenRejected("alg")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise SessionTokenRejected("kid")
    if len(header_segment) > MAX_HEADER_CHARS:  # padded with whitespace or escapes: no header we ever write
        raise SessionTokenRejected("shape", "header too long")
    return kid


def sign(key: SessionKey, claims: dict[str, Any]) -> str:
    """Sign ``claims`` with ``key`` (the rotation function's testSecret uses this with the pending key): the compact
    HS256 JWS joserfc's ``jws.serialize_compact`` writes, byte for byte (HS256 is deterministic: tests hold the two
    to the same tokens), assembled here as the verifier (:mod:`chalicelib.sessions.compact`) reads it, with the key's
    own HMAC keyed once: a third cheaper than the library's serializer (~10 us against ~15 us a token here), on the
    path of every session start, refresh and auto-id answer."""
    header = json.dumps({"alg": ALGORITHM, "typ": "JWT", "kid": key.version_id}, separators=(",", ":"))
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True)
    signing_input = base64url.encode(header.encode("ascii")) + b"." + base64url.encode(payload.encode("ascii"))
    return signing_input.decode("ascii") + "." + signature_of(key, signing_input)
