"""The checks AWS STS makes on a web identity token before AssumeRoleWithWebIdentity looks at the role.

In order: the token is a compact JWS with an allowed asymmetric ``alg`` (never ``none`` or HMAC); an IAM OIDC
provider exists in the role's account for its ``iss`` (IAM stores the URL without its scheme); the issuer's JWKS
(see :mod:`local.iam.jwks`) holds the key its ``kid`` names and the signature verifies with it (joserfc);
``iss``/``sub``/``aud``/``exp`` are present; ``exp`` is in the future; ``aud`` (or ``azp``) is one of the
provider's client ids. Verification raises :class:`WebIdentityRefused`; it never returns a bool.

Before any of that, the token's length as the API constrains it (API Reference, AssumeRoleWithWebIdentity,
``WebIdentityToken``: "Minimum length of 4. Maximum length of 20000."): outside it, STS answers a 400
``ValidationError`` in the words of its request validation, which leave the value out of the message (the member is
sensitive), before it reads the token at all.

Error codes are STS's (API Reference, AssumeRoleWithWebIdentity, "Errors"). Message texts marked [AWS] are the
ones STS is reported to send; the others are this emulator's own wording where AWS's text is not documented.
IAM only accepts https provider URLs; here an ``http`` issuer is accepted for loopback hosts only, because the
local stack's issuer is ``http://127.0.0.1:<port>`` (a divergence from AWS, on purpose).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from local.iam.jwks import IdpUnreachable, JwksResolver, KeysUnavailable

__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_CHARS",
    "MIN_TOKEN_CHARS",
    "TOO_LONG",
    "TOO_SHORT",
    "OidcProvider",
    "WebIdentity",
    "WebIdentityRefused",
    "verify_web_identity",
]

# STS accepts RSA and ECDSA signatures from OIDC providers; nothing symmetric, nothing unsigned.
ALGORITHMS: Mapping[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
}
MIN_TOKEN_CHARS = 4  # WebIdentityToken: "Length Constraints: Minimum length of 4. Maximum length of 20000."
MAX_TOKEN_CHARS = 20000
_REQUIRED = ("iss", "sub", "aud", "exp")
# How far ahead of STS's clock an issuer's nbf/iat may be: AWS does not document its allowance, and an emulator
# must not refuse what AWS accepts.
LEEWAY = 60

# STS's request validation: for a sensitive member it leaves the value out ("Value at 'x'", not "Value 'v' at 'x'").
# [AWS] for the minimum (as reported); the maximum is that same sentence with AWS's usual "less than or equal to".
TOO_SHORT = (
    "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: "
    f"Member must have length greater than or equal to {MIN_TOKEN_CHARS}"
)
TOO_LONG = (
    "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: "
    f"Member must have length less than or equal to {MAX_TOKEN_CHARS}"
)
MALFORMED = "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)"  # [AWS]
NO_PROVIDER = "No OpenIDConnect provider found in your account for {iss}"  # [AWS]
NO_KEY = (  # [AWS], two spaces included
    "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity "
    "documentation for requirements"
)
MISSING_CLAIM = "Missing a required claim: {name}"  # [AWS]
AUDIENCE = "Incorrect token audience"  # [AWS]
EXPIRED = "Token expired: current date/time {now} must be before the expiration date/time {exp}"  # [AWS]
ALGORITHM = "The ID Token is signed with an algorithm STS does not accept: {alg}"
SIGNATURE = "The web identity token that was passed could not be validated: its signature does not verify"
NOT_YET_VALID = "The web identity token that was passed is not valid yet ({claim} is in the future)"
UNREACHABLE = "The identity provider {iss} could not be reached"


class WebIdentityRefused(Exception):
    """STS's answer to a token it refuses: ``code`` is the STS error code, ``message`` the text sent back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _invalid(message: str) -> WebIdentityRefused:
    return WebIdentityRefused("InvalidIdentityToken", message)


@dataclass(frozen=True)
class OidcProvider:
    arn: str
    url: str  # as IAM stores it: host[:port][/path], no scheme; also the prefix of its condition keys
    client_ids: tuple[str, ...]


@dataclass(frozen=True)
class WebIdentity:
    provider: OidcProvider
    issuer: str
    subject: str
    audience: str  # the client id the token was accepted for
    claims: Mapping[str, Any] = field(repr=False)

    def condition_context(self) -> dict[str, Any]:
        """IAM User Guide, "Available keys for AWS OIDC federation": ``<url>:aud`` holds ``azp`` when the token
        has one (then ``<url>:oaud`` holds ``aud``), else ``aud``; ``:sub``; ``:amr`` when present."""
        prefix = self.provider.url
        aud = self.claims["aud"]
        context: dict[str, Any] = {f"{prefix}:sub": self.subject}
        azp = self.claims.get("azp")
        if isinstance(azp, str):
            context[f"{prefix}:aud"] = azp
            context[f"{prefix}:azp"] = azp
            context[f"{prefix}:oaud"] = aud
        else:
            context[f"{prefix}:aud"] = aud
        amr = self.claims.get("amr")
        if isinstance(amr, list | str):
            context[f"{prefix}:amr"] = amr
        return context


