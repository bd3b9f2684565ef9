"""Hybrid encryption envelopes, as compact JWE (joserfc), shared by secret transfer and auto-id.

Two kinds, and only these (the allow-lists below are the policy):
- to an RSA public key: ``alg`` RSA-OAEP-256, ``enc`` A256GCM, ``kid`` = RFC 7638 thumbprint of the key;
- with a shared 256-bit key: ``alg`` dir, ``enc`` A256GCM.
Everything that opens an envelope goes through joserfc. :func:`seal_direct`, which only writes one (auto-id's answer,
once per request), assembles the five segments itself around cryptography's ``AESGCM``: joserfc's JWE machinery
around that one AEAD call (~220 calls) cost ~35 µs, 1-4% of an auto-id request here. Tests hold it to joserfc's
``encrypt_compact`` byte for byte, and jwcrypto and joserfc to opening what it writes.
Decryption picks the private key by ``kid`` (never by trying keys) and refuses any other algorithm and any
header member but ``alg``, ``enc``, ``kid`` and ``cty`` (:mod:`chalicelib.jose`: no compression, no header
that names its own key). Public keys are read from PEM strictly: RSA only,
at least 2048 bits; a *private* key handed over where a public one belongs is recognised as such, so callers
can destroy it and raise the alarm instead of merely rejecting it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.errors import JoseError
from joserfc.jwk import OctKey, RSAKey

from chalicelib import base64url
from chalicelib.jose import MalformedToken, jwe_header

if TYPE_CHECKING:
    from joserfc.jwe import JWERegistry

__all__ = [
    "DIRECT",
    "MAX_ENVELOPE_BYTES",
    "MIN_RSA_BITS",
    "RSA_ALGORITHMS",
    "EnvelopeError",
    "Opened",
    "PrivateKeyMaterial",
    "RecipientKey",
    "decrypt_direct",
    "generate_recipient_key",
    "open_envelope",
    "private_key_from_pem",
    "public_key_from_pem",
    "seal",
    "seal_direct",
]

RSA_ALGORITHMS = ("RSA-OAEP-256", "A256GCM")
DIRECT = ("dir", "A256GCM")
MIN_RSA_BITS = 2048
MAX_PEM_BYTES = 16 * 1024
MAX_ENVELOPE_BYTES = 256 * 1024
_PRIVATE_MARKERS = (b"PRIVATE KEY-----", b"PRIVATE KEY BLOCK")
# The protected header of every direct envelope, base64url of {"alg":"dir","enc":"A256GCM"} as joserfc's
# json_b64encode writes it (tests hold it there): also the AEAD's associated data (RFC 7516 section 5.1, step 14).
_DIRECT_HEADER = b"eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0"


def _registry(algorithms: tuple[str, str], max_bytes: int = MAX_ENVELOPE_BYTES) -> JWERegistry:
    """The allow-list as a joserfc registry, sized for our envelopes (joserfc's default stops at 64 KB of
    ciphertext; a 64 KiB secret inside its JSON document is more). Built per call, inside the function: it costs
    under a microsecond (nothing to cache), and joserfc's JWE module costs ~70 ms to import, which a cold start
    serving tokens or sessions should not pay."""
    from joserfc.jwe import JWERegistry

    registry = JWERegistry(algorithms=list(algorithms))
    registry.max_ciphertext_length = max_bytes * 4 // 3 + 4
    return registry


def _jwe() -> Any:
    from joserfc import jwe

    return jwe


class EnvelopeError(ValueError):
    """Not an envelope we open; ``reason`` is a stable code for logs and quarantine receipts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PrivateKeyMaterial(EnvelopeError):
    """A private key was supplied where only a public key belongs."""

    def __init__(self) -> None:
        super().__init__("private_key")


@dataclass(frozen=True)
class RecipientKey:
    """An RSA key envelopes are sealed to; ``private`` only on the side that opens them."""

    kid: str
    public: RSAKey = field(repr=False)
    private: RSAKey | None = field(default=None, repr=False)

    def public_pem(self) -> bytes:
        return bytes(self.public.as_pem(private=False))

    def public_jwk(self) -> dict[str, Any]:
        return {**self.public.as_dict(private=False), "kid": self.kid, "use": "enc", "alg": RSA_ALGORITHMS[0]}


@dataclass(frozen=True)
class Opened:
    kid: str
    plaintext: bytes = field(repr=False)


