"""moto's KMS makes an asymmetric key's private key when the key is created, and a symmetric key's never unless used.

moto 5.2.5 gives every KMS key an asymmetric private key at ``CreateKey`` (``moto.kms.utils.generate_private_key``):
the key spec's for an asymmetric key, and an RSA-2048 key for every other spec, ``SYMMETRIC_DEFAULT`` and ``HMAC_*``
included, which AWS never has for them (KMS Developer Guide, "Key spec reference": a symmetric key's material is a
256-bit AES key). Generating that RSA key takes 50-100 ms, more than the rest of ``CreateKey``; template.yaml's stack
has several symmetric keys, and every functional test creates them afresh. Here a symmetric key's unused RSA key is
made only when something reads it (moto signs, verifies or returns a public key with it; credport never asks that of
a symmetric key, and AWS refuses it), so what the embedded AWS answers is unchanged and its ``CreateKey`` costs what
moto's bookkeeping costs. Asymmetric keys keep their material from the moment they exist, as on AWS.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.kms import models as kms_models
from moto.kms import utils as kms_utils

__all__ = ["install", "installed", "uninstall"]

_ASYMMETRIC = frozenset(spec for spec in kms_utils.KeySpec.key_specs() if spec.startswith(("RSA_", "ECC_", "SM2")))
_NAME = "generate_private_key"  # what moto.kms.models calls at CreateKey (imported there from moto.kms.utils)
_lock = threading.Lock()
_original: list[Any] = []


class _OnFirstUse:
    """moto's private key for a symmetric key spec, generated the first time any of its attributes is read."""

    __slots__ = ("_key", "_lock", "_spec")

    def __init__(self, spec: str) -> None:
        self._spec, self._lock = spec, threading.Lock()
        self._key: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy's and pickle's probes, and this object's own slots before they are set
            raise AttributeError(name)
        return getattr(self._material(), name)

    def __copy__(self) -> _OnFirstUse:
        return self  # a shallow copy of a moto Key (ReplicateKey) shares its key material, as it did before

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self._material(), memo)

    def _material(self) -> Any:
        with self._lock:
            if self._key is None:
                self._key = kms_utils.generate_private_key(self._spec)
            return self._key


def _generate(key_spec: str) -> Any:
    return kms_utils.generate_private_key(key_spec) if key_spec in _ASYMMETRIC else _OnFirstUse(key_spec)


def install() -> None:
    """Idempotent; moto's module is process-wide, so this holds for ``mock_aws`` and the local stack's server alike."""
    with _lock:
        if _original:
            return
        found = getattr(kms_models, _NAME)  # AttributeError before any change: moto no longer calls it there
        if not {"RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384"} <= _ASYMMETRIC:
            raise RuntimeError("moto's KMS key specs are not the ones this module was written for")
        _original.append(found)
        setattr(kms_models, _NAME, _generate)


def uninstall() -> None:
    with _lock:
        if _original:
            setattr(kms_models, _NAME, _original.pop())


def installed() -> bool:
    return bool(_original)
