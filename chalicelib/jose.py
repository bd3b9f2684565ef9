"""What every credport JWT verifier checks before any key is touched: shape, size and header policy.

The algorithm allow-lists differ per token kind and stay with each verifier; the headers refused here are
the same for all: those that let a token choose its own key (``jku``, ``x5u``, ``jwk``, ``x5c``), extend the
rules (``crit``), change the payload's meaning (``b64``, ``zip``) or belong to encryption (``enc``).
"""

from __future__ import annotations

from typing import Any

from joserfc.util import urlsafe_b64decode

from chalicelib.untrusted import UntrustedInput, loads

__all__ = ["FORBIDDEN_HEADERS", "JWE_FORBIDDEN_HEADERS", "MalformedToken", "jwe_header", "protected_header"]

FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc"})
# For JWE: no key choice by the sender's header, no extensions, and no compression (a decompression bomb).
JWE_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "zip"})


class MalformedToken(ValueError):
    """The token is not a compact JWS credport would accept; ``reason`` is for logs, never for callers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def protected_header(token: object, *, max_bytes: int) -> dict[str, Any]:
    """The decoded protected header of a compact JWS (a JWT), once its shape and header policy pass."""
    header = _decode(token, max_bytes=max_bytes, dots=2)
    if header.get("typ") != "JWT":
        raise MalformedToken("typ")
    if FORBIDDEN_HEADERS & set(header):
        raise MalformedToken("forbidden header")
    return header


def jwe_header(token: object, *, max_bytes: int) -> dict[str, Any]:
    """The decoded protected header of a compact JWE, once its shape and header policy pass."""
    header = _decode(token, max_bytes=max_bytes, dots=4)
    if JWE_FORBIDDEN_HEADERS & set(header):
        raise MalformedToken("forbidden header")
    return header


def _decode(token: object, *, max_bytes: int, dots: int) -> dict[str, Any]:
    if not isinstance(token, str) or len(token) > max_bytes or token.count(".") != dots:
        raise MalformedToken("shape")
    try:
        # The strict loader: a header spelling a lone surrogate (in a kid, say) never reaches a lookup or a log.
        header = loads(urlsafe_b64decode(token.split(".", 1)[0].encode("ascii")))
    except (UntrustedInput, ValueError, UnicodeError):
        raise MalformedToken("header encoding") from None
    if not isinstance(header, dict):
        raise MalformedToken("header shape")
    return header