def public_key_from_pem(pem: bytes) -> RecipientKey:
    """An RSA public key (SubjectPublicKeyInfo or PKCS#1 PEM) of at least 2048 bits."""
    if len(pem) > MAX_PEM_BYTES:
        raise EnvelopeError("too_large")
    if any(marker in pem for marker in _PRIVATE_MARKERS):
        raise PrivateKeyMaterial()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # UnsupportedAlgorithm: a key type cryptography lacks
        raise EnvelopeError("not_a_public_key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise EnvelopeError("not_rsa")
    if key.key_size < MIN_RSA_BITS:
        raise EnvelopeError("key_too_small")
    public = RSAKey.import_key(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return RecipientKey(kid=public.thumbprint(), public=public)


def generate_recipient_key(bits: int = 4096) -> RecipientKey:
    """A fresh RSA key pair (CSPRNG, via cryptography) to receive envelopes with."""
    private = RSAKey.generate_key(bits, private=True)
    public = RSAKey.import_key(private.as_dict(private=False))
    return RecipientKey(kid=public.thumbprint(), public=public, private=private)


def private_key_from_pem(pem: bytes) -> RecipientKey:
    """The receiving side's key pair from its private PEM (as kept in Secrets Manager)."""
    try:
        private = RSAKey.import_key(pem)
    except (JoseError, ValueError, TypeError, UnsupportedAlgorithm):
        raise EnvelopeError("not_a_private_key") from None
    if not private.is_private:
        raise EnvelopeError("not_a_private_key")
    public = RSAKey.import_key(private.as_dict(private=False))
    return RecipientKey(kid=public.thumbprint(), public=public, private=private)


def seal(recipient: RecipientKey, plaintext: bytes, *, content_type: str | None = None) -> str:
    """A compact JWE only ``recipient``'s private key opens."""
    header: dict[str, Any] = {"alg": RSA_ALGORITHMS[0], "enc": RSA_ALGORITHMS[1], "kid": recipient.kid}
    if content_type:
        header["cty"] = content_type
    return str(_jwe().encrypt_compact(header, plaintext, recipient.public, registry=_registry(RSA_ALGORITHMS)))


def open_envelope(envelope: object, keys: Mapping[str, RecipientKey], *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Opened:
    """The plaintext of an envelope sealed to one of ``keys`` (by ``kid``); :class:`EnvelopeError` otherwise."""
    try:
        header = jwe_header(envelope, max_bytes=max_bytes)
    except MalformedToken as malformed:
        raise EnvelopeError("forbidden_header" if malformed.check == "header" else "not_jwe") from None
    if (header.get("alg"), header.get("enc")) != RSA_ALGORITHMS:
        raise EnvelopeError("algorithm")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if not isinstance(kid, str) or key is None or key.private is None:
        raise EnvelopeError("unknown_key")
    try:
        opened = _jwe().decrypt_compact(str(envelope), key.private, registry=_registry(RSA_ALGORITHMS))
    except (JoseError, ValueError, TypeError):
        raise EnvelopeError("decryption_failed") from None
    return Opened(kid=kid, plaintext=bytes(opened.plaintext or b""))


def seal_direct(key: bytes, plaintext: bytes) -> str:
    """A compact JWE (dir, A256GCM) under a shared 256-bit key: the protected header, an empty encrypted key (dir),
    a fresh 96-bit IV from the OS's CSPRNG, the ciphertext and the 128-bit tag (RFC 7516 section 7.1)."""
    if len(key) != 32:
        raise ValueError("a direct-encryption key is exactly 32 bytes")
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext, _DIRECT_HEADER)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    segments = (_DIRECT_HEADER, b"", base64url.encode(iv), base64url.encode(ciphertext), base64url.encode(tag))
    return b".".join(segments).decode("ascii")


def decrypt_direct(envelope: object, key: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> bytes:
    try:
        header = jwe_header(envelope, max_bytes=max_bytes)
    except MalformedToken:
        raise EnvelopeError("not_jwe") from None
    if (header.get("alg"), header.get("enc")) != DIRECT or len(key) != 32:
        raise EnvelopeError("algorithm")
    registry = _registry(DIRECT, max(max_bytes, MAX_ENVELOPE_BYTES))
    try:
        opened = _jwe().decrypt_compact(str(envelope), OctKey.import_key(key), registry=registry)
    except (JoseError, ValueError, TypeError):
        raise EnvelopeError("decryption_failed") from None
    return bytes(opened.plaintext or b"")
