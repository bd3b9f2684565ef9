"""A session token read as the compact HS256 JWS it is, in one pass: split once, the payload decoded, the signature
checked against the key its ``kid`` named, then the claims parsed.

This is what joserfc's ``jwt.decode`` did for the verifier, in its order and with its strictness (the same base64url
decoder, the same refusals, each under the same check), without what made it cost more than half of a
verification: the header decoded a second time (the verifier already read it under :mod:`chalicelib.jose`'s
policy), the header registry checked again (that policy is narrower), and the HMAC keyed anew for every token (here
once per key version, :attr:`~chalicelib.sessions.keys.SessionKey.hmac_sha256`). The signature is compared in
constant time, and only its one canonical encoding matches (joserfc's decoder accepts no other either).

Signing (:func:`chalicelib.sessions.tokens.sign`) writes what this reads, with :func:`signature_of`. Tests hold this
reader to ``jwt.decode`` on every token, and the signer to joserfc's ``jws.serialize_compact`` byte for byte.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from joserfc.util import urlsafe_b64decode

from chalicelib import base64url
from chalicelib.jose import MalformedToken, compact_segments
from chalicelib.sessions.exceptions import SessionTokenRejected
from chalicelib.sessions.keys import SessionKey

__all__ = ["MAX_HEADER_CHARS", "check_signature", "claims_of", "payload_of", "segments", "signature_of"]

# joserfc's bound on a JWS header segment (JWSRegistry.max_header_length), kept now that its decoder is not on this
# path; ours are ~110 characters. The verifier checks it once the header passed its policy (a 2 KB kid is still a
# ``kid`` refusal, as it was), before any key is looked up; over it is the token's ``shape``.
MAX_HEADER_CHARS = 512


def segments(token: object, *, max_bytes: int) -> tuple[str, str, str]:
    """The header, payload and signature segments of a compact JWS of at most ``max_bytes`` characters."""
    try:
        header, payload, signature = compact_segments(token, max_bytes=max_bytes, dots=2)
    except MalformedToken as malformed:
        raise SessionTokenRejected(malformed.check, malformed.reason) from None
    return header, payload, signature


def payload_of(payload_segment: str) -> bytes:
    """The payload's bytes: a segment that is not strict base64url (joserfc's decoder) is the token's ``shape``,
    refused before the signature is computed, as ``jwt.decode`` refused it."""
    try:
        return urlsafe_b64decode(payload_segment.encode("ascii"))
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        raise SessionTokenRejected("shape", "payload encoding") from None


def signature_of(key: SessionKey, signing_input: bytes) -> str:
    """HS256 (RFC 7518, 3.2) of ``signing_input`` under ``key``, base64url without padding: the third segment of
    a token ``key`` signed."""
    mac = key.hmac_sha256.copy()  # the key's own HMAC, keyed once: only the message is hashed here
    mac.update(signing_input)
    return base64url.text(mac.digest())


def check_signature(key: SessionKey, header_segment: str, payload_segment: str, signature: str) -> None:
    """Raises ``signature`` unless ``signature`` is exactly ``key``'s over the first two segments, compared in
    constant time. The header and payload segments are ASCII here (both were decoded as such)."""
    expected = signature_of(key, f"{header_segment}.{payload_segment}".encode("ascii"))
    # compare_digest takes ASCII text only: anything else in the segment is simply not the signature.
    if not signature.isascii() or not hmac.compare_digest(expected, signature):
        raise SessionTokenRejected("signature")


def claims_of(payload: bytes) -> dict[str, Any]:
    """The claims of a payload whose signature verified: a JSON object in UTF-8 (RFC 7519, 7.2: what ``sign``
    writes), else the token's ``shape``."""
    try:
        # Decoded here, strictly: json.loads(bytes) would first guess among UTF-8, -16 and -32 on every token.
        claims = json.loads(payload.decode("utf-8"))
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise SessionTokenRejected("shape", "payload encoding") from None
    if not isinstance(claims, dict):
        raise SessionTokenRejected("shape", "payload encoding")
    return claims
