"""What every credport JWT verifier checks before any key is touched: shape, size and header policy.

The header policy is an allow-list per kind, the members credport itself writes: a JWS (a token or a session
token) carries ``alg``, ``typ`` and ``kid``; a JWE envelope ``alg``, ``enc``, ``kid`` and at most ``cty``. Any other
member is refused, whatever its name: those that let a token choose its own key (``jku``, ``x5u``, ``jwk``,
``x5c``), extend the rules (``crit``), change the payload's meaning (``b64``, ``zip``) or the key agreement (``epk``,
``p2s``), and every member not yet invented. The algorithm allow-lists differ per token kind and stay with each
verifier.

Every refusal names the check that made it (:data:`TokenCheck`, one closed vocabulary for all verifiers), so tests
and log queries can tell which rule refused a token, not only that one did; ``reason`` adds detail for logs only.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from joserfc.errors import DecodeError, InvalidPayloadError
from joserfc.util import urlsafe_b64decode

from chalicelib.untrusted import UntrustedInput, loads

__all__ = [
    "JWE_HEADERS",
    "JWS_HEADERS",
    "TOKEN_CHECKS",
    "MalformedToken",
    "TokenCheck",
    "TokenRefusal",
    "compact_segments",
    "decode_check",
    "jwe_header",
    "jws_header",
    "protected_header",
]

TokenCheck = Literal[
    "shape",  # not a compact token we read: type, size, segments, a header or payload that does not decode
    "typ",  # a JWS header's typ is not exactly "JWT"
    "header",  # a header member outside the allow-list
    "alg",  # an algorithm outside the verifier's allow-list (none, HMAC for an RS/ES verifier...)
    "kid",  # missing, malformed or naming no key the verifier holds
    "key",  # the key the kid names may not verify this token (an unfit JWKS entry, a retired session key)
    "signature",  # the signature does not verify under that key
    "claims",  # a required claim is missing
    "iss",
    "sub",
    "aud",
    "jti",
    "iat",
    "nbf",
    "exp",
    "sid",  # session tokens: the session id
    "sess_exp",  # session tokens: the session's absolute end
    "binding",  # session tokens: claims one key set may not sign (an auto-id subject under the main key...)
    "client",  # session tokens: the auto-id client's record no longer accepts the session
]
TOKEN_CHECKS: frozenset[str] = frozenset(get_args(TokenCheck))

JWS_HEADERS = frozenset({"alg", "typ", "kid"})
# cty: chalicelib.envelope.seal may name the content type. typ (RFC 7516 4.1.11) only declares the media type, and
# JOSE libraries other senders use add it ("JWE"): it changes nothing about how the envelope is opened.
JWE_HEADERS = frozenset({"alg", "enc", "kid", "cty", "typ"})


class TokenRefusal(Exception):
    """Base of every token refusal: ``check`` names the rule that refused (stable, one of :data:`TOKEN_CHECKS`),
    ``reason`` says more. Both are for logs and tests, never for callers."""

    def __init__(self, check: TokenCheck, reason: str | None = None) -> None:
        if check not in TOKEN_CHECKS:
            raise ValueError(f"not a token check: {check!r}")
        super().__init__(reason or check)
        self.check: TokenCheck = check
        self.reason = reason or check


class MalformedToken(TokenRefusal, ValueError):
    """Raised when a token is not a compact JWS or JWE credport would accept (check ``shape``, ``typ`` or
    ``header``); verifiers turn it into their own refusal with the same check."""


def decode_check(error: Exception) -> TokenCheck:
    """The check a failed ``jwt.decode`` stands for: a segment or payload that does not decode is the token's
    ``shape``; anything else (a bad signature, a mangled one) is its ``signature``."""
    return "shape" if isinstance(error, DecodeError | InvalidPayloadError) else "signature"


def protected_header(token: object, *, max_bytes: int) -> dict[str, Any]:
    """The decoded protected header of a compact JWS (a JWT), once its shape and header policy pass."""
    return jws_header(compact_segments(token, max_bytes=max_bytes, dots=2)[0])


def jws_header(header_segment: str) -> dict[str, Any]:
    """The decoded protected header of a JWS from its first segment (of a token whose shape
    :func:`compact_segments` passed), once the header policy passes."""
    header = _decode_header(header_segment)
    if header.get("typ") != "JWT":
        raise MalformedToken("typ")
    if not JWS_HEADERS.issuperset(header):
        raise MalformedToken("header", "forbidden header")
    return header


def jwe_header(token: object, *, max_bytes: int) -> dict[str, Any]:
    """The decoded protected header of a compact JWE, once its shape and header policy pass."""
    header = _decode_header(compact_segments(token, max_bytes=max_bytes, dots=4)[0])
    if not JWE_HEADERS.issuperset(header):
        raise MalformedToken("header", "forbidden header")
    return header


def compact_segments(token: object, *, max_bytes: int, dots: int) -> list[str]:
    """The segments of a compact JWS (``dots=2``) or JWE (``dots=4``): a str of at most ``max_bytes`` characters
    with exactly that many dots, else ``shape``. Nothing is decoded yet."""
    if not isinstance(token, str) or len(token) > max_bytes or token.count(".") != dots:
        raise MalformedToken("shape")
    return token.split(".")


def _decode_header(segment: str) -> dict[str, Any]:
    try:
        # The strict loader: a header spelling a lone surrogate (in a kid, say) never reaches a lookup or a log.
        header = loads(urlsafe_b64decode(segment.encode("ascii")))
    except (UntrustedInput, ValueError, UnicodeError):
        raise MalformedToken("shape", "header encoding") from None
    if not isinstance(header, dict):
        raise MalformedToken("shape", "header shape")
    return header
