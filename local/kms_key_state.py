"""The embedded KMS refuses every cryptographic operation with a key that is not Enabled, as AWS KMS does.

KMS Developer Guide, "Key states of AWS KMS keys": a disabled key, or one pending deletion (or import, or in any
state but Enabled), cannot be used in cryptographic operations; AWS answers ``DisabledException`` for a disabled key
and ``KMSInvalidStateException`` for the others. moto 5.2.5 checks no state: a disabled key goes on encrypting,
decrypting, making data keys and MACs. credport disables and schedules keys for deletion when it rotates or revokes
them, so the local stack and the tests must refuse such a key where AWS would, or a revoked key would go on working
there. Sign, Verify and GetPublicKey are refused by :mod:`local.kms_sign`; this covers the rest: Encrypt,
GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateMac, VerifyMac (the key named in the request), Decrypt (the
key named, and the key its ciphertext was made under) and ReEncrypt (its source and destination keys, and the
ciphertext's). A ciphertext's key is read from its header (moto's format carries the key id in clear, as AWS's
ciphertexts carry their key in their metadata) before anything is decrypted, so a refused key's ciphertext says
nothing about its context either; what moto cannot read is moto's to answer (InvalidCiphertextException).

Not covered (moto checks no state there either, and credport does not depend on it): key management (EnableKey on a
key pending deletion, ScheduleKeyDeletion twice), and S3 or Secrets Manager using a disabled key (moto's never call
KMS).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.kms import utils as kms_utils
from moto.kms.responses import KmsResponse

from local.kms_sign import require_enabled

__all__ = ["OPERATIONS", "install", "installed", "uninstall"]

# The request parameters naming keys AWS checks before the operation, and whether the request's ciphertext names one.
OPERATIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "encrypt": (("KeyId",), False),
    "generate_data_key": (("KeyId",), False),
    "generate_data_key_without_plaintext": (("KeyId",), False),
    "generate_mac": (("KeyId",), False),
    "verify_mac": (("KeyId",), False),
    "decrypt": (("KeyId",), True),
    "re_encrypt": (("SourceKeyId", "DestinationKeyId"), True),
}

_lock = threading.Lock()
_originals: dict[str, Callable[[KmsResponse], str]] = {}


def _ciphertext_key(blob: Any) -> str | None:
    """The key id a moto ciphertext carries in its header; None where moto could not read one (it answers that)."""
    if not isinstance(blob, bytes):
        return None
    try:
        return str(kms_utils._deserialize_ciphertext_blob(blob).key_id)
    except Exception:  # too short, not moto's: moto's own decrypt refuses it as InvalidCiphertextException
        return None


def _checked(name: str, parameters: tuple[str, ...], ciphertext: bool) -> Callable[[KmsResponse], str]:
    def operation(self: KmsResponse) -> str:
        for parameter in parameters:
            require_enabled(self.kms_backend, self._get_param(parameter))
        if ciphertext:
            require_enabled(self.kms_backend, _ciphertext_key(self._get_param("CiphertextBlob")))
        return _originals[name](self)

    operation.__name__ = name
    return operation


def install() -> None:
    """Idempotent; moto's classes are process-wide, so this holds for ``mock_aws`` and the local stack's server."""
    with _lock:
        if _originals:
            return
        found = {name: getattr(KmsResponse, name) for name in OPERATIONS}  # AttributeError first: moto renamed one
        getattr(kms_utils, "_deserialize_ciphertext_blob")  # noqa: B009 (likewise: moto's ciphertext reader)
        _originals.update(found)
        for name, (parameters, ciphertext) in OPERATIONS.items():
            setattr(KmsResponse, name, _checked(name, parameters, ciphertext))


def uninstall() -> None:
    with _lock:
        for name in list(_originals):
            setattr(KmsResponse, name, _originals.pop(name))


def installed() -> bool:
    return bool(_originals)
