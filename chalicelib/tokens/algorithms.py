"""The signing algorithms the token service allows: this table *is* the policy.

Each maps a JOSE ``alg`` to the KMS key spec and KMS signing algorithm that produce it. KMS returns ECDSA
signatures DER-encoded; JWS wants the fixed-size ``r || s`` (RFC 7518 section 3.4).
"""

from __future__ import annotations

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


ALGORITHMS: dict[str, SigningAlgorithm] = {
    "RS256": SigningAlgorithm("RS256", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "RSA", _identity),
    "ES256": SigningAlgorithm("ES256", "ECC_NIST_P256", "ECDSA_SHA_256", "EC", _der_to_raw(32)),
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
    if jwk["kty"] != alg.key_type:
        raise ValueError("the key does not match the signing algorithm")
    jwk.update(kid=key.thumbprint(), use="sig", alg=alg.jose)
    return jwk