def verify_web_identity(
    token: object, *, providers: Mapping[str, OidcProvider], resolver: JwksResolver, now: int
) -> WebIdentity:
    """The verified identity in ``token``. ``providers`` maps an IAM provider URL (no scheme) to the provider,
    from the role's account; ``resolver`` fetches an issuer's JWKS; ``now`` is the current Unix time."""
    header, claims = _parse(token)
    assert isinstance(token, str)  # _parse refused anything else
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _invalid(ALGORITHM.format(alg=json.dumps(alg)))
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid(MISSING_CLAIM.format(name="iss"))
    provider = providers.get(_provider_url(issuer))
    if provider is None:
        raise _invalid(NO_PROVIDER.format(iss=issuer))
    key = _key_for(issuer, header, str(alg), resolver)
    try:
        jws.deserialize_compact(token, key, algorithms=[str(alg)])
    except (JoseError, ValueError):
        raise _invalid(SIGNATURE) from None
    return _validated(claims, provider, issuer, now)


def _parse(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    if isinstance(token, str) and not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        # The API's own constraint, checked before the token is read: a ValidationError, not InvalidIdentityToken.
        raise WebIdentityRefused("ValidationError", TOO_SHORT if len(token) < MIN_TOKEN_CHARS else TOO_LONG)
    if not isinstance(token, str) or token.count(".") != 2:
        raise _invalid(MALFORMED)
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, RecursionError):
        raise _invalid(MALFORMED) from None
    header = dict(compact.protected)
    if not isinstance(claims, dict):
        raise _invalid(MALFORMED)
    return header, claims


def _provider_url(issuer: str) -> str:
    """IAM's form of an issuer URL (scheme dropped); "" (no provider) for anything STS would not call."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return parts.netloc + parts.path
    return ""


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _key_for(issuer: str, header: Mapping[str, Any], alg: str, resolver: JwksResolver) -> RSAKey | ECKey:
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _invalid(NO_KEY)
    jwk = _find(_jwks(issuer, resolver), kid)
    refresh = getattr(resolver, "refresh", None)
    if jwk is None and refresh is not None and refresh(issuer):
        jwk = _find(_jwks(issuer, resolver), kid)  # a key rotated in since the keys were cached
    if jwk is None or jwk.get("kty") != ALGORITHMS[alg] or jwk.get("use", "sig") != "sig":
        raise _invalid(NO_KEY)
    if jwk.get("alg", alg) != alg:
        raise _invalid(SIGNATURE)
    try:
        key = JWKRegistry.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError):
        raise _invalid(NO_KEY) from None
    if not isinstance(key, RSAKey | ECKey):
        raise _invalid(NO_KEY)
    return key


def _jwks(issuer: str, resolver: JwksResolver) -> Mapping[str, Any]:
    try:
        return resolver(issuer)
    except KeysUnavailable:
        raise _invalid(NO_KEY) from None
    except IdpUnreachable:
        raise WebIdentityRefused("IDPCommunicationError", UNREACHABLE.format(iss=issuer)) from None


def _find(jwks: Mapping[str, Any], kid: str) -> Mapping[str, Any] | None:
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    return next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)


def _validated(claims: dict[str, Any], provider: OidcProvider, issuer: str, now: int) -> WebIdentity:
    for name in _REQUIRED:
        if name not in claims:
            raise _invalid(MISSING_CLAIM.format(name=name))
    exp = claims["exp"]
    if not _is_number(exp):
        raise _invalid(MALFORMED)
    if now >= exp:
        raise WebIdentityRefused("ExpiredTokenException", EXPIRED.format(now=now, exp=int(exp)))
    for claim in ("nbf", "iat"):
        if claim in claims and (not _is_number(claims[claim]) or claims[claim] > now + LEEWAY):
            raise _invalid(NOT_YET_VALID.format(claim=claim))
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise _invalid(MISSING_CLAIM.format(name="sub"))
    return WebIdentity(provider, issuer, subject, _audience(claims, provider), claims)


def _audience(claims: Mapping[str, Any], provider: OidcProvider) -> str:
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp")
    candidates = ([azp] if isinstance(azp, str) else []) + [a for a in audiences if isinstance(a, str)]
    for candidate in candidates:
        if candidate in provider.client_ids:
            return candidate
    raise _invalid(AUDIENCE)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
