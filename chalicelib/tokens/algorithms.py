"""The signing algorithms the token service allows: this table *is* the policy.

Each maps a JOSE ``alg`` to the KMS key spec and KMS signing algorithm that produce it, the curve of its keys and
the hash KMS applies. KMS returns ECDSA signatures DER-encoded; JWS wants the fixed-size ``r || s`` (RFC 7518
section 3.4). KMS ``Sign`` takes at most 4096 bytes of message (KMS API Reference, Sign): a longer signing input is
hashed here with the algorithm's own hash and sent as ``MessageType=DIGEST``, which signs the same thing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, RSAKey

__all__ = ["ALGORITHMS", "SigningAlgorithm", "algorithm", "public_jwk"]


def _identity(signature: bytes) -> bytes:
    return signature


def _der_to_raw(size: int) -> Callable[[bytes], bytes]:
    def convert(signature: bytes) -> bytes:
        r, s = decode_dss_signature(signature)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return convert


@dataclass(frozen=True)
class SigningAlgorithm:
    jose: str
    kms_key_spec: str
    kms_algorithm: str
    key_type: str  # JWK "kty"
    to_jose: Callable[[bytes], bytes]
    curve: str | None  # JWK "crv" of an EC key
    hash_name: str  # what KMS hashes a RAW message with (hashlib's name)

    def digest(self, message: bytes) -> bytes:
        """The message as KMS would hash it: what ``MessageType=DIGEST`` takes."""
        return hashlib.new(self.hash_name, message).digest()


ALGORITHMS: dict[str, SigningAlgorithm] = {
    "RS256": SigningAlgorithm("RS256", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "RSA", _identity, None, "sha256"),
    "ES256": SigningAlgorithm("ES256", "ECC_NIST_P256", "ECDSA_SHA_256", "EC", _der_to_raw(32), "P-256", "sha256"),
    "ES384": SigningAlgorithm("ES384", "ECC_NIST_P384", "ECDSA_SHA_384", "EC", _der_to_raw(48), "P-384", "sha384"),
}
KMS_SPEC_TO_JOSE = {a.kms_key_spec: a.jose for a in ALGORITHMS.values()}


def algorithm(name: str) -> SigningAlgorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"signing algorithm {name!r} is not allowed") from None


def public_jwk(der: bytes, alg: SigningAlgorithm) -> dict[str, Any]:
    """The public JWK of a KMS key (``kid`` = RFC 7638 thumbprint, ``use``/``alg`` pinned)."""
    key: RSAKey | ECKey = RSAKey.import_key(der) if alg.key_type == "RSA" else ECKey.import_key(der)
    if key.is_private:
        raise ValueError("a signing key's public half was expected")
    jwk: dict[str, Any] = dict(key.as_dict(private=False))
    if jwk["kty"] != alg.key_type or jwk.get("crv") != alg.curve:
        raise ValueError("the key does not match the signing algorithm")
    jwk.update(kid=key.thumbprint(), use="sig", alg=alg.jose)
    return jwk
