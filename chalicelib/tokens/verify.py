"""Verify credport JWTs. Verification raises :class:`TokenRejected`, naming the check that refused; it never
returns a bool.

Decoding and claim validation are separate steps. Before joserfc sees the token, the header must pass
our policy: ``typ: JWT``, no member but ``alg``, ``typ`` and ``kid`` (:mod:`chalicelib.jose`: so no header that lets
a token choose its own key or extend the rules), an allowed ``alg`` (never ``none`` or HMAC), and a ``kid`` that is
a well-formed thumbprint present in the JWKS, whose key type and ``alg`` match.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from joserfc.errors import ClaimError, JoseError

from chalicelib.config import audience_matches
from chalicelib.jose import MalformedToken, TokenCheck, decode_check, protected_header
from chalicelib.tokens.algorithms import ALGORITHMS
from chalicelib.tokens.exceptions import TokenRejected

# joserfc's JWT and JWK modules are imported by the first verification, not with this module: chalicelib.tokens
# imports the verifier, and a container that only issues tokens would otherwise pay for them at its cold start.
if TYPE_CHECKING:
    from joserfc.jwk import ECKey, RSAKey

__all__ = ["MAX_TOKEN_BYTES", "TokenVerifier"]

MAX_TOKEN_BYTES = 20000  # STS's WebIdentityToken limit; credport's own tokens stay under 17,000 (tokens/claims.py)
MAX_AUDIENCES = 10
_KID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # an RFC 7638 SHA-256 thumbprint, base64url
_REQUIRED = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti")
_DATES: tuple[TokenCheck, ...] = ("iat", "nbf", "exp")
# The claims joserfc's registry validates, each its own check (joserfc names the claim it refused).
_CLAIM_CHECKS: dict[str, TokenCheck] = {"iss": "iss", "sub": "sub", "aud": "aud", "jti": "jti"}
_CLAIM_CHECKS.update({name: name for name in _DATES})


class TokenVerifier:
    def __init__(
        self,
        jwks: Mapping[str, Any],
        *,
        issuer: str,
        audiences: Collection[str] | None = None,
        algorithms: Collection[str] = tuple(ALGORITHMS),
        leeway: int = 30,
        now: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown:
            raise ValueError(f"algorithms not allowed: {sorted(unknown)}")
        self._keys = {k["kid"]: k for k in jwks.get("keys", []) if isinstance(k, dict) and "kid" in k}
        self._issuer = issuer
        self._audiences = tuple(audiences) if audiences is not None else None
        self._algorithms = tuple(algorithms)
        self._leeway = leeway
        self._now = now

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The token's claims, if it is authentic, current, ours, and for ``audience``."""
        from joserfc import jwt

        header = self._header(token)
        key = self._key_for(header)
        try:
            decoded = jwt.decode(token, key, algorithms=[header["alg"]])
        except (JoseError, ValueError) as error:
            raise TokenRejected(decode_check(error), f"signature: {type(error).__name__}") from None
        self._validate(dict(decoded.claims), audience)
        return dict(decoded.claims)

    def _header(self, token: str) -> dict[str, Any]:
        try:
            header = protected_header(token, max_bytes=MAX_TOKEN_BYTES)
        except MalformedToken as malformed:
            raise TokenRejected(malformed.check, malformed.reason) from None
        if header.get("alg") not in self._algorithms:
            raise TokenRejected("alg")
        return header

    def _key_for(self, header: Mapping[str, Any]) -> RSAKey | ECKey:
        from joserfc.jwk import ECKey, RSAKey

        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid) or kid not in self._keys:
            raise TokenRejected("kid")
        jwk = self._keys[kid]
        alg = ALGORITHMS[header["alg"]]
        if (
            jwk.get("kty") != alg.key_type
            or jwk.get("crv") != alg.curve
            or jwk.get("alg", alg.jose) != alg.jose
            or jwk.get("use", "sig") != "sig"
        ):
            raise TokenRejected("key", "key does not match alg")
        try:
            key = RSAKey.import_key(dict(jwk)) if alg.key_type == "RSA" else ECKey.import_key(dict(jwk))
        except (JoseError, ValueError, TypeError, KeyError):  # KeyError: joserfc looks "crv" up unchecked
            raise TokenRejected("key", "jwk") from None
        if key.is_private or key.thumbprint() != kid:
            raise TokenRejected("key", "kid does not match key")
        return key

    def _validate(self, claims: dict[str, Any], audience: str | None) -> None:
        missing = [name for name in _REQUIRED if name not in claims]
        if missing:
            raise TokenRejected("claims", f"missing claims {missing}")
        audiences = _audiences(claims["aud"])
        if audience is not None and audience not in audiences:
            raise TokenRejected("aud")
        if self._audiences is not None and not any(
            audience_matches(p, aud) for p in self._audiences for aud in audiences
        ):
            raise TokenRejected("aud", "aud not allowed")
        from joserfc.jwt import JWTClaimsRegistry

        registry = JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            sub={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise TokenRejected(_claim_check(error), f"claims: {type(error).__name__}") from None
        # NumericDate may be fractional by RFC 7519, but credport issues whole seconds: anything else is not ours.
        fractional = next((name for name in _DATES if type(claims[name]) is not int), None)
        if fractional is not None:
            raise TokenRejected(fractional, "dates must be whole seconds")
        if claims["iat"] > self._now() + self._leeway:
            raise TokenRejected("iat", "iat in the future")


def _audiences(aud: Any) -> list[str]:
    """``aud`` as credport issues it: one string, or an array of 2 to 10 distinct strings (RFC 7519 section 4.1.3)."""
    if isinstance(aud, str):
        return [aud]
    if (
        isinstance(aud, list)
        and 2 <= len(aud) <= MAX_AUDIENCES
        and all(isinstance(a, str) for a in aud)
        and len(set(aud)) == len(aud)
    ):
        return aud
    raise TokenRejected("aud", "aud must be a string or an array of 2 to 10 distinct strings")


def _claim_check(error: JoseError) -> TokenCheck:
    """The claim joserfc's registry refused, as a check; several at once (all missing) is ``claims``."""
    return _CLAIM_CHECKS.get(error.claim, "claims") if isinstance(error, ClaimError) else "claims"
