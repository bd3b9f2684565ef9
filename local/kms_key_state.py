"""The embedded KMS refuses every cryptographic operation with a key that is not Enabled, as AWS KMS does.

KMS Developer Guide, "Key states of AWS KMS keys": a disabled key, or one pending deletion (or import, or in any
state but Enabled), cannot be used in cryptographic operations; AWS answers ``DisabledException`` for a disabled key
and ``KMSInvalidStateException`` for the others. moto 5.2.5 checks no state: a disabled key goes on encrypting,
decrypting, making data keys and MACs. credport disables and schedules keys for deletion when it rotates or revokes
them, so the local stack and the tests must refuse such a key where AWS would, or a revoked key would go on working
there. Sign, Verify and GetPublicKey are refused by :mod:`local.kms_sign`; this covers the rest: Encrypt,
GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateMac, VerifyMac (the key named in the request), Decrypt
(the key named, and the key the ciphertext was made under, which moto finds only by decrypting: its plaintext is
then dropped, never answered) and ReEncrypt (its destination key, then its source key, likewise).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from moto.kms.responses import KmsResponse

from local.kms_sign import require_enabled

__all__ = ["OPERATIONS", "install", "installed", "uninstall"]

# The request parameter naming the key AWS checks before the operation, and the answer's member naming a key it
# checks once moto found it (a ciphertext's own key).
OPERATIONS: dict[str, tuple[str | None, str | None]] = {
    "encrypt": ("KeyId", None),
    "generate_data_key": ("KeyId", None),
    "generate_data_key_without_plaintext": ("KeyId", None),
    "generate_mac": ("KeyId", None),
    "verify_mac": ("KeyId", None),
    "decrypt": ("KeyId", "KeyId"),
    "re_encrypt": ("DestinationKeyId", "SourceKeyId"),
}

_lock = threading.Lock()
_originals: dict[str, Callable[[KmsResponse], str]] = {}


def _checked(name: str, requested: str | None, answered: str | None) -> Callable[[KmsResponse], str]:
    def operation(self: KmsResponse) -> str:
        if requested is not None:
            require_enabled(self.kms_backend, self._get_param(requested))
        answer = _originals[name](self)
        if answered is not None:
            require_enabled(self.kms_backend, json.loads(answer).get(answered))
        return answer

    operation.__name__ = name
    return operation


def install() -> None:
    """Idempotent; moto's classes are process-wide, so this holds for ``mock_aws`` and the local stack's server."""
    with _lock:
        if _originals:
            return
        found = {name: getattr(KmsResponse, name) for name in OPERATIONS}  # AttributeError first: moto renamed one
        _originals.update(found)
        for name, (requested, answered) in OPERATIONS.items():
            setattr(KmsResponse, name, _checked(name, requested, answered))


def uninstall() -> None:
    with _lock:
        for name in list(_originals):
            setattr(KmsResponse, name, _originals.pop(name))


def installed() -> bool:
    return bool(_originals)
